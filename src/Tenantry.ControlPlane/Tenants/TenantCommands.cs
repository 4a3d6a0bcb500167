using System.Data.Common;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Cells;
using Tenantry.ControlPlane.Events;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.TierChanges;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Tenants;

/// <summary>The result of a command: a value, or the problem that stopped it.</summary>
public sealed record Outcome<T>(T? Value, ApiError? Error, string? Location = null, bool Replayed = false)
    where T : class
{
    public static implicit operator Outcome<T>(ApiError error) => new(null, error);
}

/// <summary>What a change of tier started: the operation moving the data, or (same isolation) the updated tenant.</summary>
public sealed record TierChangeStarted(OperationResponse? Operation, TenantResponse? Tenant);

/// <summary>
/// Every change to a tenant: checked, then written in one transaction together with its
/// operation, its audit event and its idempotency record, then handed to the worker.
/// </summary>
internal sealed partial class TenantCommands(
    IControlPlaneDatabase db,
    IOperationQueue queue,
    IEventOutbox events,
    CellPlacement cells,
    IOptions<TenantryOptions> options,
    TimeProvider time,
    ILogger<TenantCommands> logger)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static string Canonical<T>(T value) => JsonSerializer.Serialize(value, Json);

    public async Task<Outcome<TenantResponse>> CreateAsync(CreateTenantRequest request, string actor, IdempotencyKey? key, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>();
        void Check(string field, string? problem)
        {
            if (problem is not null)
            {
                errors[field] = [problem];
            }
        }

        Check("name", TenantRules.CheckName(request.Name));
        Check("adminEmail", TenantRules.CheckEmail(request.AdminEmail));
        if (request.Slug is not null)
        {
            Check("slug", TenantRules.CheckSlug(request.Slug));
        }

        IsolationModel isolation = default;
        if (string.IsNullOrEmpty(request.Tier))
        {
            Check("tier", $"The tier is required: one of {string.Join(", ", options.Value.Tiers.Keys)}.");
        }
        else if (!options.Value.Tiers.TryGetValue(request.Tier, out var model) || !WireNames.TryParseIsolation(model, out isolation))
        {
            Check("tier", $"Unknown tier '{request.Tier}': one of {string.Join(", ", options.Value.Tiers.Keys)}.");
        }

        if (request.Config is { } config && Encoding.UTF8.GetByteCount(config.ToJsonString()) > TenantRules.ConfigMaxBytes)
        {
            Check("config", $"config is at most {TenantRules.ConfigMaxBytes} bytes of JSON.");
        }

        Check("config.region", cells.CheckRegion(request.Config));
        if (errors.Count > 0)
        {
            return ApiError.Validation(errors);
        }

        var outcome = await db.WriteAsync<Outcome<TenantResponse>>(
            async (c, tx) =>
            {
                if (await ReplayAsync<TenantResponse>(c, tx, key) is { } earlier)
                {
                    return earlier;
                }

                var slug = request.Slug ?? await FreeSlugAsync(c, tx, TenantRules.SlugFromName(request.Name!));
                if (await TenantStore.SlugTakenAsync(c, tx, slug))
                {
                    return ApiError.Conflict("slug-taken", "The slug is taken.", $"Another tenant already uses the slug '{slug}'. Slugs stay reserved after offboarding.");
                }

                var now = time.GetUtcNow();
                var id = Guid.CreateVersion7(now);
                var (placement, noRoom) = await cells.PlaceAsync(c, tx, id, CellPlacement.RegionOf(request.Config), now);
                if (noRoom is not null)
                {
                    return noRoom;
                }

                var tenant = new Tenant
                {
                    Id = id,
                    Slug = slug,
                    Name = request.Name!.Trim(),
                    Tier = request.Tier!,
                    Isolation = isolation,
                    Status = TenantStatus.Provisioning,
                    AdminEmail = request.AdminEmail!,
                    Config = request.Config?.DeepClone().AsObject() ?? [],
                    Resources = new JsonObject { ["placement"] = placement!.ToJson() },
                    Version = 1,
                    CreatedAt = now,
                    UpdatedAt = now,
                };
                var op = NewOperation(OperationDefinition.Onboard, tenant.Id, actor, now);
                tenant = tenant with { CurrentOperationId = op.Id };
                await TenantStore.InsertAsync(c, tx, tenant);
                await OperationStore.InsertAsync(c, tx, op);
                await events.AppendAsync(c, tx, TenantEvents.Created(tenant, op.Id), now);
                await AuditAsync(c, tx, actor, tenant.Id, "tenant.create", "accepted", new JsonObject
                {
                    ["slug"] = tenant.Slug, ["tier"] = tenant.Tier, ["operationId"] = op.Id.ToString(),
                });
                var response = TenantResponse.From(tenant);
                var location = $"/v1/tenants/{tenant.Id}";
                await RememberAsync(c, tx, key, location, response, now);

                return new Outcome<TenantResponse>(response, null, location);
            },
            ct);
        if (outcome.Value is { OperationId: { } opId } created && !outcome.Replayed)
        {
            queue.Enqueue(Guid.Parse(opId));
            Log.Created(logger, created.Id, created.Slug, created.Tier, opId, actor);
        }

        return outcome;
    }

    /// <summary>Starts suspension, reactivation or offboarding.</summary>
    public async Task<Outcome<OperationResponse>> StartAsync(string idOrSlug, OperationKind kind, string actor, IdempotencyKey? key, CancellationToken ct)
    {
        var definition = OperationDefinition.For(kind);
        var outcome = await db.WriteAsync<Outcome<OperationResponse>>(
            async (c, tx) =>
            {
                if (await ReplayAsync<OperationResponse>(c, tx, key) is { } earlier)
                {
                    return earlier;
                }

                var tenant = await TenantStore.FindAsync(c, tx, idOrSlug);
                if (tenant is null)
                {
                    return ApiError.NotFound($"Tenant '{idOrSlug}'");
                }

                var action = $"tenant.{kind.ToWire()}";
                if (await InFlightAsync(c, tx, tenant) is { } busy)
                {
                    await AuditAsync(c, tx, actor, tenant.Id, action, "rejected", new JsonObject { ["reason"] = busy.Detail });
                    return busy;
                }

                var allowed = kind switch
                {
                    OperationKind.Suspend => tenant.Status == TenantStatus.Active,
                    OperationKind.Reactivate => tenant.Status == TenantStatus.Suspended,
                    OperationKind.Offboard => tenant.Status is TenantStatus.Active or TenantStatus.Suspended or TenantStatus.Failed,
                    _ => false,
                };
                if (!allowed)
                {
                    var detail = $"A tenant that is {tenant.Status.ToWire()} cannot go through {kind.ToWire()}.";
                    await AuditAsync(c, tx, actor, tenant.Id, action, "rejected", new JsonObject { ["reason"] = detail });
                    return ApiError.Conflict("invalid-transition", "The tenant's status does not allow this.", detail);
                }

                var now = time.GetUtcNow();
                var op = NewOperation(definition, tenant.Id, actor, now);
                await OperationStore.InsertAsync(c, tx, op);
                var updated = tenant with
                {
                    Status = definition.Running,
                    StatusReason = null,
                    CurrentOperationId = op.Id,
                    Version = tenant.Version + 1,
                    UpdatedAt = now,
                };
                await TenantStore.UpdateAsync(c, tx, updated, tenant.Version);
                if (updated.Status != tenant.Status)
                {
                    await events.AppendAsync(c, tx, TenantEvents.Moved(updated, tenant.Status, op.Id, null), now);
                }

                await AuditAsync(c, tx, actor, tenant.Id, action, "accepted", new JsonObject { ["operationId"] = op.Id.ToString() });
                var response = OperationResponse.From(op);
                var location = $"/v1/operations/{op.Id}";
                await RememberAsync(c, tx, key, location, response, now);

                return new Outcome<OperationResponse>(response, null, location);
            },
            ct);
        Started(outcome.Replayed ? null : outcome.Value, actor);
        return outcome;
    }

    public async Task<Outcome<OperationResponse>> RetryAsync(Guid operationId, string actor, CancellationToken ct)
    {
        var outcome = await db.WriteAsync<Outcome<OperationResponse>>(
            async (c, tx) =>
            {
                var op = await OperationStore.GetAsync(c, tx, operationId);
                if (op is null)
                {
                    return ApiError.NotFound($"Operation '{operationId}'");
                }

                var tenant = await TenantStore.GetAsync(c, tx, op.TenantId);
                if (op.Status != OperationStatus.Failed)
                {
                    return ApiError.Conflict("operation-not-failed", "Only a failed operation can be retried.", $"The operation is {op.Status.ToWire()}.");
                }

                if (op.Kind == OperationKind.TierChange)
                {
                    return ApiError.Conflict("tier-change-not-retryable", "A failed tier change is not retried.",
                        "It was rolled back and the tenant stayed where it was; start a new tier change (POST /v1/tenants/{id}/tier).");
                }

                if (op.Kind == OperationKind.Move)
                {
                    return ApiError.Conflict("move-not-retryable", "A failed move is not retried.",
                        "It was rolled back and the tenant stayed in its cell; start a new move (POST /v1/tenants/{id}/move).");
                }

                if (tenant is null || tenant.CurrentOperationId != op.Id)
                {
                    return ApiError.Conflict("operation-superseded", "A later operation replaced this one.", "Retry the tenant's current operation instead.");
                }

                var now = time.GetUtcNow();
                var definition = OperationDefinition.For(op.Kind);
                await OperationStore.ResetForRetryAsync(c, tx, op.Id);
                var retrying = tenant with { Status = definition.Running, StatusReason = null, Version = tenant.Version + 1, UpdatedAt = now };
                await TenantStore.UpdateAsync(c, tx, retrying, tenant.Version);
                if (retrying.Status != tenant.Status)
                {
                    await events.AppendAsync(c, tx, TenantEvents.Moved(retrying, tenant.Status, op.Id, null), now);
                }

                await AuditAsync(c, tx, actor, tenant.Id, "operation.retry", "accepted", new JsonObject { ["operationId"] = op.Id.ToString() });
                var retried = await OperationStore.GetAsync(c, tx, op.Id);
                return new Outcome<OperationResponse>(OperationResponse.From(retried!), null, $"/v1/operations/{op.Id}");
            },
            ct);
        if (outcome.Value is { } retried)
        {
            queue.Enqueue(operationId);
            Log.Retried(logger, retried.TenantId, retried.Kind, retried.Id, actor);
        }

        return outcome;
    }

    /// <summary>JSON merge patch (RFC 7396) of name, adminEmail, config and tier, guarded by If-Match.</summary>
    public async Task<Outcome<TenantResponse>> PatchAsync(string idOrSlug, JsonObject patch, string? ifMatch, string actor, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(ifMatch))
        {
            return new ApiError(StatusCodes.Status428PreconditionRequired, "precondition-required", "If-Match is required.",
                "Send the tenant's ETag (from GET /v1/tenants/{id}) in If-Match, so a concurrent change is not overwritten.");
        }

        var errors = new Dictionary<string, string[]>();
        foreach (var (field, _) in patch)
        {
            if (field is not ("name" or "adminEmail" or "config" or "tier"))
            {
                errors[field] = [$"'{field}' cannot be changed; name, adminEmail, config and tier can."];
            }
        }

        string? name = null, email = null, tier = null;
        if (patch.TryGetPropertyValue("name", out var n))
        {
            name = (n as JsonValue)?.TryGetValue<string>(out var s) == true ? s : null;
            if (TenantRules.CheckName(name) is { } problem)
            {
                errors["name"] = [problem];
            }
        }

        if (patch.TryGetPropertyValue("adminEmail", out var e))
        {
            email = (e as JsonValue)?.TryGetValue<string>(out var s) == true ? s : null;
            if (TenantRules.CheckEmail(email) is { } problem)
            {
                errors["adminEmail"] = [problem];
            }
        }

        if (patch.TryGetPropertyValue("tier", out var t))
        {
            tier = (t as JsonValue)?.TryGetValue<string>(out var s) == true ? s : null;
            if (tier is null || !options.Value.Tiers.ContainsKey(tier))
            {
                errors["tier"] = [$"Unknown tier: one of {string.Join(", ", options.Value.Tiers.Keys)}."];
            }
        }

        if (patch.TryGetPropertyValue("config", out var cfg) && cfg is not null and not JsonObject)
        {
            errors["config"] = ["config is a JSON object (merged into the current one) or null (cleared)."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors);
        }

        return await db.WriteAsync<Outcome<TenantResponse>>(
            async (c, tx) =>
            {
                var tenant = await TenantStore.FindAsync(c, tx, idOrSlug);
                if (tenant is null)
                {
                    return ApiError.NotFound($"Tenant '{idOrSlug}'");
                }

                if (StaleETag(tenant, ifMatch) is { } stale)
                {
                    await AuditAsync(c, tx, actor, tenant.Id, "tenant.update", "rejected", new JsonObject { ["reason"] = "stale ETag" });
                    return stale;
                }

                if (tenant.Status is TenantStatus.Offboarding or TenantStatus.Offboarded)
                {
                    return ApiError.Conflict("invalid-transition", "The tenant is being removed.", $"A tenant that is {tenant.Status.ToWire()} cannot be changed.");
                }

                if (tier is not null && tier != tenant.Tier)
                {
                    var newIsolation = WireNames.ParseIsolation(options.Value.Tiers[tier]);
                    if (newIsolation != tenant.Isolation)
                    {
                        return new ApiError(StatusCodes.Status422UnprocessableEntity, "tier-change-moves-data", "This tier change needs a data move.",
                            $"Tier '{tier}' uses {newIsolation.ToWire()} isolation and the tenant uses {tenant.Isolation.ToWire()}: send the tier alone (PATCH {{\"tier\": \"{tier}\"}} or POST /v1/tenants/{{id}}/tier) to start the move, and the other fields in a PATCH of their own.");
                    }
                }

                var config = tenant.Config.DeepClone().AsObject();
                if (patch.TryGetPropertyValue("config", out var change))
                {
                    config = change is JsonObject merge ? MergePatch(config, merge) : [];
                    if (Encoding.UTF8.GetByteCount(config.ToJsonString()) > TenantRules.ConfigMaxBytes)
                    {
                        return ApiError.Validation("config", $"config is at most {TenantRules.ConfigMaxBytes} bytes of JSON.");
                    }

                    if (cells.CheckRegion(config) is { } badRegion)
                    {
                        return ApiError.Validation("config.region", badRegion);
                    }

                    // A cell keeps its tenants' data in its region: another region is a move, not an edit.
                    var region = CellPlacement.RegionOf(config);
                    if (region is not null && await cells.CellOfAsync(c, tx, tenant.Id) is { Region: { } cellRegion } cell && cellRegion != region)
                    {
                        return new ApiError(StatusCodes.Status422UnprocessableEntity, "region-change-moves-data", "This region change needs a data move.",
                            $"The tenant lives in cell '{cell.Name}' of region '{cellRegion}'; region '{region}' is served by other cells, and a change of region moves the tenant's data.");
                    }
                }

                var now = time.GetUtcNow();
                var updated = tenant with
                {
                    Name = name?.Trim() ?? tenant.Name,
                    AdminEmail = email ?? tenant.AdminEmail,
                    Tier = tier ?? tenant.Tier,
                    Config = config,
                    Version = tenant.Version + 1,
                    UpdatedAt = now,
                };
                await TenantStore.UpdateAsync(c, tx, updated, tenant.Version);
                if (updated.Tier != tenant.Tier)
                {
                    await events.AppendAsync(c, tx, TenantEvents.TierChanged(updated, tenant.Tier), now);
                }

                await AuditAsync(c, tx, actor, tenant.Id, "tenant.update", "succeeded", new JsonObject
                {
                    ["fields"] = new JsonArray([.. patch.Select(p => JsonValue.Create(p.Key))]),
                });
                return new Outcome<TenantResponse>(TenantResponse.From(updated), null);
            },
            ct);
    }

    /// <summary>412 when <paramref name="ifMatch"/> names another version of the tenant than its current one; null when it matches, is <c>*</c> or is absent.</summary>
    private static ApiError? StaleETag(Tenant tenant, string? ifMatch) =>
        ifMatch is null || ifMatch == "*" || ifMatch.Replace("W/", "", StringComparison.Ordinal) == tenant.ETag
            ? null
            : new ApiError(StatusCodes.Status412PreconditionFailed, "precondition-failed", "The tenant changed since you read it.",
                $"If-Match was {ifMatch} but the tenant is now at {tenant.ETag}; read it again and reapply your change.");

    /// <summary>
    /// A change of tier: to a tier of the same isolation model, a plain update (200 with the tenant); to another, a
    /// <c>change-tier</c> operation that moves the tenant's data (202 with the operation), its target recorded in
    /// <c>tier_changes</c> in the same transaction. <paramref name="ifMatch"/>, when given, guards it as a PATCH.
    /// </summary>
    public async Task<Outcome<TierChangeStarted>> ChangeTierAsync(string idOrSlug, string? tier, string actor, IdempotencyKey? key, string? ifMatch, CancellationToken ct)
    {
        var patching = ifMatch is not null;
        if (string.IsNullOrEmpty(tier) || !options.Value.Tiers.TryGetValue(tier, out var model) || !WireNames.TryParseIsolation(model, out var isolation))
        {
            return ApiError.Validation("tier", $"Unknown tier{(string.IsNullOrEmpty(tier) ? "" : $" '{tier}'")}: one of {string.Join(", ", options.Value.Tiers.Keys)}.");
        }

        var outcome = await db.WriteAsync<Outcome<TierChangeStarted>>(
            async (c, tx) =>
            {
                if (await ReplayAsync<OperationResponse>(c, tx, key) is { } earlier)
                {
                    return new Outcome<TierChangeStarted>(earlier.Value is null ? null : new TierChangeStarted(earlier.Value, null), earlier.Error, earlier.Location, earlier.Replayed);
                }

                var tenant = await TenantStore.FindAsync(c, tx, idOrSlug);
                if (tenant is null)
                {
                    return ApiError.NotFound($"Tenant '{idOrSlug}'");
                }

                if (StaleETag(tenant, ifMatch) is { } stale)
                {
                    return stale;
                }

                if (tier == tenant.Tier)
                {
                    return patching
                        ? new Outcome<TierChangeStarted>(new TierChangeStarted(null, TenantResponse.From(tenant)), null)
                        : ApiError.Conflict("tier-unchanged", "The tenant already has this tier.", $"The tenant's tier is already '{tier}'.");
                }

                if (tenant.Status is TenantStatus.Offboarding or TenantStatus.Offboarded)
                {
                    return ApiError.Conflict("invalid-transition", "The tenant is being removed.", $"A tenant that is {tenant.Status.ToWire()} cannot be changed.");
                }

                var now = time.GetUtcNow();
                if (isolation != tenant.Isolation)
                {
                    if (await InFlightAsync(c, tx, tenant) is { } busy)
                    {
                        await AuditAsync(c, tx, actor, tenant.Id, "tenant.tier-change", "rejected", new JsonObject { ["reason"] = busy.Detail });
                        return busy;
                    }

                    if (tenant.Status != TenantStatus.Active)
                    {
                        var detail = $"A tenant that is {tenant.Status.ToWire()} cannot move its data to another tier; only an active one can.";
                        await AuditAsync(c, tx, actor, tenant.Id, "tenant.tier-change", "rejected", new JsonObject { ["reason"] = detail });
                        return ApiError.Conflict("invalid-transition", "The tenant's status does not allow this.", detail);
                    }
                }
                else
                {
                    var updated = tenant with { Tier = tier, Version = tenant.Version + 1, UpdatedAt = now };
                    await TenantStore.UpdateAsync(c, tx, updated, tenant.Version);
                    await events.AppendAsync(c, tx, TenantEvents.TierChanged(updated, tenant.Tier), now);
                    await AuditAsync(c, tx, actor, tenant.Id, "tenant.update", "succeeded", new JsonObject { ["fields"] = new JsonArray("tier") });
                    return new Outcome<TierChangeStarted>(new TierChangeStarted(null, TenantResponse.From(updated)), null);
                }

                var op = NewOperation(OperationDefinition.TierChange, tenant.Id, actor, now);
                await OperationStore.InsertAsync(c, tx, op);
                await TierChangeStore.InsertAsync(c, tx, new TierChange
                {
                    OperationId = op.Id,
                    TenantId = tenant.Id,
                    Slug = tenant.Slug,
                    SourceTier = tenant.Tier,
                    SourceIsolation = tenant.Isolation,
                    TargetTier = tier,
                    TargetIsolation = isolation,
                    Phase = TierChangePhase.Moving,
                    CreatedAt = now,
                });
                await TenantStore.UpdateAsync(c, tx, tenant with { CurrentOperationId = op.Id, Version = tenant.Version + 1, UpdatedAt = now }, tenant.Version);
                await AuditAsync(c, tx, actor, tenant.Id, "tenant.tier-change", "accepted", new JsonObject
                {
                    ["operationId"] = op.Id.ToString(), ["from"] = tenant.Tier, ["to"] = tier,
                });
                var response = OperationResponse.From(op);
                var location = $"/v1/operations/{op.Id}";
                await RememberAsync(c, tx, key, location, response, now);
                return new Outcome<TierChangeStarted>(new TierChangeStarted(response, null), null, location);
            },
            ct);
        Started(outcome.Replayed ? null : outcome.Value?.Operation, actor);
        return outcome;
    }

    /// <summary>
    /// A move to another cell of the tenant's region: a <c>move</c> operation running the tier change's steps with the
    /// tier kept, its target cell recorded in <c>tier_changes</c> in the same transaction (202 with the operation).
    /// </summary>
    public async Task<Outcome<OperationResponse>> MoveAsync(string idOrSlug, string cellName, string actor, IdempotencyKey? key, string? ifMatch, CancellationToken ct)
    {
        var cell = cells.Find(cellName);
        if (cell is null)
        {
            return new ApiError(StatusCodes.Status422UnprocessableEntity, "unknown-cell", "There is no such cell.",
                $"Unknown cell '{cellName}': one of {string.Join(", ", cells.Cells.Select(c => c.Name))} (GET /v1/cells).");
        }

        var outcome = await db.WriteAsync<Outcome<OperationResponse>>(
            async (c, tx) =>
            {
                if (await ReplayAsync<OperationResponse>(c, tx, key) is { } earlier)
                {
                    return earlier;
                }

                var tenant = await TenantStore.FindAsync(c, tx, idOrSlug);
                if (tenant is null)
                {
                    return ApiError.NotFound($"Tenant '{idOrSlug}'");
                }

                if (StaleETag(tenant, ifMatch) is { } stale)
                {
                    return stale;
                }

                async Task<ApiError> RejectAsync(ApiError error)
                {
                    await AuditAsync(c, tx, actor, tenant.Id, "tenant.move", "rejected", new JsonObject { ["cell"] = cell.Name, ["reason"] = error.Detail });
                    return error;
                }

                var current = await cells.CellOfAsync(c, tx, tenant.Id);
                if (current?.Name == cell.Name)
                {
                    return await RejectAsync(ApiError.Conflict("already-in-cell", "The tenant already lives in this cell.", $"The tenant is in cell '{cell.Name}'."));
                }

                var region = CellPlacement.RegionOf(tenant.Config);
                if (region is not null && cell.Region is not null && cell.Region != region)
                {
                    return await RejectAsync(new ApiError(StatusCodes.Status422UnprocessableEntity, "cell-outside-region", "The cell serves another region.",
                        $"Cell '{cell.Name}' serves region '{cell.Region}' and the tenant's config.region is '{region}'; a tenant never leaves its region. Cells of '{region}': {string.Join(", ", cells.Cells.Where(x => x.Region == region).Select(x => x.Name))}."));
                }

                if (await InFlightAsync(c, tx, tenant) is { } busy)
                {
                    return await RejectAsync(busy);
                }

                if (tenant.Status != TenantStatus.Active)
                {
                    return await RejectAsync(ApiError.Conflict("invalid-transition", "The tenant's status does not allow this.",
                        $"A tenant that is {tenant.Status.ToWire()} cannot move to another cell; only an active one can."));
                }

                if (await CellPlacement.CheckRoomAsync(c, tx, cell) is { } full)
                {
                    return await RejectAsync(full);
                }

                var now = time.GetUtcNow();
                var op = NewOperation(OperationDefinition.Move, tenant.Id, actor, now);
                await OperationStore.InsertAsync(c, tx, op);
                await TierChangeStore.InsertAsync(c, tx, new TierChange
                {
                    OperationId = op.Id,
                    TenantId = tenant.Id,
                    Slug = tenant.Slug,
                    SourceTier = tenant.Tier,
                    SourceIsolation = tenant.Isolation,
                    TargetTier = tenant.Tier,
                    TargetIsolation = tenant.Isolation,
                    SourceCell = current?.Name,
                    TargetCell = cell.Name,
                    Phase = TierChangePhase.Moving,
                    CreatedAt = now,
                });
                await TenantStore.UpdateAsync(c, tx, tenant with { CurrentOperationId = op.Id, Version = tenant.Version + 1, UpdatedAt = now }, tenant.Version);
                await AuditAsync(c, tx, actor, tenant.Id, "tenant.move", "accepted", new JsonObject
                {
                    ["operationId"] = op.Id.ToString(), ["from"] = current?.Name, ["to"] = cell.Name,
                });
                var response = OperationResponse.From(op);
                var location = $"/v1/operations/{op.Id}";
                await RememberAsync(c, tx, key, location, response, now);
                return new Outcome<OperationResponse>(response, null, location);
            },
            ct);
        Started(outcome.Replayed ? null : outcome.Value, actor);
        return outcome;
    }

    /// <summary>An operation just accepted (not replayed) goes to the worker's queue, and is logged.</summary>
    private void Started(OperationResponse? started, string actor)
    {
        if (started is not null)
        {
            queue.Enqueue(Guid.Parse(started.Id));
            Log.Started(logger, started.TenantId, started.Kind, started.Id, actor);
        }
    }

    private static JsonObject MergePatch(JsonObject target, JsonObject patch)
    {
        foreach (var (key, value) in patch)
        {
            if (value is null)
            {
                target.Remove(key);
            }
            else if (value is JsonObject inner && target[key] is JsonObject existing)
            {
                target[key] = MergePatch(existing.DeepClone().AsObject(), inner);
            }
            else
            {
                target[key] = value.DeepClone();
            }
        }

        return target;
    }

    private static async Task<ApiError?> InFlightAsync(DbConnection c, DbTransaction tx, Tenant tenant)
    {
        if (tenant.CurrentOperationId is not { } current)
        {
            return null;
        }

        var op = await OperationStore.GetAsync(c, tx, current);
        return op is { Status: OperationStatus.Pending or OperationStatus.Running }
            ? ApiError.Conflict("operation-in-progress", "Another operation is running for this tenant.",
                $"Operation {op.Id} ({op.Kind.ToWire()}) is {op.Status.ToWire()}; wait for it to finish.")
            : null;
    }

    private static async Task<string> FreeSlugAsync(DbConnection c, DbTransaction tx, string candidate)
    {
        var slug = candidate;
        for (var n = 2; await TenantStore.SlugTakenAsync(c, tx, slug); n++)
        {
            var suffix = "-" + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
            slug = candidate[..Math.Min(candidate.Length, TenantRules.SlugMaxLength - suffix.Length)].TrimEnd('-') + suffix;
        }

        return slug;
    }

    private static Operation NewOperation(OperationDefinition definition, Guid tenantId, string actor, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(now),
        Kind = definition.Kind,
        TenantId = tenantId,
        Status = OperationStatus.Pending,
        Actor = actor,
        CreatedAt = now,
        Steps = [.. definition.Steps.Select((name, i) => new OperationStep { Ordinal = i, Name = name, Status = OperationStatus.Pending, Attempts = 0 })],
    };

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Tenant {TenantId} ({Slug}, {Tier}) created by {Actor}; onboarding {OperationId}")]
        public static partial void Created(ILogger logger, string tenantId, string slug, string tier, string operationId, string actor);

        [LoggerMessage(2, LogLevel.Information, "Tenant {TenantId}: {Kind} {OperationId} started by {Actor}")]
        public static partial void Started(ILogger logger, string tenantId, string kind, string operationId, string actor);

        [LoggerMessage(3, LogLevel.Information, "Tenant {TenantId}: {Kind} {OperationId} retried by {Actor}")]
        public static partial void Retried(ILogger logger, string tenantId, string kind, string operationId, string actor);
    }

    /// <summary>
    /// The answer already given to <paramref name="key"/>: its stored response replayed, or the
    /// error of a key used for another request; null when the work is still to do.
    /// </summary>
    private static async Task<Outcome<T>?> ReplayAsync<T>(DbConnection c, DbTransaction tx, IdempotencyKey? key)
        where T : class
    {
        if (key is null)
        {
            return null;
        }

        var (stored, reuse) = await IdempotencyStore.FindAsync(c, tx, key);
        if (reuse is not null)
        {
            return reuse;
        }

        return stored is null ? null : new Outcome<T>(JsonSerializer.Deserialize<T>(stored.Body, Json), null, stored.Location, Replayed: true);
    }

    /// <summary>Stores the 202 answer under <paramref name="key"/>, in the transaction of the work it answers.</summary>
    private static Task RememberAsync<T>(DbConnection c, DbTransaction tx, IdempotencyKey? key, string location, T response, DateTimeOffset now) =>
        key is null
            ? Task.CompletedTask
            : IdempotencyStore.SaveAsync(c, tx, key, new StoredResponse(StatusCodes.Status202Accepted, location, JsonSerializer.Serialize(response, Json)), now);

    private Task AuditAsync(DbConnection c, DbTransaction tx, string actor, Guid tenantId, string action, string outcome, JsonObject detail) =>
        AuditLog.AppendAsync(c, tx, AuditLog.By(actor, tenantId, action, outcome, detail, time.GetUtcNow()));
}
