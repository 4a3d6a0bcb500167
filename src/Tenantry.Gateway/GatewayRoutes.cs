using System.Collections.Frozen;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.Gateway;

/// <summary>
/// One tenant's entry in the routing table. <see cref="Upstream"/> null means the shared instance.
/// <see cref="Plan"/> and <see cref="Limits"/> are the tenant's plan in effect now and its traffic
/// limits; a route source without plans leaves them null, and the tier's configured limits apply.
/// </summary>
public sealed record GatewayRoute(Guid TenantId, string Slug, string Tier, IsolationModel Isolation, bool Active, Uri? Upstream, string? Plan = null, PlanLimits? Limits = null)
{
    /// <summary>A dedicated tenant's instance of each registered app, by app name (null when the source has no registered apps).</summary>
    public IReadOnlyDictionary<string, Uri>? Apps { get; init; }

    /// <summary>True while the tenant's data moves (a tier change's freeze): its writes are answered 503 with Retry-After, reads go on.</summary>
    public bool Frozen { get; init; }

    /// <summary>True when the tenant's traffic goes to instances of its own.</summary>
    public bool Dedicated => Upstream is not null || Apps is not null;
}

/// <summary>
/// A registered app: requests whose path starts with <see cref="RoutePrefix"/> go to it (the longest
/// matching prefix wins), pool and bridge tenants' to one of its <see cref="Shared"/> instances.
/// </summary>
public sealed record GatewayApp(string Name, string RoutePrefix, IReadOnlyList<Uri> Shared)
{
    /// <summary>True when <paramref name="path"/> is the prefix or lies under it.</summary>
    public bool Matches(string path) =>
        RoutePrefix == "/"
        || (path.StartsWith(RoutePrefix, StringComparison.Ordinal) && (path.Length == RoutePrefix.Length || path[RoutePrefix.Length] == '/'));
}

/// <summary>Where the routing table comes from (the control plane's tenant registry and routes).</summary>
public interface IGatewayRouteSource
{
    Task<IReadOnlyList<GatewayRoute>> LoadAsync(CancellationToken cancellationToken);

    /// <summary>The registered apps; null when the source has none and one app behind <see cref="GatewayOptions.SharedUpstream"/> is served.</summary>
    Task<IReadOnlyList<GatewayApp>?> LoadAppsAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<GatewayApp>?>(null);

    /// <summary>Calls <paramref name="changed"/> when the source knows its routes changed (the gateway reloads at once); null when it cannot tell.</summary>
    IDisposable? OnChange(Action changed) => null;
}

/// <summary>The current routing table: replaced whole on each refresh, read without locks.</summary>
public sealed class GatewayRouteTable
{
    private volatile Snapshot _snapshot = new(FrozenDictionary<Guid, GatewayRoute>.Empty, FrozenDictionary<string, GatewayRoute>.Empty, DateTimeOffset.MinValue);
    private volatile IReadOnlyList<GatewayApp>? _apps;

    /// <summary>The registered apps, longest prefix first; null when one app is served behind the configured shared upstream.</summary>
    public IReadOnlyList<GatewayApp>? Apps => _apps;

    /// <summary>The app a request path goes to: the one with the longest matching prefix; null when none matches.</summary>
    public GatewayApp? AppFor(string path)
    {
        var apps = _apps;
        if (apps is null)
        {
            return null;
        }

        foreach (var app in apps)
        {
            if (app.Matches(path))
            {
                return app;
            }
        }

        return null;
    }

    public void ReplaceApps(IReadOnlyList<GatewayApp>? apps) =>
        _apps = apps is null ? null : [.. apps.OrderByDescending(a => a.RoutePrefix.Length).ThenBy(a => a.Name, StringComparer.Ordinal)];

    /// <summary>When the table was last loaded successfully.</summary>
    public DateTimeOffset LoadedAt => _snapshot.LoadedAt;

    public int Count => _snapshot.ById.Count;

    public GatewayRoute? Find(Guid tenantId) => _snapshot.ById.GetValueOrDefault(tenantId);

    public GatewayRoute? FindBySlug(string slug) => _snapshot.BySlug.GetValueOrDefault(slug);

    public void Replace(IEnumerable<GatewayRoute> routes, DateTimeOffset loadedAt)
    {
        ArgumentNullException.ThrowIfNull(routes);
        var list = routes.ToList();
        _snapshot = new Snapshot(
            list.ToFrozenDictionary(r => r.TenantId),
            list.GroupBy(r => r.Slug, StringComparer.Ordinal).ToFrozenDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal),
            loadedAt);
    }

    private sealed record Snapshot(FrozenDictionary<Guid, GatewayRoute> ById, FrozenDictionary<string, GatewayRoute> BySlug, DateTimeOffset LoadedAt);
}

/// <summary>Reloads the routing table every <see cref="GatewayOptions.RefreshInterval"/>; tenants come and go without a restart.</summary>
internal sealed partial class GatewayRouteRefresher(
    IGatewayRouteSource source,
    GatewayRouteTable table,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    ILogger<GatewayRouteRefresher> logger) : BackgroundService
{
    private readonly SemaphoreSlim _onDemand = new(1, 1);
    private IDisposable? _changes;

    /// <summary>
    /// Reloads now, unless a reload finished since the caller asked (callers that arrive together
    /// share one reload). For a valid token naming a tenant the table does not know yet: a tenant
    /// onboarded since the last periodic reload works at once instead of a second later.
    /// </summary>
    public async Task RefreshNowAsync(CancellationToken cancellationToken)
    {
        var asked = time.GetUtcNow();
        await _onDemand.WaitAsync(cancellationToken);
        try
        {
            if (table.LoadedAt < asked)
            {
                await RefreshAsync(cancellationToken);
            }
        }
        finally
        {
            _onDemand.Release();
        }
    }

    public override void Dispose()
    {
        _changes?.Dispose();
        _onDemand.Dispose();
        base.Dispose();
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // The first table is in place before the gateway takes requests.
        await RefreshAsync(cancellationToken);
        _changes = source.OnChange(() => _ = Task.Run(() => RefreshNowAsync(CancellationToken.None), CancellationToken.None));
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.RefreshInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await RefreshAsync(stoppingToken);
        }
    }

    private async Task RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            var routes = await source.LoadAsync(cancellationToken);
            var apps = await source.LoadAppsAsync(cancellationToken);
            table.ReplaceApps(apps);
            table.Replace(routes, time.GetUtcNow());
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Keep serving the last table; a tenant suspended meanwhile is refused once the source answers again.
            // A timed-out load is a TaskCanceledException too: only our own stop ends the refresh loop.
            Log.RefreshFailed(logger, ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Could not reload the gateway routing table; keeping the previous one")]
        public static partial void RefreshFailed(ILogger logger, Exception exception);
    }
}
