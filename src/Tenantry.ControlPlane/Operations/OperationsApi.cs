using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Operations;

public static class OperationsApi
{
    public static RouteGroupBuilder MapOperationsApi(this RouteGroupBuilder v1)
    {
        var ops = v1.MapGroup("/operations").WithTags("Operations");
        ops.MapGet("/{id}", Get).WithSummary(
            "An operation with the status, attempts, timings and error of each step. wait=N (seconds, at most 30): answer once it has finished, or after N seconds.");
        return v1;
    }

    private static async Task<Results<Ok<OperationResponse>, ProblemHttpResult>> Get(
        string id, int? wait, IControlPlaneDatabase db, OperationSignals signals, TimeProvider time, CancellationToken ct)
    {
        if (!Guid.TryParse(id, out var opId))
        {
            return ApiError.NotFound($"Operation '{id}'").ToResult();
        }

        if (wait is < 0 or > 30)
        {
            return ApiError.Validation("wait", "wait is 0-30 seconds.").ToResult();
        }

        var deadline = time.GetUtcNow().AddSeconds(wait ?? 0);
        var op = await db.ReadAsync(c => OperationStore.GetAsync(c, null, opId), ct);
        while (op is { Status: OperationStatus.Pending or OperationStatus.Running } && deadline - time.GetUtcNow() is { Ticks: > 0 } left)
        {
            // Register, then re-read, so a finish between the two is not missed. Woken by this process's
            // worker or, on PostgreSQL, by another replica's (OperationListener); re-read after a while anyway.
            var finished = signals.Next(opId);
            op = await db.ReadAsync(c => OperationStore.GetAsync(c, null, opId), ct);
            if (op is not { Status: OperationStatus.Pending or OperationStatus.Running })
            {
                break;
            }

            await Task.WhenAny(finished, Task.Delay(Min(left, db.Engine == "postgresql" ? TimeSpan.FromSeconds(5) : TimeSpan.FromMilliseconds(500)), time, ct));
            ct.ThrowIfCancellationRequested();
            op = await db.ReadAsync(c => OperationStore.GetAsync(c, null, opId), ct);
        }

        return op is null ? ApiError.NotFound($"Operation '{id}'").ToResult() : TypedResults.Ok(OperationResponse.From(op));
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
