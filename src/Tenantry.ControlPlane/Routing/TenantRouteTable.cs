using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Billing;
using Tenantry.ControlPlane.Billing.Plans;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Routing;

/// <summary>
/// A tenant's route as the gateway needs it. <c>Upstream</c> is <c>shared</c> or the dedicated
/// instance's URL; <c>Plan</c> is the plan in effect now and <c>Limits</c> its <c>api</c> rate limit
/// (null when the plan has none: the gateway then applies its configured limits for the tier).
/// </summary>
public sealed record TenantRouteEntry(
    Guid TenantId, string Slug, string Tier, string Isolation, string Status, string Mode, string Upstream, bool Enabled, string Plan, RateLimit? Limits)
{
    /// <summary>True when the gateway may forward the tenant's traffic.</summary>
    public bool Active => Enabled && Status == "active";
}

/// <summary>The routing table the gateway reads: every tenant with a deployed route, joined with its status, tier and plan.</summary>
public interface ITenantRouteTable
{
    Task<IReadOnlyList<TenantRouteEntry>> ListAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Reads the routes with each tenant's plan in effect now, so a plan change (from its
/// <c>effectiveAt</c>) changes the tenant's limits at the gateway's next reload, without a restart.
/// </summary>
internal sealed class TenantRouteTable(IControlPlaneDatabase db, BillingCatalog catalog, TimeProvider time) : ITenantRouteTable
{
    public async Task<IReadOnlyList<TenantRouteEntry>> ListAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var snapshot = await catalog.GetAsync(cancellationToken);
        var (routes, changes) = await db.ReadAsync(
            async c => (
                await c.QueryAsync(
                    """
                    SELECT r.tenant_id, t.slug, t.tier, t.isolation, t.status, r.mode, r.upstream, r.enabled
                    FROM tenant_routes r JOIN tenants t ON t.id = r.tenant_id
                    """,
                    null,
                    r => (Id: r.ReadGuid(0), Slug: r.GetString(1), Tier: r.GetString(2), Isolation: r.GetString(3), Status: r.GetString(4),
                        Mode: r.GetString(5), Upstream: r.GetString(6), Enabled: Convert.ToInt64(r.GetValue(7), System.Globalization.CultureInfo.InvariantCulture) != 0)),
                await TenantPlans.InEffectAsync(c, now)),
            cancellationToken);
        return [.. routes.Select(r =>
        {
            // Without a plan change a tenant is on its tier's plan (as billing reads it).
            var planId = changes.GetValueOrDefault(r.Id, r.Tier);
            var limits = snapshot.Plans.GetValueOrDefault(planId)?.RateLimits.FirstOrDefault(l => l.Name == RateLimit.Api);
            return new TenantRouteEntry(r.Id, r.Slug, r.Tier, r.Isolation, r.Status, r.Mode, r.Upstream, r.Enabled, planId, limits);
        })];
    }
}

/// <summary><c>GET /v1/routes</c>: the routing table, for gateways that run apart from the control plane.</summary>
public static class RoutesApi
{
    public static RouteGroupBuilder MapRoutesApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/routes", async (ITenantRouteTable routes, CancellationToken cancellationToken) =>
                TypedResults.Ok(new { items = await routes.ListAsync(cancellationToken) }))
            .WithTags("Routing")
            .WithSummary("The gateway routing table: each tenant's upstream (shared or dedicated), tier, status, plan in effect with its rate limit, and whether traffic may flow.");
        return v1;
    }
}
