using System.Data.Common;
using System.Globalization;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Fleet;

/// <summary>
/// The overview's aggregates. A read-only report over the tenants and operations tables: counts
/// and the latest failures, never a write.
/// </summary>
internal static class FleetStore
{
    public static async Task<FleetOverview> OverviewAsync(DbConnection c)
    {
        var byStatus = await CountsAsync(c, "SELECT status, COUNT(*) FROM tenants GROUP BY status");
        var byTier = await CountsAsync(c, "SELECT tier, COUNT(*) FROM tenants WHERE status <> 'offboarded' GROUP BY tier");
        var operations = await CountsAsync(c, "SELECT status, COUNT(*) FROM operations GROUP BY status");
        var failures = await c.QueryAsync(
            """
            SELECT o.id, o.tenant_id, t.slug, o.kind, o.error, o.finished_at
            FROM operations o JOIN tenants t ON t.id = o.tenant_id
            WHERE o.status = 'failed' ORDER BY o.finished_at DESC LIMIT 10
            """,
            null,
            r => new FleetFailure(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.ReadStringOrNull(4), r.ReadStringOrNull(5)));
        return new FleetOverview(byStatus.Values.Sum(), byStatus, byTier, operations, failures);
    }

    private static async Task<Dictionary<string, long>> CountsAsync(DbConnection c, string sql) =>
        (await c.QueryAsync(sql, null, r => (r.GetString(0), Convert.ToInt64(r.GetValue(1), CultureInfo.InvariantCulture))))
            .ToDictionary(x => x.Item1, x => x.Item2, StringComparer.Ordinal);
}
