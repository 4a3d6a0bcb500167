using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.Billing.Entitlements;
using Tenantry.Billing.Plans;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Routing;

/// <summary>
/// A tenant's route as the gateway needs it. <c>Upstream</c> is <c>shared</c> or the dedicated
/// instance's URL; <c>Plan</c> is the plan in effect now and <c>Limits</c> its <c>api</c> rate limit
/// (null when the plan has none: the gateway then applies its configured limits for the tier).
/// </summary>
public sealed record TenantRouteEntry(
    Guid TenantId, string Slug, string Tier, string Isolation, string Status, string Mode, string Upstream, bool Enabled, string Plan, RateLimit? Limits,
    IReadOnlyDictionary<string, string>? Apps = null)
{
    /// <summary>True when the gateway may forward the tenant's traffic.</summary>
    public bool Active => Enabled && Status == "active";

    /// <summary>True while a tier change freezes the tenant's writes: the gateway answers them 503 (reads go on).</summary>
    public bool Frozen { get; init; }
}

/// <summary>The tenants whose writes are frozen now (by a tier change's freeze), as the routing table shows them.</summary>
public interface IFrozenTenants
{
    Task<HashSet<Guid>> ListAsync(CancellationToken cancellationToken);
}

/// <summary>A registered app as the gateway routes to it: its path prefix and the upstreams of its serving shared instances.</summary>
public sealed record AppRouteEntry(string Name, string RoutePrefix, IReadOnlyList<string> Shared);

/// <summary>One read of the routing table: the tenants' routes and the apps, from the same read of the app instances.</summary>
public sealed record TenantRouting(IReadOnlyList<TenantRouteEntry> Items, IReadOnlyList<AppRouteEntry> Apps);

/// <summary>The routing table the gateway reads: every tenant with a deployed route, joined with its status, tier and plan.</summary>
public interface ITenantRouteTable
{
    /// <summary>The tenants' routes and the registered apps with their shared instances, reading the app routes once.</summary>
    Task<TenantRouting> ReadAsync(CancellationToken cancellationToken);
}

/// <summary>Where each app's traffic goes: its shared instances, and each silo tenant's dedicated instance (by app name).</summary>
public interface IAppRoutes
{
    Task<(IReadOnlyList<AppRouteEntry> Apps, IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, string>> Dedicated)> LoadAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Reads the routes with each tenant's plan in effect now, so a plan change (from its
/// <c>effectiveAt</c>) changes the tenant's limits at the gateway's next reload, without a restart.
/// </summary>
internal sealed class TenantRouteTable(IControlPlaneDatabase db, IRouteEntitlements entitlements, TimeProvider time, IAppRoutes? appRoutes = null, IFrozenTenants? frozenTenants = null) : ITenantRouteTable
{
    public async Task<TenantRouting> ReadAsync(CancellationToken cancellationToken)
    {
        var plans = await entitlements.InEffectAsync(time.GetUtcNow(), cancellationToken);
        var frozen = frozenTenants is null ? [] : await frozenTenants.ListAsync(cancellationToken);
        var routes = await db.ReadAsync(RouteStore.ListWithTenantsAsync, cancellationToken);
        var (apps, dedicated) = appRoutes is null
            ? ([], null)
            : await appRoutes.LoadAsync(cancellationToken);
        return new TenantRouting(
            [.. routes.Select(r =>
            {
                var planId = plans.PlanOf(r.TenantId, r.Tier);
                var instances = r.Mode == "dedicated" ? dedicated?.GetValueOrDefault(r.TenantId) ?? new Dictionary<string, string>() : null;
                return new TenantRouteEntry(r.TenantId, r.Slug, r.Tier, r.Isolation, r.Status, r.Mode, r.Upstream, r.Enabled, planId, plans.ApiLimitOf(planId), instances)
                {
                    Frozen = frozen.Contains(r.TenantId),
                };
            })],
            apps);
    }
}

/// <summary><c>GET /v1/routes</c>: the routing table, for gateways that run apart from the control plane.</summary>
public static class RoutesApi
{
    public static RouteGroupBuilder MapRoutesApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/routes", async (ITenantRouteTable routes, CancellationToken cancellationToken) =>
                TypedResults.Ok(await routes.ReadAsync(cancellationToken)))
            .WithTags("Routing")
            .WithSummary("The gateway routing table: each tenant's upstream (shared or dedicated, with its dedicated instance of each app), the apps with their route prefixes and shared instances, tier, status, plan in effect with its rate limit, and whether traffic may flow.");
        return v1;
    }
}
