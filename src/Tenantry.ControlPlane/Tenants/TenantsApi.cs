using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Tenants;

public static class TenantsApi
{
    public static RouteGroupBuilder MapTenantsApi(this RouteGroupBuilder v1)
    {
        var tenants = v1.MapGroup("/tenants").WithTags("Tenants");
        tenants.MapPost("/", Create)
            .Accepts<CreateTenantRequest>("application/json")
            .WithSummary("Onboard a tenant: 202 with the tenant in status provisioning and its onboarding operationId.");
        tenants.MapGet("/", List).WithSummary("List tenants, filtered by status, tier or a search on slug and name; cursor-paginated.");
        tenants.MapGet("/{id}", Get).WithSummary("A tenant by id or slug, with its ETag.");
        tenants.MapPatch("/{id}", Patch)
            .Accepts<JsonObject>("application/merge-patch+json", "application/json")
            .WithSummary("Change name, adminEmail, config (merge patch) or tier; requires If-Match.");
        tenants.MapPost("/{id}/suspend", (string id, HttpContext http, TenantCommands commands) => Start(id, OperationKind.Suspend, http, commands))
            .WithSummary("Suspend an active tenant (202 + operation).");
        tenants.MapPost("/{id}/reactivate", (string id, HttpContext http, TenantCommands commands) => Start(id, OperationKind.Reactivate, http, commands))
            .WithSummary("Reactivate a suspended tenant (202 + operation).");
        tenants.MapDelete("/{id}", (string id, HttpContext http, TenantCommands commands) => Start(id, OperationKind.Offboard, http, commands))
            .WithSummary("Offboard a tenant: export its data, then remove it (202 + operation).");
        tenants.MapPost("/{id}/tier", ChangeTier)
            .Accepts<ChangeTierRequest>("application/json")
            .WithSummary("Change the tenant's tier. To a tier of another isolation model: 202 with a change-tier operation that moves its data (provision-target, capture-changes, copy, catch-up, freeze, verify, switch, drain, retire-source) while it keeps working; to one of the same model: 200 with the tenant.");
        tenants.MapPost("/{id}/move", Move)
            .Accepts<MoveTenantRequest>("application/json")
            .WithSummary("Move the tenant to another cell of its region: 202 with a move operation that moves its data to the cell's servers (provision-target, capture-changes, copy, catch-up, freeze, verify, switch, drain, retire-source) while it keeps working; when both cells use the same place (embedded files, the shared pool, one server) only the placement changes. Honours If-Match and Idempotency-Key.");
        tenants.MapGet("/{id}/operations", Operations).WithSummary("The tenant's operations, newest last.");

        // Retrying resumes the tenant's change where it failed, so it is a tenant command.
        v1.MapPost("/operations/{id}/retry", Retry).WithTags("Operations").WithSummary("Resume a failed operation from its failed step (202).");
        return v1;
    }

    private static async Task<Results<Accepted<TenantResponse>, ProblemHttpResult>> Create(HttpContext http, TenantCommands commands)
    {
        var (body, error) = await JsonBody.ReadAsync<CreateTenantRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var (key, keyError) = IdempotencyKey.From(http.Request, http.User.Actor(), TenantCommands.Canonical(body));
        if (keyError is not null)
        {
            return keyError.ToResult();
        }

        var outcome = await commands.CreateAsync(body!, http.User.Actor(), key, http.RequestAborted);
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        if (outcome.Replayed)
        {
            http.Response.Headers["Idempotent-Replayed"] = "true";
        }

        return TypedResults.Accepted(outcome.Location, outcome.Value);
    }

    private static async Task<Results<Ok<Page<TenantResponse>>, ProblemHttpResult>> List(
        IControlPlaneDatabase db, string? status, string? tier, string? q, int? limit, string? cursor)
    {
        TenantStatus? statusFilter = null;
        if (status is not null)
        {
            if (!WireNames.TryParseStatus(status, out var parsed))
            {
                return ApiError.Validation("status", "status is one of provisioning, active, suspended, failed, offboarding, offboarded.").ToResult();
            }

            statusFilter = parsed;
        }

        if (tier is not null && !TenantRules.IsValidTierName(tier))
        {
            return ApiError.Validation("tier", "A tier name is lowercase letters, digits and '-'.").ToResult();
        }

        if (q is { Length: > 100 })
        {
            return ApiError.Validation("q", "A search is at most 100 characters.").ToResult();
        }

        if (Paging.CheckLimit(limit, out var take) is { } limitError)
        {
            return limitError.ToResult();
        }

        Guid? after = null;
        if (cursor is not null)
        {
            if (!Guid.TryParse(Paging.Decode(cursor), out var position))
            {
                return ApiError.Validation("cursor", "The cursor is not one this API returned.").ToResult();
            }

            after = position;
        }

        var rows = await db.ReadAsync(c => TenantStore.ListAsync(c, new TenantFilter(statusFilter, tier, q, after, take + 1)));
        var items = rows.Take(take).Select(TenantResponse.From).ToList();
        var next = rows.Count > take ? Paging.Encode(items[^1].Id) : null;
        return TypedResults.Ok(new Page<TenantResponse>(items, next));
    }

    private static async Task<Results<Ok<TenantResponse>, ProblemHttpResult>> Get(string id, IControlPlaneDatabase db, HttpContext http)
    {
        var tenant = await db.ReadAsync(c => TenantStore.FindAsync(c, null, id));
        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        http.Response.Headers.ETag = tenant.ETag;
        return TypedResults.Ok(TenantResponse.From(tenant));
    }

