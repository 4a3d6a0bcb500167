using System.Security.Claims;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using OpenIddict.Abstractions;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Events;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Identity;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tenantry.ControlPlane.Jobs;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateJobRouteRequest(IReadOnlyList<string>? Events, string? JobType, string? TenantId);

public sealed record JobRouteResponse(string Id, string? TenantId, IReadOnlyList<string> Events, string JobType, DateTimeOffset CreatedAt);

public sealed record JobRouteListResponse(IReadOnlyList<JobRouteResponse> Items);

/// <summary>
/// <c>/v1/jobs/routes</c>: rules that put control-plane events into tenants' queues. An operator
/// routes every tenant's events (no tenantId) or one tenant's; a tenant's admin or machine client
/// routes its own tenant's events only, and sees and deletes its own routes only.
/// </summary>
internal static class JobRoutesApi
{
    public const int MaxRoutes = 100;

    public static RouteGroupBuilder MapJobRoutesApi(this RouteGroupBuilder jobs)
    {
        jobs.MapPost("/routes", Create).Accepts<CreateJobRouteRequest>("application/json")
            .WithSummary("Route events into queues: {events: [\"tenant.*\", …], jobType, tenantId?}; each later event of a tenant that matches becomes one job of jobType in that tenant's queue, its payload the CloudEvent. 201.");
        jobs.MapGet("/routes", List).WithSummary("The routes the token may see: an operator's, all; a tenant's, its own.");
        jobs.MapDelete("/routes/{id:guid}", Delete).WithSummary("Delete a route; events after it are no longer routed by it. 204.");
        return jobs;
    }

    private sealed record Caller(bool IsOperator, Guid? Tenant)
    {
        public bool Sees(JobRoute r) => IsOperator || r.TenantId == Tenant;
    }

    private static (Caller? Caller, ApiError? Error) CallerOf(ClaimsPrincipal user)
    {
        if (user.HasScope(IdentityApi.AdminScope))
        {
            return (new Caller(true, null), null);
        }

        if (user.FindFirst(IdentityApi.TenantIdClaim)?.Value is { } claim && Guid.TryParse(claim, out var tenant)
            && user.FindFirst(Claims.Role)?.Value is TenantRoles.Admin or TenantRoles.Machine)
        {
            return (new Caller(false, tenant), null);
        }

        return (null, new ApiError(StatusCodes.Status403Forbidden, "tenant-admin-required", "Event routes are managed by operators and tenant admins.",
            "Use an operator token, or the token of an admin user or a machine client of the tenant."));
    }

    private static async Task<Results<Created<JobRouteResponse>, ProblemHttpResult>> Create(
        HttpContext http, JobBackend backend, ITenantRegistry tenants, IOptions<JobsOptions> options, TimeProvider time)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var (body, error) = await JsonBody.ReadAsync<CreateJobRouteRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        var events = body!.Events;
        if (events is null || events.Count == 0 || events.Count > EventCatalog.MaxFilters)
        {
            errors["events"] = [$"events lists 1-{EventCatalog.MaxFilters} event types or patterns, e.g. [\"tenant.*\"]; GET /v1/events/types lists the types."];
        }
        else
        {
            for (var i = 0; i < events.Count; i++)
            {
                if (EventCatalog.CheckFilter(events[i]) is { } problem)
                {
                    errors[$"events[{i}]"] = [problem];
                }
            }
        }

        var types = options.Value.Types;
        if (!JobRules.IsTypeName(body.JobType))
        {
            errors["jobType"] = ["jobType is 1-100 of a-z, 0-9, '.', '-', '_', starting with a letter."];
        }
        else if (types.Count > 0 && !types.Contains(body.JobType!, StringComparer.Ordinal))
        {
            errors["jobType"] = [$"'{body.JobType}' is not one of the configured job types: {string.Join(", ", types)}."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var tenantId = caller.Tenant;
        if (body.TenantId is { } named)
        {
            var tenant = await backend.ReadAsync(c => tenants.FindAsync(c, null, named), http.RequestAborted);
            if (!caller.IsOperator && tenant?.Id != caller.Tenant)
            {
                return new ApiError(StatusCodes.Status403Forbidden, "access-denied", "A tenant's token routes its own tenant's events only.",
                    $"'{named}' is not this token's tenant.").ToResult();
            }

            if (tenant is null)
            {
                return ApiError.Validation("tenantId", $"'{named}' names no tenant.").ToResult();
            }

            tenantId = tenant.Id;
        }

        var now = time.GetUtcNow();
        var route = await backend.WriteAsync<JobRoute?>(async (c, tx) =>
        {
            if ((await JobRouteStore.ListAsync(c, tx, tenantId)).Count >= MaxRoutes)
            {
                return null;
            }

            var made = new JobRoute
            {
                Id = Guid.CreateVersion7(now),
                TenantId = tenantId,
                Events = [.. events!.Distinct(StringComparer.Ordinal)],
                JobType = body.JobType!,
                // Events from now on: the route does not replay the outbox's past.
                FromSequence = await EventOutbox.LastAsync(c, tx),
                CreatedAt = now.ToUnixTimeMilliseconds(),
            };
            await JobRouteStore.InsertAsync(c, tx, made);
            return made;
        }, http.RequestAborted);
        if (route is null)
        {
            return ApiError.Conflict("too-many-routes", "There are too many event routes.", $"At most {MaxRoutes} routes per tenant (and fleet-wide); delete one first.").ToResult();
        }

        return TypedResults.Created($"/v1/jobs/routes/{route.Id}", Response(route));
    }

    private static async Task<Results<Ok<JobRouteListResponse>, ProblemHttpResult>> List(HttpContext http, JobBackend backend)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var routes = await backend.ReadAsync(c => JobRouteStore.ListAsync(c, null, caller.IsOperator ? null : caller.Tenant), http.RequestAborted);
        return TypedResults.Ok(new JobRouteListResponse([.. routes.Select(Response)]));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(Guid id, HttpContext http, JobBackend backend)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var deleted = await backend.WriteAsync(async (c, tx) =>
            await JobRouteStore.GetAsync(c, tx, id) is { } route && caller.Sees(route) && await JobRouteStore.DeleteAsync(c, tx, id) == 1,
            http.RequestAborted);
        return deleted ? TypedResults.NoContent() : ApiError.NotFound($"Route '{id}'").ToResult();
    }

    private static JobRouteResponse Response(JobRoute r) =>
        new(r.Id.ToString(), r.TenantId?.ToString(), r.Events, r.JobType, DateTimeOffset.FromUnixTimeMilliseconds(r.CreatedAt));
}
