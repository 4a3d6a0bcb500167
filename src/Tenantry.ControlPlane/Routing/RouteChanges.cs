using System.Data.Common;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Routing;

/// <summary>
/// Route changes that must not wait for the gateway's next periodic reload: a tier change's freeze, its switch
/// and its rollback. The change's transaction notifies (on PostgreSQL, <c>NOTIFY tenantry_routes</c> at its commit,
/// heard by every replica); <see cref="Changed"/> then tells the gateways of this process to reload at once.
/// Gateway replicas that read <c>/v1/routes</c> over HTTP still reload on their interval.
/// </summary>
public sealed class RouteChanges
{
    public const string Channel = "tenantry_routes";

    /// <summary>Raised after a route change committed here, or was notified by another replica.</summary>
    public event Action? Changed;

    /// <summary>In the transaction that changes the routes: on PostgreSQL, a notification delivered to every replica at commit.</summary>
    internal static Task NotifyAsync(DbConnection c, DbTransaction tx) =>
        c is NpgsqlConnection ? c.ExecuteAsync($"SELECT pg_notify('{Channel}', '')", tx) : Task.CompletedTask;

    /// <summary>After the commit: this process's gateways reload now.</summary>
    internal void Raise() => Changed?.Invoke();
}

/// <summary>On a PostgreSQL store: raises <see cref="RouteChanges.Changed"/> for each route change any replica notifies.</summary>
internal sealed class RouteChangeListener(RouteChanges changes, IControlPlaneDatabase db, IOptions<TenantryOptions> tenantry, ILogger<RouteChangeListener> logger)
    : StoreChannelListener(RouteChanges.Channel, logger)
{
    private readonly Lazy<NpgsqlDataSource?> _source = new(() => db.Engine == "postgresql" && !string.IsNullOrWhiteSpace(tenantry.Value.Store)
        ? NpgsqlDataSource.Create(tenantry.Value.Store)
        : null);

    protected override NpgsqlDataSource? Source => _source.Value;

    protected override void OnNotification(string payload) => changes.Raise();

    // A change may have come while no one listened.
    protected override void OnListening() => changes.Raise();

    public override void Dispose()
    {
        if (_source.IsValueCreated)
        {
            _source.Value?.Dispose();
        }

        base.Dispose();
    }
}
