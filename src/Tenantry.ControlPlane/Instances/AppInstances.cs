using Microsoft.Extensions.Configuration;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Apps;
using System.Collections.Concurrent;
using System.Data.Common;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Nodes;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Routing;
using Tenantry.Data;

namespace Tenantry.ControlPlane.Instances;

/// <summary>
/// Which app instances run, and their start, stop and release swaps: every registered app with a
/// current release has <see cref="App.SharedInstances"/> shared instances for pool and bridge
/// tenants, and each silo tenant has a dedicated instance of every app. The desired set lives in
/// <c>app_instances</c>; each row names the compute node that runs it (see <c>Nodes/</c>), and each host's
/// <see cref="LocalAppSupervisor"/> runs the rows placed on its own node. On start every instance of this node
/// that should run is brought back (adopted when it still runs).
/// </summary>
public interface IAppInstances
{
    /// <summary>Every instance that should run, shared and dedicated.</summary>
    Task<IReadOnlyList<AppInstance>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Starts the shared instances of every app with a current release (idempotent).</summary>
    Task EnsureSharedAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Starts <paramref name="release"/> of the instance's app beside <paramref name="current"/>, waits
    /// until it is healthy, then moves the traffic to it and stops the old one (after a drain). When the
    /// new one never gets healthy it is removed and the old one keeps serving; the exception says why.
    /// </summary>
    Task<AppInstance> SwapAsync(AppInstance current, string release, CancellationToken cancellationToken);

    /// <summary>
    /// Repairs what an interrupted swap of <paramref name="app"/> left: an owner (a silo tenant, or a shared
    /// slot) with two instances keeps the serving one and loses the other; one with instances but none
    /// serving keeps the one of the release <paramref name="recorded"/> names for it (by
    /// <see cref="OwnerOf"/>), else its oldest; instance folders of the app without a row are removed.
    /// The instances kept are started when they do not run. Returns how many instances were removed.
    /// </summary>
    Task<int> ReconcileAsync(string app, IReadOnlyDictionary<string, string> recorded, CancellationToken cancellationToken);

    /// <summary>The owner of an instance as <see cref="ReconcileAsync"/> names it: the tenant id, or <c>shared-{slot}</c>.</summary>
    static string OwnerOf(Guid? tenantId, int slot) =>
        tenantId?.ToString() ?? "shared-" + slot.ToString(CultureInfo.InvariantCulture);
}

