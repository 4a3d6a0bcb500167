using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Storage;

namespace Tenantry.ControlPlane.Routing;

/// <summary>A tenant's route as the gateway needs it. <c>Upstream</c> is <c>shared</c> or the dedicated instance's URL.</summary>
public sealed record TenantRouteEntry(Guid TenantId, string Slug, string Tier, string Isolation, string Status, string Mode, string Upstream, bool Enabled)
{
    /// <summary>True when the gateway may forward the tenant's traffic.</summary>
    public bool Active => Enabled && Status == "active";
}

/// <summary>The routing table the gateway reads: every tenant with a deployed route, joined with its status and tier.</summary>
public interface ITenantRouteTable
{
    Task<IReadOnlyList<TenantRouteEntry>> ListAsync(CancellationToken cancellationToken);
}

internal sealed class TenantRouteTable(IControlPlaneDatabase db) : ITenantRouteTable
{
    public async Task<IReadOnlyList<TenantRouteEntry>> ListAsync(CancellationToken cancellationToken) => await db.ReadAsync(
        c => c.QueryAsync(
            """
            SELECT r.tenant_id, t.slug, t.tier, t.isolation, t.status, r.mode, r.upstream, r.enabled
            FROM tenant_routes r JOIN tenants t ON t.id = r.tenant_id
            """,
            null,
            r => new TenantRouteEntry(r.ReadGuid(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6),
                Convert.ToInt64(r.GetValue(7), System.Globalization.CultureInfo.InvariantCulture) != 0)),
        cancellationToken);
}

/// <summary><c>GET /v1/routes</c>: the routing table, for gateways that run apart from the control plane.</summary>
public static class RoutesApi
{
    public static RouteGroupBuilder MapRoutesApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/routes", async (ITenantRouteTable routes, CancellationToken cancellationToken) =>
                TypedResults.Ok(new { items = await routes.ListAsync(cancellationToken) }))
            .WithTags("Routing")
            .WithSummary("The gateway routing table: each tenant's upstream (shared or dedicated), tier, status and whether traffic may flow.");
        return v1;
    }
}
