using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Audit;

public sealed record AuditEventResponse(string Id, DateTimeOffset Time, string Actor, string? TenantId, string Action, string Outcome, JsonObject? Detail);

public static class AuditApi
{
    public static RouteGroupBuilder MapAuditApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/audit", List).WithTags("Audit").WithSummary("Audit events, oldest first, optionally for one tenant (id or slug); cursor-paginated.");
        return v1;
    }

    private static async Task<Results<Ok<Page<AuditEventResponse>>, ProblemHttpResult>> List(IControlPlaneDatabase db, ITenantRegistry tenants, string? tenantId, int? limit, string? cursor)
    {
        if (Paging.CheckLimit(limit, out var take) is { } limitError)
        {
            return limitError.ToResult();
        }

        long after = 0;
        if (cursor is not null && !long.TryParse(Paging.Decode(cursor), NumberStyles.None, CultureInfo.InvariantCulture, out after))
        {
            return ApiError.Validation("cursor", "The cursor is not one this API returned.").ToResult();
        }

        var page = await db.ReadAsync<List<AuditEvent>?>(async c =>
        {
            Guid? tenant = null;
            if (tenantId is not null)
            {
                tenant = (await tenants.FindAsync(c, null, tenantId))?.Id;
                if (tenant is null)
                {
                    return null;
                }
            }

            return await AuditLog.ListAsync(c, tenant, after, take + 1);
        });
        if (page is null)
        {
            return ApiError.NotFound($"Tenant '{tenantId}'").ToResult();
        }

        var items = page.Take(take).ToList();
        var next = page.Count > take ? Paging.Encode(items[^1].Sequence.ToString(CultureInfo.InvariantCulture)) : null;
        return TypedResults.Ok(new Page<AuditEventResponse>(
            [.. items.Select(e => new AuditEventResponse(e.Id.ToString(), e.Time, e.Actor, e.TenantId?.ToString(), e.Action, e.Outcome, e.Detail))],
            next));
    }
}
