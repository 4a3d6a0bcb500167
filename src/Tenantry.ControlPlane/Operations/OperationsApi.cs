using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Storage;
using Tenantry.ControlPlane.Tenants;

namespace Tenantry.ControlPlane.Operations;

public static class OperationsApi
{
    public static RouteGroupBuilder MapOperationsApi(this RouteGroupBuilder v1)
    {
        var ops = v1.MapGroup("/operations").WithTags("Operations");
        ops.MapGet("/{id}", Get).WithSummary("An operation with the status, attempts, timings and error of each step.");
        ops.MapPost("/{id}/retry", Retry).WithSummary("Resume a failed operation from its failed step (202).");
        return v1;
    }

    private static async Task<Results<Ok<OperationResponse>, ProblemHttpResult>> Get(string id, IControlPlaneDatabase db)
    {
        if (!Guid.TryParse(id, out var opId))
        {
            return ApiError.NotFound($"Operation '{id}'").ToResult();
        }

        var op = await db.ReadAsync(c => OperationStore.GetAsync(c, null, opId));
        return op is null ? ApiError.NotFound($"Operation '{id}'").ToResult() : TypedResults.Ok(OperationResponse.From(op));
    }

    private static async Task<Results<Accepted<OperationResponse>, ProblemHttpResult>> Retry(string id, HttpContext http, TenantCommands commands)
    {
        if (!Guid.TryParse(id, out var opId))
        {
            return ApiError.NotFound($"Operation '{id}'").ToResult();
        }

        var outcome = await commands.RetryAsync(opId, http.User.Actor(), http.RequestAborted);
        return outcome.Error is not null ? outcome.Error.ToResult() : TypedResults.Accepted(outcome.Location, outcome.Value);
    }
}