    private static async Task<Results<Accepted<OperationResponse>, Ok<TenantResponse>, ProblemHttpResult>> ChangeTier(string id, HttpContext http, TenantCommands commands)
    {
        var (body, error) = await JsonBody.ReadAsync<ChangeTierRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var (key, keyError) = IdempotencyKey.From(http.Request, http.User.Actor(), TenantCommands.Canonical(body));
        if (keyError is not null)
        {
            return keyError.ToResult();
        }

        return TierChanged(http, await commands.ChangeTierAsync(id, body!.Tier, http.User.Actor(), key, null, http.RequestAborted));
    }

    private static async Task<Results<Accepted<OperationResponse>, ProblemHttpResult>> Move(string id, HttpContext http, TenantCommands commands)
    {
        var (body, error) = await JsonBody.ReadAsync<JsonObject>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (body?.FirstOrDefault(p => p.Key != "cell") is { Key: { } unknown })
        {
            return ApiError.Validation(unknown, $"'{unknown}' is not a field of a move; send {{\"cell\": \"<name>\"}}.").ToResult();
        }

        if (body?["cell"] is not JsonValue value || !value.TryGetValue<string>(out var cell) || cell.Length == 0)
        {
            return ApiError.Validation("cell", "The cell to move to is required, as a string: a name of GET /v1/cells.").ToResult();
        }

        var (key, keyError) = IdempotencyKey.From(http.Request, http.User.Actor(), TenantCommands.Canonical(new MoveTenantRequest(cell)));
        if (keyError is not null)
        {
            return keyError.ToResult();
        }

        var ifMatch = http.Request.Headers.IfMatch.ToString();
        var outcome = await commands.MoveAsync(id, cell, http.User.Actor(), key, ifMatch.Length == 0 ? null : ifMatch, http.RequestAborted);
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        if (outcome.Replayed)
        {
            http.Response.Headers["Idempotent-Replayed"] = "true";
        }

        return TypedResults.Accepted(outcome.Location, outcome.Value);
    }

    private static Results<Accepted<OperationResponse>, Ok<TenantResponse>, ProblemHttpResult> TierChanged(HttpContext http, Outcome<TierChangeStarted> outcome)
    {
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        if (outcome.Replayed)
        {
            http.Response.Headers["Idempotent-Replayed"] = "true";
        }

        if (outcome.Value!.Operation is { } operation)
        {
            return TypedResults.Accepted(outcome.Location, operation);
        }

        http.Response.Headers.ETag = $"\"{outcome.Value.Tenant!.Version}\"";
        return TypedResults.Ok(outcome.Value.Tenant);
    }

    private static async Task<Results<Accepted<OperationResponse>, Ok<TenantResponse>, ProblemHttpResult>> Patch(string id, HttpContext http, TenantCommands commands)
    {
        var (body, error) = await JsonBody.ReadAsync<JsonObject>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        // The tier alone: a change of isolation model starts the data move (202 + its operation), as POST /tier does.
        if (body!.Count == 1 && body["tier"] is JsonValue tierValue && tierValue.TryGetValue<string>(out var tier))
        {
            var ifMatch = http.Request.Headers.IfMatch.ToString();
            if (string.IsNullOrEmpty(ifMatch))
            {
                return new ApiError(StatusCodes.Status428PreconditionRequired, "precondition-required", "If-Match is required.",
                    "Send the tenant's ETag (from GET /v1/tenants/{id}) in If-Match, so a concurrent change is not overwritten.").ToResult();
            }

            return TierChanged(http, await commands.ChangeTierAsync(id, tier, http.User.Actor(), null, ifMatch, http.RequestAborted));
        }

        var outcome = await commands.PatchAsync(id, body!, http.Request.Headers.IfMatch.ToString(), http.User.Actor(), http.RequestAborted);
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        http.Response.Headers.ETag = $"\"{outcome.Value!.Version}\"";
        return TypedResults.Ok(outcome.Value);
    }

    private static async Task<Results<Accepted<OperationResponse>, ProblemHttpResult>> Start(string id, OperationKind kind, HttpContext http, TenantCommands commands)
    {
        var (key, keyError) = IdempotencyKey.From(http.Request, http.User.Actor(), "");
        if (keyError is not null)
        {
            return keyError.ToResult();
        }

        var outcome = await commands.StartAsync(id, kind, http.User.Actor(), key, http.RequestAborted);
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        if (outcome.Replayed)
        {
            http.Response.Headers["Idempotent-Replayed"] = "true";
        }

        return TypedResults.Accepted(outcome.Location, outcome.Value);
    }

    private static async Task<Results<Ok<Page<OperationResponse>>, ProblemHttpResult>> Operations(string id, IControlPlaneDatabase db)
    {
        var ops = await db.ReadAsync<List<OperationResponse>?>(async c =>
        {
            var tenant = await TenantStore.FindAsync(c, null, id);
            if (tenant is null)
            {
                return null;
            }

            var result = new List<OperationResponse>();
            foreach (var opId in await OperationStore.ForTenantAsync(c, tenant.Id))
            {
                result.Add(OperationResponse.From((await OperationStore.GetAsync(c, null, opId))!));
            }

            return result;
        });
        return ops is null ? ApiError.NotFound($"Tenant '{id}'").ToResult() : TypedResults.Ok(new Page<OperationResponse>(ops, null));
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
