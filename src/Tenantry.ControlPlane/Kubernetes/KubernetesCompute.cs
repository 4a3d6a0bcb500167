using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using k8s;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Instances;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Routing;
using Tenantry.Data;

namespace Tenantry.ControlPlane.Kubernetes;

/// <summary>
/// Compute on a Kubernetes cluster. A silo tenant gets a namespace of its own (labelled with the tenant and
/// tier) holding a default-deny NetworkPolicy, a ResourceQuota and LimitRange for its tier, and per app an
/// environment Secret, a Deployment of the release's image and a Service. Pool and bridge tenants share one
/// Deployment per app (with an autoscaler) in the shared namespace. Which instances should run stays in
/// <c>app_instances</c>, as with local compute, so rollouts plan and swap alike; a swap here is an update of
/// the Deployment's image, which Kubernetes rolls out. Every manifest is applied whole by server-side apply,
/// so doing a step again (after a crash or a restart) adopts what exists and makes nothing twice.
/// </summary>
internal sealed partial class KubernetesCompute(
    IControlPlaneDatabase db,
    ITenantRegistry tenants,
    IAppRegistry apps,
    KubernetesCluster cluster,
    ITenantDatabaseProvider databases,
    IOptions<KubernetesOptions> options,
    IOptions<LocalComputeOptions> compute,
    TimeProvider time,
    ILogger<KubernetesCompute> logger,
    AppInstanceEnvironment? instanceEnvironment = null) : ITenantComputeProvider, IAppInstances, IAppRoutes, IDisposable
{
    private const int DefaultDatabasePort = 5432;
    private readonly SemaphoreSlim _placement = new(1, 1);

    private KubernetesOptions O => options.Value;

    public string NamespaceOf(string slug) => O.NamespacePrefix + slug;

    // ---- ITenantComputeProvider

    public async Task<JsonObject> DeployAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        var dedicated = tenant.Isolation == IsolationModel.Silo;
        await db.WriteAsync(
            async (c, tx) =>
            {
                if (await RouteStore.UpstreamAsync(c, tx, tenant.Id) is null)
                {
                    await RouteStore.InsertAsync(c, tx, tenant.Id, tenant.Slug, dedicated, dedicated ? "dedicated" : "shared", time.GetUtcNow());
                }
            },
            cancellationToken);

        var result = new JsonObject { ["provider"] = "kubernetes", ["mode"] = dedicated ? "dedicated" : "shared" };
        var services = new JsonObject();
        if (dedicated)
        {
            var space = SpaceOf(tenant);
            await ApplyTenantSpaceAsync(space, cancellationToken);
            foreach (var app in await apps.ListAsync(cancellationToken))
            {
                if (app.CurrentRelease is null)
                {
                    continue;
                }

                var instance = await PlaceDedicatedAsync(app, tenant, cancellationToken);
                await ApplyWorkloadAsync(instance, app, instance.Release, running: true, wait: true, cancellationToken);
                services[app.Name] = new JsonObject
                {
                    ["release"] = instance.Release,
                    ["service"] = KubernetesManifests.ServiceUrl(space.Namespace, app.Name, O.ServicePort),
                };
            }

            result["namespace"] = space.Namespace;
        }
        else
        {
            await EnsureSharedAsync(cancellationToken);
            foreach (var app in await apps.ListAsync(cancellationToken))
            {
                if (app.CurrentRelease is not null)
                {
                    services[app.Name] = new JsonObject { ["service"] = KubernetesManifests.ServiceUrl(O.SharedNamespace, app.Name, O.ServicePort) };
                }
            }

            result["namespace"] = O.SharedNamespace;
        }

        result["apps"] = services;
        return result;
    }

    public async Task SetRoutingAsync(TenantRef tenant, bool enabled, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await db.WriteAsync((c, tx) => RouteStore.SetEnabledAsync(c, tx, tenant.Id, enabled, time.GetUtcNow()), cancellationToken);
        if (tenant.Isolation != IsolationModel.Silo)
        {
            return;
        }

        // Suspension scales the tenant's Deployments to zero; reactivation back to one and waits until they are ready.
        var instances = await db.ReadAsync(c => InstanceStore.ForTenantAsync(c, null, tenant.Id), cancellationToken);
        foreach (var instance in instances.Where(i => i.Serving))
        {
            if (await apps.FindAsync(instance.App, cancellationToken) is { } app)
            {
                await ApplyWorkloadAsync(instance, app, instance.Release, enabled, wait: enabled, cancellationToken);
            }
        }

        Log.Scaled(logger, tenant.Id, enabled ? 1 : 0);
    }

    public async Task RemoveDedicatedAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await cluster.DeleteNamespaceAsync(NamespaceOf(tenant.Slug), cancellationToken);
        await db.WriteAsync((c, tx) => InstanceStore.DeleteTenantAsync(c, tx, tenant.Id), cancellationToken);
    }

    public async Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        if (tenant.Isolation == IsolationModel.Silo)
        {
            await cluster.DeleteNamespaceAsync(NamespaceOf(tenant.Slug), cancellationToken);
        }

        await db.WriteAsync(
            async (c, tx) =>
            {
                await InstanceStore.DeleteTenantAsync(c, tx, tenant.Id);
                await RouteStore.DeleteAsync(c, tx, tenant.Id);
            },
            cancellationToken);
    }

    // ---- IAppInstances (what rollouts drive)

    public async Task<IReadOnlyList<AppInstance>> ListAsync(CancellationToken cancellationToken) =>
        await db.ReadAsync(c => InstanceStore.ListAsync(c, null), cancellationToken);

    public async Task EnsureSharedAsync(CancellationToken cancellationToken)
    {
        var placed = false;
        foreach (var app in await apps.ListAsync(cancellationToken))
        {
            if (app.CurrentRelease is null)
            {
                continue;
            }

            if (!placed)
            {
                await cluster.ApplyAsync(KubernetesManifests.SharedNamespace(O.SharedNamespace), cancellationToken);
                await cluster.ApplyAsync(KubernetesManifests.SharedNetworkPolicy(O), cancellationToken);
                placed = true;
            }

            var slots = await PlaceSharedAsync(app, cancellationToken);
            await ApplyWorkloadAsync(slots[0], app, slots[0].Release, running: true, wait: true, cancellationToken);
        }
    }

    public async Task<AppInstance> SwapAsync(AppInstance current, string release, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(current);
        var app = await apps.FindAsync(current.App, cancellationToken) ?? throw new InvalidOperationException($"App '{current.App}' is not registered.");
        var running = await RunningAsync(current, cancellationToken);
        var key = AppInstance.KeyOf(current.App, release, current.Slug, current.Slot);
        if (key == current.Key)
        {
            await ApplyWorkloadAsync(current, app, release, running, wait: running, cancellationToken);
            return current;
        }

        var next = await PlaceAsync(key, app.Name, release, current.TenantId, current.Slug, current.Slot, serving: false, cancellationToken);
        try
        {
            await ApplyWorkloadAsync(next, app, release, running, wait: running, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The rolling update keeps the old pods while no new one is ready; putting the old release back
            // stops the failing pods, and the old one keeps the traffic.
            await ApplyWorkloadAsync(current, app, current.Release, running, wait: false, CancellationToken.None);
            await db.WriteAsync((c, tx) => InstanceStore.DeleteAsync(c, tx, next.Key), CancellationToken.None);
            throw;
        }

        await db.WriteAsync(
            async (c, tx) =>
            {
                await InstanceStore.SetServingAsync(c, tx, next.Key, true);
                await InstanceStore.DeleteAsync(c, tx, current.Key);
            },
            cancellationToken);
        Log.Swapped(logger, current.Key, next.Key);
        return next with { Serving = true };
    }

    public async Task<int> ReconcileAsync(string app, IReadOnlyDictionary<string, string> recorded, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        var mine = (await ListAsync(cancellationToken)).Where(i => i.App == app).ToList();
        var (keep, remove) = await InstanceStore.KeepOnePerOwnerAsync(db, mine, recorded, cancellationToken);

        // The Deployment may have been left on the release of the instance removed: put back the one kept.
        if (remove.Count > 0 && await apps.FindAsync(app, cancellationToken) is { } registered)
        {
            foreach (var instance in keep.Where(k => k.Dedicated || k.Slot == keep.Where(s => !s.Dedicated).Min(s => s.Slot)))
            {
                var running = await RunningAsync(instance, cancellationToken);
                await ApplyWorkloadAsync(instance, registered, instance.Release, running, wait: running, cancellationToken);
            }
        }

        foreach (var r in remove)
        {
            Log.Reconciled(logger, r.Key);
        }

        return remove.Count;
    }

    // ---- IAppRoutes (what the gateway reads): cluster DNS names of the Services

    public async Task<(IReadOnlyList<AppRouteEntry> Apps, IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, string>> Dedicated)> LoadAsync(CancellationToken cancellationToken)
    {
        var registered = await apps.ListAsync(cancellationToken);
        var serving = (await ListAsync(cancellationToken)).Where(i => i.Serving).ToList();
        var port = O.ServicePort;
        var entries = registered.Select(a => new AppRouteEntry(
            a.Name, a.RoutePrefix,
            serving.Any(i => !i.Dedicated && i.App == a.Name) ? [KubernetesManifests.ServiceUrl(O.SharedNamespace, a.Name, port)] : [])).ToList();
        var dedicated = serving.Where(i => i.Dedicated)
            .GroupBy(i => i.TenantId!.Value)
            .ToDictionary(
                g => g.Key,
                g => (IReadOnlyDictionary<string, string>)g.ToDictionary(i => i.App, i => KubernetesManifests.ServiceUrl(NamespaceOf(i.Slug!), i.App, port), StringComparer.Ordinal));
        return (entries, dedicated);
    }

    public void Dispose() => _placement.Dispose();

    // ---- placing and applying

    private TenantSpace SpaceOf(TenantRef tenant) => new(tenant.Id, tenant.Slug, tenant.Tier, NamespaceOf(tenant.Slug));

    /// <summary>Namespace, NetworkPolicy, ResourceQuota and LimitRange, in that order: nothing runs in the namespace before its fences stand.</summary>
    private async Task ApplyTenantSpaceAsync(TenantSpace space, CancellationToken cancellationToken)
    {
        var tier = O.Tier(space.Tier);
        var (cidrs, port) = await DatabaseEgressAsync(space, cancellationToken);
        await cluster.ApplyAsync(KubernetesManifests.TenantNamespace(space), cancellationToken);
        await cluster.ApplyAsync(KubernetesManifests.TenantNetworkPolicy(space, O, cidrs, port), cancellationToken);
        await cluster.ApplyAsync(KubernetesManifests.TenantQuota(space, tier), cancellationToken);
        await cluster.ApplyAsync(KubernetesManifests.TenantLimitRange(space, tier), cancellationToken);
    }

    /// <summary>Where the tenant's database is: the configured ranges, else its server's address when that is an IP.</summary>
    private async Task<(IReadOnlyList<string> Cidrs, int Port)> DatabaseEgressAsync(TenantSpace space, CancellationToken cancellationToken)
    {
        var data = await databases.ConnectAsync(TenantRef.ForData(space.TenantId, space.Slug, IsolationModel.Silo), cancellationToken);
        var (host, port) = data?.Target is { } target ? HostOf(AppInstances.ConnectionString(target)) : (null, DefaultDatabasePort);
        if (O.DatabaseCidrs.Count > 0)
        {
            return (O.DatabaseCidrs, port);
        }

        return host is not null && IPAddress.TryParse(host, out var ip)
            ? ([ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"{ip}/128" : $"{ip}/32"], port)
            : ([], port);
    }

    private static (string? Host, int Port) HostOf(string connectionString)
    {
        if (connectionString.StartsWith("Data Source=", StringComparison.Ordinal))
        {
            return (null, DefaultDatabasePort);
        }

        var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        return (builder.Host?.Split(',')[0], builder.Port == 0 ? DefaultDatabasePort : builder.Port);
    }

    /// <summary>The instance's Secret, Deployment and Service (and the shared one's autoscaler), applied in that order; waits until it is ready when asked.</summary>
    private async Task ApplyWorkloadAsync(AppInstance instance, App app, string release, bool running, bool wait, CancellationToken cancellationToken)
    {
        var r = await apps.GetReleaseAsync(app.Name, release, cancellationToken)
            ?? throw new InvalidOperationException($"Release {release} of app '{app.Name}' does not exist.");
        if (string.IsNullOrEmpty(r.Image))
        {
            throw new PermanentStepException($"Release {release} of app '{app.Name}' names no image; apps on Kubernetes run images.");
        }

        var space = instance.TenantId is { } tenantId ? await SpaceOfAsync(tenantId, instance.Slug!, cancellationToken) : null;
        var environment = await EnvironmentAsync(instance, r, cancellationToken);
        var workload = new AppWorkload(
            space?.Namespace ?? O.SharedNamespace, app.Name, release, r.Image, app.HealthPath,
            space is null ? Math.Max(1, app.SharedInstances) : running ? 1 : 0, environment, space);
        await cluster.ApplyAsync(KubernetesManifests.EnvironmentSecret(workload), cancellationToken);
        await cluster.ApplyAsync(KubernetesManifests.Deployment(workload, O, space is null ? null : O.Tier(space.Tier)), cancellationToken);
        await cluster.ApplyAsync(KubernetesManifests.Service(workload, O), cancellationToken);
        if (space is null)
        {
            await cluster.ApplyAsync(KubernetesManifests.SharedAutoscaler(workload, O), cancellationToken);
        }

        if (wait)
        {
            await cluster.WaitReadyAsync(workload.Namespace, app.Name, cancellationToken);
        }
    }

    /// <summary>The tenant's place, with its tier now (it may have changed since the instance was placed).</summary>
    private async Task<TenantSpace> SpaceOfAsync(Guid tenantId, string slug, CancellationToken cancellationToken)
    {
        var ns = NamespaceOf(slug);
        var tenant = await db.ReadAsync(c => tenants.GetAsync(c, null, tenantId), cancellationToken);
        return new TenantSpace(tenantId, slug, tenant?.Tier ?? "premium", ns);
    }

    /// <summary>The instance contract, as on local compute, with the pod's port and the cluster's addresses.</summary>
    private async Task<Dictionary<string, string>> EnvironmentAsync(AppInstance instance, AppRelease release, CancellationToken cancellationToken)
    {
        var port = O.ContainerPort.ToString(CultureInfo.InvariantCulture);
        var environment = new Dictionary<string, string>(release.Process.Env, StringComparer.Ordinal)
        {
            [TenantryEnvironment.Port] = port,
            // In a pod the Service reaches the container on its pod address, not on loopback.
            ["ASPNETCORE_URLS"] = "http://0.0.0.0:" + port,
            [TenantryEnvironment.App] = instance.App,
            [TenantryEnvironment.Release] = release.Version,
        };
        if (instanceEnvironment is not null)
        {
            foreach (var (name, value) in instanceEnvironment.Variables())
            {
                environment[name] = value;
            }
        }

        if (instance.TenantId is { } tenantId)
        {
            environment[TenantryEnvironment.TenantId] = tenantId.ToString();
            if (await databases.ConnectAsync(TenantRef.ForData(tenantId, instance.Slug!, IsolationModel.Silo), cancellationToken) is { } data)
            {
                environment[TenantryEnvironment.Database] = AppInstances.ConnectionString(data.Target);
            }
        }
        else
        {
            environment[TenantryEnvironment.DataUrl] = new Uri(O.ControlPlaneUrl, "/v1/app-data").ToString();
            if (await databases.ConnectAsync(TenantRef.ForData(Guid.Empty, "pool", IsolationModel.Pool), cancellationToken) is { } pool)
            {
                environment[TenantryEnvironment.Database] = AppInstances.ConnectionString(pool.Target);
            }
        }

        return environment;
    }

    private async Task<bool> RunningAsync(AppInstance instance, CancellationToken cancellationToken)
    {
        if (!instance.Dedicated)
        {
            return true;
        }

        var enabled = await db.ReadAsync(RouteStore.EnabledDedicatedSlugsAsync, cancellationToken);
        return enabled.Contains(instance.Slug!, StringComparer.Ordinal);
    }

    private async Task<IReadOnlyList<AppInstance>> PlaceSharedAsync(App app, CancellationToken cancellationToken)
    {
        var existing = await db.ReadAsync(c => InstanceStore.SharedAsync(c, null, app.Name), cancellationToken);
        var result = existing.Where(i => i.Serving).ToList();
        var release = result.FirstOrDefault()?.Release ?? app.CurrentRelease!;
        for (var slot = 1; slot <= Math.Max(1, app.SharedInstances); slot++)
        {
            if (result.All(i => i.Slot != slot))
            {
                result.Add(await PlaceAsync(AppInstance.KeyOf(app.Name, release, null, slot), app.Name, release, null, null, slot, serving: true, cancellationToken));
            }
        }

        return [.. result.OrderBy(i => i.Slot)];
    }

    private async Task<AppInstance> PlaceDedicatedAsync(App app, TenantRef tenant, CancellationToken cancellationToken)
    {
        var existing = (await db.ReadAsync(c => InstanceStore.ForTenantAsync(c, null, tenant.Id), cancellationToken))
            .FirstOrDefault(i => i.App == app.Name && i.Serving);
        return existing ?? await PlaceAsync(
            AppInstance.KeyOf(app.Name, app.CurrentRelease!, tenant.Slug, 0), app.Name, app.CurrentRelease!, tenant.Id, tenant.Slug, 0, serving: true, cancellationToken);
    }

    /// <summary>
    /// The instance row with this key, made when it does not exist yet. The row's port is unique, as the table
    /// wants, but on a cluster every pod listens on <see cref="KubernetesOptions.ContainerPort"/>.
    /// </summary>
    private async Task<AppInstance> PlaceAsync(string key, string app, string release, Guid? tenantId, string? slug, int slot, bool serving, CancellationToken cancellationToken)
    {
        await _placement.WaitAsync(cancellationToken);
        try
        {
            return await db.WriteAsync(
                async (c, tx) =>
                {
                    if (await InstanceStore.FindAsync(c, tx, key) is { } found)
                    {
                        return found;
                    }

                    var port = await InstanceStore.FreePortAsync(c, tx, compute.Value.FirstDedicatedPort, new HashSet<int>());
                    var instance = new AppInstance(key, app, release, tenantId, slug, slot, port, serving, time.GetUtcNow());
                    await InstanceStore.InsertAsync(c, tx, instance);
                    return instance;
                },
                cancellationToken);
        }
        finally
        {
            _placement.Release();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Deployments of tenant {TenantId} scaled to {Replicas}")]
        public static partial void Scaled(ILogger logger, Guid tenantId, int replicas);

        [LoggerMessage(2, LogLevel.Information, "Instance {Old} replaced by {New} (Deployment image updated)")]
        public static partial void Swapped(ILogger logger, string old, string @new);

        [LoggerMessage(3, LogLevel.Warning, "Instance {Instance} was left by an interrupted swap and is removed")]
        public static partial void Reconciled(ILogger logger, string instance);
    }
}

public static class KubernetesComputeExtensions
{
    /// <summary>
    /// Compute on a Kubernetes cluster (in-cluster service account, or a kubeconfig file), chosen with
    /// <c>Tenantry:Compute:Provider=kubernetes</c>. The client is made when the provider is first used.
    /// </summary>
    public static TenantryBuilder AddKubernetesCompute(this TenantryBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddOptions<KubernetesOptions>().BindConfiguration(KubernetesOptions.Section).ValidateSettings(KubernetesOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KubernetesOptions>, KubernetesOptionsValidator>());
        services.TryAddSingleton<IKubernetes>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<KubernetesOptions>>().Value;
            var config = o.InCluster
                ? KubernetesClientConfiguration.InClusterConfig()
                : KubernetesClientConfiguration.BuildConfigFromConfigFile(o.Kubeconfig, o.Context);
            return new k8s.Kubernetes(config);
        });
        services.TryAddSingleton<KubernetesCluster>();
        services.TryAddSingleton<KubernetesCompute>();
        return builder;
    }
}