internal sealed partial class AppInstances(
    IControlPlaneDatabase db,
    IAppRegistry apps,
    LocalAppSupervisor supervisor,
    ITenantDatabaseProvider databases,
    IOptions<TenantryOptions> tenantry,
    IOptions<LocalComputeOptions> compute,
    TimeProvider time,
    ILogger<AppInstances> logger,
    IConfiguration configuration,
    ComputeNode node,
    IOptions<NodeOptions> nodeOptions,
    AppInstanceEnvironment? instanceEnvironment = null) : IAppInstances, IHostedService, IDisposable, INodeHandover, INodeLoad
{
    /// <summary>How many instances are brought back at once on start.</summary>
    private const int RestoreParallelism = 8;

    /// <summary>How long a replaced instance keeps running after the traffic moved, so requests under way finish.</summary>
    public static readonly TimeSpan Drain = TimeSpan.FromSeconds(2);

    private readonly SemaphoreSlim _placement = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly HttpClient _probe = new() { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>Instances this node's settle is starting now (each started once at a time).</summary>
    private readonly ConcurrentDictionary<string, Task> _starting = new(StringComparer.Ordinal);

    public async Task<IReadOnlyList<AppInstance>> ListAsync(CancellationToken cancellationToken) =>
        await db.ReadAsync(c => InstanceStore.ListAsync(c, null), cancellationToken);

    public async Task EnsureSharedAsync(CancellationToken cancellationToken)
    {
        foreach (var app in await apps.ListAsync(cancellationToken))
        {
            if (app.CurrentRelease is null)
            {
                continue;
            }

            var instances = await PlaceSharedAsync(app, cancellationToken);
            await Task.WhenAll(instances.Select(i => RunAsync(i, app, cancellationToken)));
        }
    }

    /// <summary>A silo tenant's dedicated instance of every app with a current release, running and healthy.</summary>
    public async Task<IReadOnlyList<AppInstance>> DeployDedicatedAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var result = new List<AppInstance>();
        foreach (var app in await apps.ListAsync(cancellationToken))
        {
            if (app.CurrentRelease is null)
            {
                continue;
            }

            var instance = await PlaceDedicatedAsync(app, tenant, cancellationToken);
            await RunAsync(instance, app, cancellationToken);
            result.Add(instance);
        }

        return result;
    }

    /// <summary>Starts (enabled) or stops the tenant's dedicated instances.</summary>
    public async Task SetDedicatedRunningAsync(TenantRef tenant, bool running, CancellationToken cancellationToken)
    {
        var instances = await db.ReadAsync(c => InstanceStore.ForTenantAsync(c, null, tenant.Id), cancellationToken);
        if (!running)
        {
            await supervisor.StopAsync([.. instances.Select(i => i.Key)], cancellationToken);
            return;
        }

        foreach (var instance in instances.Where(i => i.Serving))
        {
            if (await apps.FindAsync(instance.App, cancellationToken) is { } app)
            {
                await RunAsync(instance, app, cancellationToken);
            }
        }
    }

    /// <summary>Stops and forgets the tenant's dedicated instances and deletes their folders.</summary>
    public async Task DeleteDedicatedAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var instances = await db.ReadAsync(c => InstanceStore.ForTenantAsync(c, null, tenant.Id), cancellationToken);
        await supervisor.StopAsync([.. instances.Select(i => i.Key)], cancellationToken);
        await db.WriteAsync((c, tx) => InstanceStore.DeleteTenantAsync(c, tx, tenant.Id), cancellationToken);
        var folder = Path.Combine(supervisor.Root, tenant.Slug);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    public async Task<AppInstance> SwapAsync(AppInstance current, string release, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(current);
        var app = await apps.FindAsync(current.App, cancellationToken) ?? throw new InvalidOperationException($"App '{current.App}' is not registered.");
        var key = AppInstance.KeyOf(current.App, release, current.Slug, current.Slot);
        if (key == current.Key)
        {
            await RunAsync(current, app, cancellationToken);
            return current;
        }

        // The new instance runs on this node, which starts and watches it until it serves.
        var next = await PlaceAsync(key, app, release, current.TenantId, current.Slug, current.Slot, serving: false, cancellationToken, onThisNode: true);
        try
        {
            await RunAsync(next, app, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Never healthy: the old instance keeps the traffic; the new one leaves nothing behind.
            await supervisor.RemoveAsync(next.Key, CancellationToken.None);
            await db.WriteAsync((c, tx) => InstanceStore.DeleteAsync(c, tx, next.Key), CancellationToken.None);
            throw;
        }

        // One transaction: the gateway sees either the old instance or the new one serving, never neither.
        await db.WriteAsync(
            async (c, tx) =>
            {
                await InstanceStore.SetServingAsync(c, tx, next.Key, true);
                await InstanceStore.DeleteAsync(c, tx, current.Key);
            },
            cancellationToken);
        Log.Swapped(logger, current.Key, next.Key);
        await Task.Delay(Drain, time, cancellationToken);
        await supervisor.RemoveAsync(current.Key, cancellationToken);
        return next with { Serving = true };
    }

    public async Task<int> ReconcileAsync(string app, IReadOnlyDictionary<string, string> recorded, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        var registered = await apps.FindAsync(app, cancellationToken);
        var mine = (await ListAsync(cancellationToken)).Where(i => i.App == app).ToList();
        var (keep, remove) = await InstanceStore.KeepOnePerOwnerAsync(db, mine, recorded, cancellationToken);

        var known = mine.Select(i => i.Key).ToHashSet(StringComparer.Ordinal);
        var strays = supervisor.KeysOnDisk().Where(k => k.Contains("/" + app + "@", StringComparison.Ordinal) && !known.Contains(k));
        foreach (var key in remove.Select(r => r.Key).Concat(strays).Distinct(StringComparer.Ordinal))
        {
            await supervisor.RemoveAsync(key, cancellationToken);
            Log.Reconciled(logger, key);
        }

        if (registered is not null)
        {
            var enabled = (await db.ReadAsync(RouteStore.EnabledDedicatedSlugsAsync, cancellationToken)).ToHashSet(StringComparer.Ordinal);
            foreach (var instance in keep.Where(k => !k.Dedicated || enabled.Contains(k.Slug!)))
            {
                await RunAsync(instance, registered, cancellationToken);
            }
        }

        return remove.Count;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // On a cluster the instances are Deployments that outlive the control plane; nothing runs here.
        if (compute.Value.OnKubernetes)
        {
            return Task.CompletedTask;
        }

        // Bring back every instance that should run, without holding up the host's start. Several at once: each may
        // wait up to its start timeout, and one that hangs must not hold back the others.
        _ = Task.Run(() => RestoreAsync(_stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _stopping.CancelAsync();
        }
        catch (ObjectDisposedException)
        {
            // Disposed before it was stopped: nothing runs any more.
        }
    }

    public void Dispose()
    {
        _placement.Dispose();
        _stopping.Dispose();
        _probe.Dispose();
    }

    private async Task RestoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            await node.Registered.WaitAsync(cancellationToken);
            await db.WriteAsync((c, tx) => InstanceStore.AdoptUnplacedAsync(c, tx, node.Name, node.Address), cancellationToken);
            foreach (var app in await apps.ListAsync(cancellationToken))
            {
                if (app.CurrentRelease is not null)
                {
                    // Placed (when missing) on the live node with most room; this node runs its own, the others theirs.
                    var shared = await PlaceSharedAsync(app, cancellationToken);
                    await Task.WhenAll(shared.Where(i => i.Node == node.Name).Select(i => RunAsync(i, app, cancellationToken)));
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.RestoreFailed(logger, "shared", ex);
        }

        try
        {
            var enabled = (await db.ReadAsync(RouteStore.EnabledDedicatedSlugsAsync, cancellationToken)).ToHashSet(StringComparer.Ordinal);
            // Only serving ones: an instance that is not serving was being started by a swap the crash interrupted;
            // the rollout that swapped reconciles it when it resumes.
            var instances = (await ListAsync(cancellationToken)).Where(i => i.Dedicated && i.Serving && i.Node == node.Name && enabled.Contains(i.Slug!)).ToList();
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = RestoreParallelism, CancellationToken = cancellationToken };
            await Parallel.ForEachAsync(instances, parallel, async (instance, ct) =>
            {
                try
                {
                    if (await apps.FindAsync(instance.App, ct) is { } app)
                    {
                        await RunAsync(instance, app, ct);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.RestoreFailed(logger, instance.Key, ex);
                }
            });
        }
        catch (OperationCanceledException)
        {
            // The host is stopping.
        }
    }

    private async Task<IReadOnlyList<AppInstance>> PlaceSharedAsync(App app, CancellationToken cancellationToken)
    {
        var existing = await db.ReadAsync(c => InstanceStore.SharedAsync(c, null, app.Name), cancellationToken);
        var result = existing.Where(i => i.Serving).ToList();
        // The shared instances run one release: the one they run now, or the app's current release for the first ones.
        var release = result.FirstOrDefault()?.Release ?? app.CurrentRelease!;
        for (var slot = 1; slot <= app.SharedInstances; slot++)
        {
            if (result.All(i => i.Slot != slot))
            {
                result.Add(await PlaceAsync(AppInstance.KeyOf(app.Name, release, null, slot), app, release, null, null, slot, serving: true, cancellationToken));
            }
        }

        return result;
    }

    private async Task<AppInstance> PlaceDedicatedAsync(App app, TenantRef tenant, CancellationToken cancellationToken)
    {
        var existing = (await db.ReadAsync(c => InstanceStore.ForTenantAsync(c, null, tenant.Id), cancellationToken))
            .FirstOrDefault(i => i.App == app.Name && i.Serving);
        return existing ?? await PlaceAsync(
            AppInstance.KeyOf(app.Name, app.CurrentRelease!, tenant.Slug, 0), app, app.CurrentRelease!, tenant.Id, tenant.Slug, 0, serving: true, cancellationToken);
    }

    /// <summary>The instance row with this key, made with a free port when it does not exist yet.</summary>
    private async Task<AppInstance> PlaceAsync(string key, App app, string release, Guid? tenantId, string? slug, int slot, bool serving, CancellationToken cancellationToken, bool onThisNode = false)
    {
        await node.Registered.WaitAsync(cancellationToken);
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

                    var target = onThisNode ? (node.Name, node.Address) : await ChooseNodeAsync(c, tx);
                    var port = await FreePortAsync(c, tx, tenantId is not null);
                    var instance = new AppInstance(key, app.Name, release, tenantId, slug, slot, port, serving, time.GetUtcNow(), target.Name, target.Address);
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

    /// <summary>
    /// The live node with the most free capacity (this one first among equals); this node when none is live yet
    /// (a store being set up). Throws when every live node is full.
    /// </summary>
    private async Task<(string Name, string Address)> ChooseNodeAsync(DbConnection c, DbTransaction tx)
    {
        var live = await ComputeNode.LiveAsync(c, tx, time.GetUtcNow() - nodeOptions.Value.DeadAfter);
        if (live.Count == 0)
        {
            return (node.Name, node.Address);
        }

        var counts = await InstanceStore.CountsAsync(c, tx);
        var best = live
            .Select(n => (Node: n, Free: n.Capacity - counts.GetValueOrDefault(n.Name)))
            .Where(n => n.Free > 0)
            .OrderByDescending(n => n.Free).ThenBy(n => n.Node.Name == node.Name ? 0 : 1).ThenBy(n => n.Node.Name, StringComparer.Ordinal)
            .Select(n => n.Node)
            .FirstOrDefault()
            ?? throw new InvalidOperationException($"No live node has room for another app instance: each holds its Tenantry:Node:Capacity ({string.Join(", ", live.Select(n => $"{n.Name}: {n.Capacity}"))}).");
        return (best.Name, best.Address);
    }

    private Task<int> FreePortAsync(DbConnection c, DbTransaction tx, bool dedicated)
    {
        var o = tenantry.Value;
        var reserved = new HashSet<int> { o.Ports.ControlPlane, o.Ports.Gateway };
        return InstanceStore.FreePortAsync(c, tx, dedicated ? compute.Value.FirstDedicatedPort : o.Ports.SharedApp, reserved);
    }

    public async Task TakeOverAsync(DbConnection connection, DbTransaction transaction, NodeRecord dead, IReadOnlyList<NodeRecord> live)
    {
        ArgumentNullException.ThrowIfNull(dead);
        ArgumentNullException.ThrowIfNull(live);
        if (compute.Value.OnKubernetes)
        {
            return;
        }

        var counts = await InstanceStore.CountsAsync(connection, transaction);
        foreach (var instance in await InstanceStore.OnNodeAsync(connection, transaction, dead.Name))
        {
            var target = live
                .Select(n => (Node: n, Free: n.Capacity - counts.GetValueOrDefault(n.Name)))
                .Where(n => n.Free > 0)
                .OrderByDescending(n => n.Free).ThenBy(n => n.Node.Name == node.Name ? 0 : 1).ThenBy(n => n.Node.Name, StringComparer.Ordinal)
                .Select(n => n.Node)
                .FirstOrDefault();
            if (target is null)
            {
                Log.NoRoom(logger, instance.Key, dead.Name);
                continue;
            }

            // A new port: on one machine the dead node's process may still hold the old one.
            var port = await FreePortAsync(connection, transaction, instance.Dedicated);
            await InstanceStore.MoveAsync(connection, transaction, instance.Key, target.Name, target.Address, port);
            counts[target.Name] = counts.GetValueOrDefault(target.Name) + 1;
            Log.Moved(logger, instance.Key, dead.Name, target.Name, port);
        }
    }

    public async Task<IReadOnlyDictionary<string, int>> InstancesPerNodeAsync(CancellationToken cancellationToken) =>
        await db.ReadAsync(c => InstanceStore.CountsAsync(c, null), cancellationToken);

    /// <summary>
    /// This node runs what is placed on it and nothing else: a serving instance placed here (shared, or dedicated with
    /// its route on) that the supervisor does not run is started; a supervised one whose row is gone, or whose tenant's
    /// route is off, is stopped (one whose route is merely shared is a tier change's, which routes to it or drains it); an
    /// instance folder whose row is now another node's (it was re-placed while this node was dead) is removed with its process.
    /// </summary>
    public async Task SettleAsync(CancellationToken cancellationToken)
    {
        if (compute.Value.OnKubernetes || !configuration.GetValue("Tenantry:ApplicationPlane:Enabled", true) || node.Epoch == 0)
        {
            return;
        }

        // What runs here, read before the rows: an instance started after this read has its row already.
        var supervised = supervisor.SupervisedKeys();
        var onDisk = supervisor.KeysOnDisk();
        var rows = (await ListAsync(cancellationToken)).ToDictionary(i => i.Key, StringComparer.Ordinal);
        // Stopped only when the tenant's route is off (suspended, or gone): a tier change to silo starts the dedicated instances
        // while the route is still shared and points it at them once they serve; a change away from silo drains them after
        // the route is shared again, until it removes them. Started only when the route is on and dedicated.
        var routes = await db.ReadAsync(RouteStore.EnabledRoutesAsync, cancellationToken);
        var routed = routes.Select(r => r.Slug).ToHashSet(StringComparer.Ordinal);
        var enabled = routes.Where(r => r.Dedicated).Select(r => r.Slug).ToHashSet(StringComparer.Ordinal);
        foreach (var key in onDisk.Concat(supervised).Distinct(StringComparer.Ordinal))
        {
            if (rows.TryGetValue(key, out var row) && row.Node != node.Name && row.Node.Length > 0)
            {
                await supervisor.RemoveAsync(key, cancellationToken);
                Log.RemovedMoved(logger, key, row.Node);
            }
            else if (row is null && supervised.Contains(key))
            {
                await supervisor.RemoveAsync(key, cancellationToken);
            }
            else if (row is { Dedicated: true } && supervised.Contains(key) && !routed.Contains(row.Slug!))
            {
                await supervisor.StopAsync([key], cancellationToken);
            }
        }

        foreach (var row in rows.Values.Where(r => r.Node == node.Name && r.Serving && (!r.Dedicated || enabled.Contains(r.Slug!)) && !supervised.Contains(r.Key)))
        {
            if (_starting.ContainsKey(row.Key) || await apps.FindAsync(row.App, cancellationToken) is not { } app)
            {
                continue;
            }

            var stopping = _stopping.Token;
            _starting[row.Key] = Task.Run(
                async () =>
                {
                    try
                    {
                        await RunAsync(row, app, stopping);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        Log.RestoreFailed(logger, row.Key, ex);
                    }
                    finally
                    {
                        _starting.TryRemove(row.Key, out _);
                    }
                },
                CancellationToken.None);
        }
    }

    /// <summary>
    /// Waits until an instance placed on another node answers its health probe there (that node's settle starts it). The
    /// row is read again between probes: an instance re-placed meanwhile (its node died) is waited for where it is now,
    /// or run here when it landed on this node.
    /// </summary>
    private async Task WaitRemoteAsync(AppInstance instance, App app, CancellationToken cancellationToken)
    {
        var timeout = compute.Value.StartTimeout + nodeOptions.Value.HeartbeatInterval;
        var deadline = time.GetUtcNow() + timeout;
        var current = instance;
        while (true)
        {
            var probe = new Uri(current.Upstream, app.HealthPath);
            using (var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                attempt.CancelAfter(TimeSpan.FromSeconds(2));
                try
                {
                    using var response = await _probe.GetAsync(probe, HttpCompletionOption.ResponseHeadersRead, attempt.Token);
                    if (response.IsSuccessStatusCode)
                    {
                        return;
                    }
                }
                catch (HttpRequestException)
                {
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                }
            }

            var row = await db.ReadAsync(c => InstanceStore.FindAsync(c, null, instance.Key), cancellationToken)
                ?? throw new InvalidOperationException($"The instance {instance.Key} was removed while it was being started.");
            if (row.Node == node.Name)
            {
                await RunAsync(row, app, cancellationToken);
                return;
            }

            if (row.Node != current.Node || row.Port != current.Port)
            {
                // Re-placed: the new node gets its own start time.
                deadline = time.GetUtcNow() + timeout;
                current = row;
            }

            if (time.GetUtcNow() > deadline)
            {
                throw new TimeoutException($"The instance {current.Key} on node {current.Node} did not answer {probe} within {timeout}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), time, cancellationToken);
        }
    }

    /// <summary>
    /// Starts (or adopts) the instance with its release's process and the instance contract, and waits until it is healthy;
    /// an instance placed on another node is started by that node, and this waits until it answers there.
    /// </summary>
    private async Task RunAsync(AppInstance instance, App app, CancellationToken cancellationToken)
    {
        // The control plane alone (Tenantry:ApplicationPlane:Enabled=false) places instances but runs no process.
        if (!configuration.GetValue("Tenantry:ApplicationPlane:Enabled", true))
        {
            return;
        }

        if (instance.Node.Length > 0 && instance.Node != node.Name)
        {
            await WaitRemoteAsync(instance, app, cancellationToken);
            return;
        }

        var release = await apps.GetReleaseAsync(instance.App, instance.Release, cancellationToken)
            ?? throw new InvalidOperationException($"Release {instance.Release} of app '{instance.App}' does not exist.");
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [TenantryEnvironment.Port] = instance.Port.ToString(CultureInfo.InvariantCulture),
            // ASP.NET Core apps listen where PORT says without code of their own.
            ["ASPNETCORE_URLS"] = instance.Upstream.ToString().TrimEnd('/'),
            [TenantryEnvironment.App] = instance.App,
            [TenantryEnvironment.Release] = instance.Release,
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
                environment[TenantryEnvironment.Database] = ConnectionString(data.Target);
            }
        }
        else
        {
            environment[TenantryEnvironment.DataUrl] = $"http://127.0.0.1:{tenantry.Value.Ports.ControlPlane.ToString(CultureInfo.InvariantCulture)}/v1/app-data";
            if (await databases.ConnectAsync(TenantRef.ForData(Guid.Empty, "pool", IsolationModel.Pool), cancellationToken) is { } pool)
            {
                environment[TenantryEnvironment.Database] = ConnectionString(pool.Target);
            }
        }

        await supervisor.EnsureRunningAsync(
            new InstanceLaunch(instance.Key, instance.App, instance.Release, instance.TenantId, instance.Upstream, app.HealthPath, release.Process, environment),
            cancellationToken);
    }

    /// <summary>A data target as the <c>TENANTRY_DATABASE</c> value: an Npgsql connection string, or <c>Data Source=</c> a SQLite file.</summary>
    public static string ConnectionString(TenantDataTarget target) => target switch
    {
        PostgresSiloTarget silo => silo.ToConnectionString(),
        PostgresPoolTarget pool => pool.ConnectionString,
        PostgresBridgeTarget bridge => bridge.ToConnectionString(),
        SqlitePoolTarget pool => "Data Source=" + pool.FilePath,
        SqliteFileTarget file => "Data Source=" + file.FilePath,
        _ => throw new ArgumentException($"No connection string for {target.GetType().Name}.", nameof(target)),
    };

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Instance {Old} replaced by {New}")]
        public static partial void Swapped(ILogger logger, string old, string @new);

        [LoggerMessage(2, LogLevel.Error, "Could not bring back instance {Instance} on start")]
        public static partial void RestoreFailed(ILogger logger, string instance, Exception exception);

        [LoggerMessage(3, LogLevel.Warning, "Instance {Instance} was left by an interrupted swap and is removed")]
        public static partial void Reconciled(ILogger logger, string instance);

        [LoggerMessage(4, LogLevel.Warning, "Instance {Instance} of node {Dead} moved to node {Node}, port {Port}")]
        public static partial void Moved(ILogger logger, string instance, string dead, string node, int port);

        [LoggerMessage(5, LogLevel.Error, "Instance {Instance} of node {Dead} stays there: no live node has room for it (Tenantry:Node:Capacity)")]
        public static partial void NoRoom(ILogger logger, string instance, string dead);

        [LoggerMessage(6, LogLevel.Warning, "Instance {Instance} runs on node {Node} now; the local copy is stopped and removed")]
        public static partial void RemovedMoved(ILogger logger, string instance, string node);
    }
}
