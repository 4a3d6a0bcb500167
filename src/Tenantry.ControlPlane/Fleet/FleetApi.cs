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
        TypedResults.Ok(await db.ReadAsync(FleetStore.OverviewAsync, cancellationToken));
}
