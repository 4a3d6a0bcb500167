using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Fleet;

public sealed record FleetFailure(string OperationId, string TenantId, string Slug, string Kind, string? Error, string? FinishedAt);

public sealed record FleetOverview(
    long Tenants,
    IReadOnlyDictionary<string, long> ByStatus,
    IReadOnlyDictionary<string, long> ByTier,
    IReadOnlyDictionary<string, long> Operations,
    IReadOnlyList<FleetFailure> RecentFailures);

/// <summary>The aggregated view of every tenant environment the console's overview draws.</summary>
public static class FleetApi
{
    public static RouteGroupBuilder MapFleetApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/fleet", Get).WithTags("Fleet").WithSummary("Tenants per status and tier, operations per status, and the latest failed operations.");
        return v1;
    }

    private static async Task<Ok<FleetOverview>> Get(IControlPlaneDatabase db, CancellationToken cancellationToken) =>
        TypedResults.Ok(await db.ReadAsync(
            async c =>
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
            },
            cancellationToken));

    private static async Task<Dictionary<string, long>> CountsAsync(System.Data.Common.DbConnection c, string sql) =>
        (await c.QueryAsync(sql, null, r => (r.GetString(0), Convert.ToInt64(r.GetValue(1), CultureInfo.InvariantCulture))))
            .ToDictionary(x => x.Item1, x => x.Item2, StringComparer.Ordinal);
}
