using System.Data.Common;
using System.Globalization;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Routing;

/// <summary>A row of the routing table with its tenant's slug, tier, isolation and status.</summary>
internal sealed record RouteRow(Guid TenantId, string Slug, string Tier, string Isolation, string Status, string Mode, string Upstream, bool Enabled);

/// <summary>
/// The tenant_routes table: where each tenant's traffic goes (shared, or its dedicated instance)
/// and whether it may flow. Compute providers write it, the routing table and the built-in meters
/// read it. Callers own the transaction.
/// </summary>
internal static class RouteStore
{
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Routing", """

        CREATE TABLE IF NOT EXISTS tenant_routes (
            tenant_id TEXT PRIMARY KEY,
            slug TEXT NOT NULL,
            mode TEXT NOT NULL,
            upstream TEXT NOT NULL,
            enabled INTEGER NOT NULL,
            updated_at TEXT NOT NULL
        );
        """);

    public static async Task<string?> UpstreamAsync(DbConnection c, DbTransaction? tx, Guid tenantId) =>
        await c.ScalarAsync("SELECT upstream FROM tenant_routes WHERE tenant_id = @id", tx, ("@id", tenantId)) as string;

    public static Task<List<string>> DedicatedUpstreamsAsync(DbConnection c, DbTransaction? tx) =>
        c.QueryAsync("SELECT upstream FROM tenant_routes WHERE mode = 'dedicated'", tx, r => r.GetString(0));

    /// <summary>The slugs of dedicated tenants whose route is on.</summary>
    public static Task<List<string>> EnabledDedicatedSlugsAsync(DbConnection c) =>
        c.QueryAsync("SELECT slug FROM tenant_routes WHERE mode = 'dedicated' AND enabled = @on ORDER BY slug", null, r => r.GetString(0), ("@on", true));

    /// <summary>The tenants whose route is on, with whether it is dedicated.</summary>
    public static Task<List<(string Slug, bool Dedicated)>> EnabledRoutesAsync(DbConnection c) =>
        c.QueryAsync("SELECT slug, mode FROM tenant_routes WHERE enabled = @on ORDER BY slug", null, r => (r.GetString(0), r.GetString(1) == "dedicated"), ("@on", true));

    public static Task InsertAsync(DbConnection c, DbTransaction tx, Guid tenantId, string slug, bool dedicated, string upstream, DateTimeOffset now) => c.ExecuteAsync(
        "INSERT INTO tenant_routes (tenant_id, slug, mode, upstream, enabled, updated_at) VALUES (@id, @slug, @mode, @upstream, 1, @now)",
        tx, ("@id", tenantId), ("@slug", slug), ("@mode", dedicated ? "dedicated" : "shared"), ("@upstream", upstream), ("@now", now));

    public static Task SetEnabledAsync(DbConnection c, DbTransaction tx, Guid tenantId, bool enabled, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE tenant_routes SET enabled = @enabled, updated_at = @now WHERE tenant_id = @id",
        tx, ("@id", tenantId), ("@enabled", enabled), ("@now", now));

    /// <summary>Points the tenant's traffic at its dedicated instances or the shared ones (a tier change's switch).</summary>
    public static Task SetModeAsync(DbConnection c, DbTransaction tx, Guid tenantId, bool dedicated, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE tenant_routes SET mode = @mode, upstream = @mode, updated_at = @now WHERE tenant_id = @id",
        tx, ("@id", tenantId), ("@mode", dedicated ? "dedicated" : "shared"), ("@now", now));

    public static Task DeleteAsync(DbConnection c, DbTransaction tx, Guid tenantId) =>
        c.ExecuteAsync("DELETE FROM tenant_routes WHERE tenant_id = @id", tx, ("@id", tenantId));

    public static Task<List<RouteRow>> ListWithTenantsAsync(DbConnection c) => c.QueryAsync(
        """
        SELECT r.tenant_id, t.slug, t.tier, t.isolation, t.status, r.mode, r.upstream, r.enabled
        FROM tenant_routes r JOIN tenants t ON t.id = r.tenant_id
        """,
        null,
        r => new RouteRow(r.ReadGuid(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4),
            r.GetString(5), r.GetString(6), Convert.ToInt64(r.GetValue(7), CultureInfo.InvariantCulture) != 0));

    /// <summary>Active and suspended tenants, each with whether its dedicated route is on.</summary>
    public static async Task<List<(Guid Id, string Slug, bool Dedicated)>> RunningTenantsAsync(DbConnection c)
    {
        var tenants = await c.QueryAsync("SELECT id, slug FROM tenants WHERE status IN ('active', 'suspended')", null, r => (Id: r.ReadGuid(0), Slug: r.GetString(1)));
        var dedicated = (await c.QueryAsync("SELECT tenant_id FROM tenant_routes WHERE mode = 'dedicated' AND enabled = 1", null, r => r.ReadGuid(0))).ToHashSet();
        return [.. tenants.Select(t => (t.Id, t.Slug, dedicated.Contains(t.Id)))];
    }
}
