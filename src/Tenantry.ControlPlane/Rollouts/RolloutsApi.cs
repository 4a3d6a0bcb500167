using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;

namespace Tenantry.ControlPlane.Rollouts;

public static class RolloutsApi
{
    /// <summary>Rollouts and the worker that runs them.</summary>
    public static IServiceCollection AddTenantryRollouts(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<RolloutWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<RolloutWorker>());
        services.TryAddSingleton<Rollouts>();
        return services;
    }

    public static RouteGroupBuilder MapRolloutsApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        var rollouts = v1.MapGroup("/rollouts").WithTags("Rollouts");
        rollouts.MapPost("/", Start).Accepts<CreateRolloutRequest>("application/json")
            .WithSummary("Roll a release out to every tenant: {app, version, waves:[{tenants:[id]} | {percent}], bakeSeconds, gates:{maxErrorRate, maxP99Ms}}; 202 {id, operationId, status}. 404 for an unknown app, 422 for an unknown or current release or a canary without a dedicated instance, 409 while another rollout of the app runs or is paused.");
        rollouts.MapGet("/", List).WithSummary("Rollouts, newest first (optionally of one app); cursor-paginated.");
        rollouts.MapGet("/{id:guid}", Get).WithSummary("A rollout with its waves, each tenant's status and release, and the gate figures of each wave.");
        rollouts.MapPost("/{id:guid}/pause", (Guid id, HttpContext http, Rollouts r) => Control(id, "pause", http, r))
            .WithSummary("Pause before the next instance or wave; 202, 409 unless running.");
        rollouts.MapPost("/{id:guid}/resume", (Guid id, HttpContext http, Rollouts r) => Control(id, "resume", http, r))
            .WithSummary("Resume a paused rollout; 202, 409 unless paused.");
        rollouts.MapPost("/{id:guid}/abort", (Guid id, HttpContext http, Rollouts r) => Control(id, "abort", http, r))
            .WithSummary("Stop and put every instance that moved back on the previous release (status rolled-back); 202, 409 when finished.");
        return v1;
    }

    private static async Task<Results<Accepted<RolloutAccepted>, ProblemHttpResult>> Start(HttpContext http, Rollouts rollouts)
    {
        var (body, error) = await JsonBody.ReadAsync<CreateRolloutRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var (accepted, startError) = await rollouts.StartAsync(body!, http.User.Actor(), http.RequestAborted);
        return startError is not null ? startError.ToResult() : TypedResults.Accepted($"/v1/rollouts/{accepted!.Id}", accepted);
    }

    private static async Task<Results<Accepted<RolloutAccepted>, ProblemHttpResult>> Control(Guid id, string action, HttpContext http, Rollouts rollouts)
    {
        var (accepted, error) = await rollouts.ControlAsync(id, action, http.User.Actor(), http.RequestAborted);
        return error is not null ? error.ToResult() : TypedResults.Accepted($"/v1/rollouts/{id}", accepted!);
    }

    private static async Task<Results<Ok<RolloutResponse>, ProblemHttpResult>> Get(Guid id, Rollouts rollouts, CancellationToken cancellationToken) =>
        await rollouts.GetAsync(id, cancellationToken) is { } found ? TypedResults.Ok(found) : ApiError.NotFound($"Rollout {id}").ToResult();

    private static async Task<Results<Ok<Page<RolloutResponse>>, ProblemHttpResult>> List(Rollouts queries, string? app, int? limit, string? cursor, CancellationToken cancellationToken)
    {
        if (Paging.CheckLimit(limit, out var take) is { } limitError)
        {
            return limitError.ToResult();
        }

        Guid? before = null;
        if (cursor is not null)
        {
            if (!Guid.TryParse(Paging.Decode(cursor), out var position))
            {
                return ApiError.Validation("cursor", "The cursor is not one this API returned.").ToResult();
            }

            before = position;
        }

        if (app is not null && AppRules.CheckName(app) is { } appError)
        {
            return ApiError.Validation("app", appError).ToResult();
        }

        var rows = await queries.ListAsync(app, before, take + 1, cancellationToken);
        var items = rows.Take(take).ToList();
        return TypedResults.Ok(new Page<RolloutResponse>(items, rows.Count > take ? Paging.Encode(items[^1].Id.ToString()) : null));
    }
}
