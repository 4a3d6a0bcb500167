using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Routing;

namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// Compute on one machine: pool and bridge tenants are routed to the shared app instance, silo
/// tenants get a dedicated port, a deployment manifest and a dedicated app process that
/// <see cref="LocalAppSupervisor"/> starts from it and keeps running (stopped while the tenant is
/// suspended, removed at offboarding). The routing table lives in the control-plane store, where
/// the gateway reads it.
/// </summary>
internal sealed class LocalComputeProvider(
    IControlPlaneDatabase db, IOptions<TenantryOptions> options, IOptions<LocalComputeOptions> compute, TimeProvider time, LocalAppSupervisor supervisor) : ITenantComputeProvider
{
    private readonly string _root = Path.Combine(options.Value.DataPath, "compute");

    public async Task<JsonObject> DeployAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var dedicated = tenant.Isolation == IsolationModel.Silo;
        var upstream = await db.WriteAsync(
            async (c, tx) =>
            {
                var existing = await RouteStore.UpstreamAsync(c, tx, tenant.Id);
                if (existing is string found)
                {
                    return found;
                }

                var target = "shared";
                if (dedicated)
                {
                    var taken = (await RouteStore.DedicatedUpstreamsAsync(c, tx))
                        .Select(u => int.Parse(u[(u.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture)).ToHashSet();
                    var port = compute.Value.FirstDedicatedPort;
                    while (taken.Contains(port) || port == options.Value.Ports.ControlPlane || port == options.Value.Ports.Gateway)
                    {
                        port++;
                    }

                    target = $"http://127.0.0.1:{port}";
                }

                await RouteStore.InsertAsync(c, tx, tenant.Id, tenant.Slug, dedicated, target, time.GetUtcNow());
                return target;
            },
            cancellationToken);

        var result = new JsonObject { ["provider"] = "local", ["mode"] = dedicated ? "dedicated" : "shared", ["upstream"] = upstream };
        if (dedicated)
        {
            var folder = Path.Combine(_root, tenant.Slug);
            Directory.CreateDirectory(folder);
            var manifest = Path.Combine(folder, "deployment.json");
            var body = new JsonObject
            {
                ["tenantId"] = tenant.Id.ToString(),
                ["slug"] = tenant.Slug,
                ["upstream"] = upstream,
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
            AtomicFile.Write(manifest, body);
            result["manifest"] = manifest;
            if (supervisor.Enabled)
            {
                await supervisor.EnsureRunningAsync(tenant.Slug, cancellationToken);
                result["process"] = "supervised";
            }
        }

        return result;
    }

    public async Task SetRoutingAsync(TenantRef tenant, bool enabled, CancellationToken cancellationToken)
    {
        await db.WriteAsync(
            (c, tx) => RouteStore.SetEnabledAsync(c, tx, tenant.Id, enabled, time.GetUtcNow()),
            cancellationToken);
        if (tenant.Isolation == IsolationModel.Silo && File.Exists(Path.Combine(_root, tenant.Slug, "deployment.json")))
        {
            // A suspended silo tenant's instance is stopped; reactivation starts it again.
            await (enabled ? supervisor.EnsureRunningAsync(tenant.Slug, cancellationToken) : supervisor.StopAsync(tenant.Slug, cancellationToken));
        }
    }

    public async Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        await supervisor.StopAsync(tenant.Slug, cancellationToken);
        await db.WriteAsync((c, tx) => RouteStore.DeleteAsync(c, tx, tenant.Id), cancellationToken);
        var folder = Path.Combine(_root, tenant.Slug);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}

public static class LocalComputeExtensions
{
    /// <summary>Compute on this machine: pooled tenants on the shared app, silo tenants as supervised local processes.</summary>
    public static TenantryBuilder AddLocalCompute(this TenantryBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<LocalComputeProvider>();
        builder.Services.AddOptions<LocalComputeOptions>().BindConfiguration(LocalComputeOptions.Section).ValidateSettings(LocalComputeOptions.Section).ValidateOnStart();
        builder.Services.TryAddSingleton<LocalAppSupervisor>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<LocalAppSupervisor>());
        return builder;
    }
}
