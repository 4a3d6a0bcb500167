using Tenantry.Billing.Plans;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Entitlements;

/// <summary>Each tenant's plan in effect at one moment and the plan's <c>api</c> rate limit: what the routing table publishes to gateways.</summary>
public sealed class PlansInEffect(IReadOnlyDictionary<Guid, string> changes, BillingCatalog.Snapshot snapshot)
{
    /// <summary>The plan the tenant is on: its last plan change, or without one its tier's plan (as billing reads it).</summary>
    public string PlanOf(Guid tenantId, string tier) => changes.GetValueOrDefault(tenantId, tier);

    /// <summary>The plan's <c>api</c> rate limit, or null when it has none.</summary>
    public RateLimit? ApiLimitOf(string planId) =>
        snapshot.Plans.GetValueOrDefault(planId)?.RateLimits.FirstOrDefault(l => l.Name == RateLimit.Api);

    /// <summary>The plan's share of the background-job workers (the defaults for a plan not in the catalog).</summary>
    public JobLimits JobLimitsOf(string planId) => snapshot.Plans.GetValueOrDefault(planId)?.Jobs ?? JobLimits.Default;
}

/// <summary>Billing's entitlements as the routing table reads them.</summary>
public interface IRouteEntitlements
{
    Task<PlansInEffect> InEffectAsync(DateTimeOffset at, CancellationToken cancellationToken);
}

internal sealed class RouteEntitlements(IControlPlaneDatabase db, BillingCatalog catalog) : IRouteEntitlements
{
    public async Task<PlansInEffect> InEffectAsync(DateTimeOffset at, CancellationToken cancellationToken)
    {
        var snapshot = await catalog.GetAsync(cancellationToken);
        var changes = await db.ReadAsync(c => TenantPlans.InEffectAsync(c, at), cancellationToken);
        return new PlansInEffect(changes, snapshot);
    }
}
