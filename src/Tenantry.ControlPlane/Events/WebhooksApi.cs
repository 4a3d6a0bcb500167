using System.Globalization;
using System.Security.Claims;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using OpenIddict.Abstractions;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Identity;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Tenantry.ControlPlane.Events;

public sealed record CreateWebhookRequest(string? Url, IReadOnlyList<string>? Events, string? TenantId, string? Description);

/// <summary>A webhook endpoint; <c>secret</c> (<c>whsec_…</c>) is in the answers to create and rotate-secret only.</summary>
public sealed record WebhookResponse(
    string Id, string Url, IReadOnlyList<string> Events, Guid? TenantId, string? Description, bool Enabled, string? DisabledReason,
    DateTimeOffset? FailingSince, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Secret = null);

/// <summary>What one attempt of a delivery got.</summary>
public sealed record AttemptResponse(DateTimeOffset At, int? StatusCode, int DurationMs, string? Error, string? ResponseExcerpt);

/// <summary>One delivery of an event to an endpoint; <c>history</c> (every attempt) when read alone.</summary>
public sealed record DeliveryResponse(
    string Id, string WebhookId, string EventId, string EventType, Guid? TenantId, string Status, int Attempts, DateTimeOffset? NextAttemptAt,
    AttemptResponse? LastAttempt, string? ReplayOf, DateTimeOffset CreatedAt, DateTimeOffset? FinishedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<AttemptResponse>? History = null);

/// <summary>
/// Webhook endpoints (<c>/v1/webhooks</c>), for operators and for a tenant's admins and machine clients.
/// A tenant's token sees and makes only its own tenant's endpoints (<c>tenantId</c> is its tenant; another
/// is refused, 403, audited); an operator's may filter on any tenant or none (every tenant's events).
/// </summary>
public static class WebhooksApi
{
    public const int MaxDescription = 200;

    public static RouteGroupBuilder MapWebhooksApi(this RouteGroupBuilder v1)
    {
        var hooks = v1.MapGroup("/webhooks").WithTags("Webhooks");
        hooks.MapPost("/", Create).Accepts<CreateWebhookRequest>("application/json")
            .WithSummary("Register an endpoint: {url, events:[\"tenant.*\", …], tenantId?, description?}; 201 with its signing secret (whsec_…) shown once.");
        hooks.MapGet("/", List).WithSummary("The endpoints (a tenant's token: its tenant's), by id; ?tenantId=, ?limit=, ?cursor=.");
        hooks.MapGet("/{id}", Get).WithSummary("One endpoint.");
        hooks.MapPatch("/{id}", Patch).Accepts<JsonObject>("application/json", "application/merge-patch+json")
            .WithSummary("Change url, events, description or enabled (true again clears the failure record); operators may change tenantId.");
        hooks.MapDelete("/{id}", Delete).WithSummary("Remove the endpoint with its deliveries.");
        hooks.MapPost("/{id}/rotate-secret", Rotate)
            .WithSummary("A new signing secret, shown once; the previous one keeps signing too for Tenantry:Webhooks:SecretRotationOverlap.");
        hooks.MapGet("/{id}/deliveries", Deliveries)
            .WithSummary("The delivery log, newest first: status, attempts, the last attempt's response code, duration and body excerpt; ?status=, ?limit=, ?cursor=.");
        hooks.MapGet("/{id}/deliveries/{deliveryId}", Delivery).WithSummary("One delivery with every attempt.");
        hooks.MapPost("/{id}/deliveries/{deliveryId}/replay", Replay)
            .WithSummary("Send the delivery's event again (same webhook-id), as a new delivery at the end of its lane; 202.");
        return v1;
    }

    /// <summary>Who calls: an operator (any tenant) or a tenant's admin or machine client (its tenant only).</summary>
    private sealed record Caller(bool IsOperator, Guid? Tenant)
    {
        public bool Sees(Webhook w) => IsOperator || w.TenantId == Tenant;
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

        return (null, new ApiError(StatusCodes.Status403Forbidden, "tenant-admin-required", "Webhooks are managed by operators and tenant admins.",
            "Use an operator token, or the token of an admin user or a machine client of the tenant."));
    }

    private static async Task<Results<Created<WebhookResponse>, ProblemHttpResult>> Create(
        HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, WebhookUrlGuard guard, WebhookSecrets secrets, TimeProvider time)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var (body, error) = await JsonBody.ReadAsync<CreateWebhookRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        var uri = await CheckUrlAsync(guard, body!.Url, errors, http.RequestAborted);
        CheckEvents(body.Events, errors);
        CheckDescription(body.Description, errors);
        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        Guid? tenantId = caller.Tenant;
        if (body.TenantId is { } named)
        {
            var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, named), http.RequestAborted);
            if (!caller.IsOperator && tenant?.Id != caller.Tenant)
            {
                await AuditDeniedAsync(db, time, http, caller.Tenant, named);
                return ForeignTenant(named).ToResult();
            }

            if (tenant is null)
            {
                return ApiError.Validation("tenantId", $"'{named}' names no tenant.").ToResult();
            }

            tenantId = tenant.Id;
        }

        var now = time.GetUtcNow();
        var id = Guid.CreateVersion7(now).ToString();
        var secret = WebhookSecrets.NewSecret();
        var webhook = await db.WriteAsync(
            async (c, tx) =>
            {
                var created = new Webhook
                {
                    Id = id,
                    Url = uri!.AbsoluteUri,
                    Events = [.. body.Events!.Distinct(StringComparer.Ordinal)],
                    TenantId = tenantId,
                    Description = body.Description?.Trim(),
                    ProtectedSecret = secrets.Protect(id, secret),
                    Enabled = true,
                    // Events committed before this one are not delivered to it.
                    FromSequence = await EventOutbox.LastAsync(c, tx),
                    CreatedBy = http.User.Actor(),
                    CreatedAt = now,
                    UpdatedAt = now,
                };
                await WebhookStore.InsertAsync(c, tx, created);
                await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, tenantId, "webhook.created", Detail(created), now));
                return created;
            },
            http.RequestAborted);
        return TypedResults.Created($"/v1/webhooks/{id}", Response(webhook, secret));
    }

    private static async Task<Results<Ok<Page<WebhookResponse>>, ProblemHttpResult>> List(
        string? tenantId, int? limit, string? cursor, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        if (Paging.CheckLimit(limit, out var take) is { } bad)
        {
            return bad.ToResult();
        }

        var after = cursor is null ? "" : Paging.Decode(cursor);
        if (after is null)
        {
            return ApiError.Validation("cursor", "The cursor is not one this API returned.").ToResult();
        }

        var rows = await db.ReadAsync<List<Webhook>?>(
            async c =>
            {
                var filter = caller.Tenant;
                if (tenantId is not null)
                {
                    var tenant = await tenants.FindAsync(c, null, tenantId);
                    if (tenant is null || (!caller.IsOperator && tenant.Id != caller.Tenant))
                    {
                        return null;
                    }

                    filter = tenant.Id;
                }

                return await WebhookStore.ListAsync(c, filter, after, take + 1);
            },
            http.RequestAborted);
        if (rows is null)
        {
            return ApiError.NotFound($"Tenant '{tenantId}'").ToResult();
        }

        var next = rows.Count > take ? Paging.Encode(rows[take - 1].Id) : null;
        return TypedResults.Ok(new Page<WebhookResponse>([.. rows.Take(take).Select(w => Response(w, null))], next));
    }

    private static async Task<Results<Ok<WebhookResponse>, ProblemHttpResult>> Get(string id, HttpContext http, IControlPlaneDatabase db)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var webhook = await db.ReadAsync(c => WebhookStore.GetAsync(c, null, id), http.RequestAborted);
        return webhook is not null && caller.Sees(webhook) ? TypedResults.Ok(Response(webhook, null)) : NotFound(id).ToResult();
    }

    private static async Task<Results<Ok<WebhookResponse>, ProblemHttpResult>> Patch(
        string id, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, WebhookUrlGuard guard, TimeProvider time)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var (patch, error) = await JsonBody.ReadAsync<JsonObject>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        foreach (var (field, _) in patch!)
        {
            if (field is not ("url" or "events" or "description" or "enabled" or "tenantId"))
            {
                errors[field] = [$"'{field}' cannot be changed; url, events, description, enabled and tenantId can."];
            }
        }

        Uri? uri = null;
        if (patch.TryGetPropertyValue("url", out var url))
        {
            uri = await CheckUrlAsync(guard, Text(url), errors, http.RequestAborted);
        }

        List<string>? events = null;
        if (patch.TryGetPropertyValue("events", out var list))
        {
            events = list is JsonArray array && array.All(e => e is JsonValue v && v.TryGetValue<string>(out _)) ? [.. array.Select(e => e!.GetValue<string>())] : null;
            if (events is null)
            {
                errors["events"] = ["events is an array of event types or patterns."];
            }
            else
            {
                CheckEvents(events, errors);
            }
        }

        var description = patch.TryGetPropertyValue("description", out var d) ? Text(d) : null;
        CheckDescription(description, errors);
        bool? enabled = null;
        if (patch.TryGetPropertyValue("enabled", out var e2))
        {
            enabled = e2 is JsonValue v && v.TryGetValue<bool>(out var flag) ? flag : null;
            if (enabled is null)
            {
                errors["enabled"] = ["enabled is true or false."];
            }
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var outcome = await db.WriteAsync<(Webhook? Value, ApiError? Error)>(
            async (c, tx) =>
            {
                var webhook = await WebhookStore.GetAsync(c, tx, id);
                if (webhook is null || !caller.Sees(webhook))
                {
                    return (null, NotFound(id));
                }

                var tenantId = webhook.TenantId;
                if (patch.TryGetPropertyValue("tenantId", out var t))
                {
                    var named = Text(t);
                    if (!caller.IsOperator)
                    {
                        return (null, ForeignTenant(named ?? "none"));
                    }

                    tenantId = named is null ? null : (await tenants.FindAsync(c, tx, named))?.Id;
                    if (named is not null && tenantId is null)
                    {
                        return (null, ApiError.Validation("tenantId", $"'{named}' names no tenant."));
                    }
                }

                var now = time.GetUtcNow();
                var reenabled = enabled == true && !webhook.Enabled;
                var updated = webhook with
                {
                    Url = uri?.AbsoluteUri ?? webhook.Url,
                    Events = events is null ? webhook.Events : [.. events.Distinct(StringComparer.Ordinal)],
                    Description = patch.ContainsKey("description") ? description?.Trim() : webhook.Description,
                    TenantId = tenantId,
                    Enabled = enabled ?? webhook.Enabled,
                    DisabledReason = enabled == false ? "Disabled by " + http.User.Actor() : reenabled ? null : webhook.DisabledReason,
                    FailingSince = reenabled ? null : webhook.FailingSince,
                    UpdatedAt = now,
                };
                await WebhookStore.UpdateAsync(c, tx, updated);
                await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, updated.TenantId, "webhook.updated", Detail(updated), now));
                return (updated, null);
            },
            http.RequestAborted);
        return outcome.Error is not null ? outcome.Error.ToResult() : TypedResults.Ok(Response(outcome.Value!, null));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, HttpContext http, IControlPlaneDatabase db, TimeProvider time)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var deleted = await db.WriteAsync(
            async (c, tx) =>
            {
                var webhook = await WebhookStore.GetAsync(c, tx, id);
                if (webhook is null || !caller.Sees(webhook))
                {
                    return false;
                }

                await WebhookStore.DeleteAsync(c, tx, id);
                await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, webhook.TenantId, "webhook.deleted", Detail(webhook), time.GetUtcNow()));
                return true;
            },
            http.RequestAborted);
        return deleted ? TypedResults.NoContent() : NotFound(id).ToResult();
    }

    private static async Task<Results<Ok<WebhookResponse>, ProblemHttpResult>> Rotate(
        string id, HttpContext http, IControlPlaneDatabase db, WebhookSecrets secrets, IOptions<WebhookOptions> options, TimeProvider time)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var secret = WebhookSecrets.NewSecret();
        var rotated = await db.WriteAsync(
            async (c, tx) =>
            {
                var webhook = await WebhookStore.GetAsync(c, tx, id);
                if (webhook is null || !caller.Sees(webhook))
                {
                    return null;
                }

                var now = time.GetUtcNow();
                var updated = webhook with
                {
                    ProtectedSecret = secrets.Protect(id, secret),
                    PreviousSecret = webhook.ProtectedSecret,
                    PreviousSecretUntil = now + options.Value.SecretRotationOverlap,
                    UpdatedAt = now,
                };
                await WebhookStore.UpdateAsync(c, tx, updated);
                await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, webhook.TenantId, "webhook.secret-rotated", new JsonObject { ["webhookId"] = id }, now));
                return updated;
            },
            http.RequestAborted);
        return rotated is null ? NotFound(id).ToResult() : TypedResults.Ok(Response(rotated, secret));
    }

    private static async Task<Results<Ok<Page<DeliveryResponse>>, ProblemHttpResult>> Deliveries(
        string id, string? status, int? limit, string? cursor, HttpContext http, IControlPlaneDatabase db)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        if (Paging.CheckLimit(limit, out var take) is { } bad)
        {
            return bad.ToResult();
        }

        if (status is not (null or WebhookStore.Pending or WebhookStore.Succeeded or WebhookStore.Failed))
        {
            return ApiError.Validation("status", "status is pending, succeeded or failed.").ToResult();
        }

        if (Paging.CheckSequenceCursor(cursor, out var before) is { } badCursor)
        {
            return badCursor.ToResult();
        }

        var rows = await db.ReadAsync<List<Delivery>?>(
            async c => await WebhookStore.GetAsync(c, null, id) is { } webhook && caller.Sees(webhook)
                ? await WebhookStore.DeliveriesAsync(c, id, status, before, take + 1)
                : null,
            http.RequestAborted);
        if (rows is null)
        {
            return NotFound(id).ToResult();
        }

        var next = rows.Count > take ? Paging.Encode(rows[take - 1].Sequence.ToString(CultureInfo.InvariantCulture)) : null;
        return TypedResults.Ok(new Page<DeliveryResponse>([.. rows.Take(take).Select(r => Response(r, null))], next));
    }

    private static async Task<Results<Ok<DeliveryResponse>, ProblemHttpResult>> Delivery(string id, string deliveryId, HttpContext http, IControlPlaneDatabase db)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var found = await db.ReadAsync(
            async c =>
            {
                if (await WebhookStore.GetAsync(c, null, id) is not { } webhook || !caller.Sees(webhook)
                    || await WebhookStore.DeliveryAsync(c, null, id, deliveryId) is not { } delivery)
                {
                    return null;
                }

                return Response(delivery, await WebhookStore.AttemptsAsync(c, deliveryId));
            },
            http.RequestAborted);
        return found is null ? ApiError.NotFound($"Delivery '{deliveryId}' of webhook '{id}'").ToResult() : TypedResults.Ok(found);
    }

    private static async Task<Results<Accepted<DeliveryResponse>, ProblemHttpResult>> Replay(
        string id, string deliveryId, HttpContext http, IControlPlaneDatabase db, EventSignals signals, TimeProvider time)
    {
        var (caller, denied) = CallerOf(http.User);
        if (caller is null)
        {
            return denied!.ToResult();
        }

        var replayed = await db.WriteAsync(
            async (c, tx) =>
            {
                if (await WebhookStore.GetAsync(c, tx, id) is not { } webhook || !caller.Sees(webhook)
                    || await WebhookStore.DeliveryAsync(c, tx, id, deliveryId) is not { } original)
                {
                    return null;
                }

                var now = time.GetUtcNow();
                var replay = await WebhookStore.ReplayAsync(c, tx, original, now);
                await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, webhook.TenantId, "webhook.delivery.replayed", new JsonObject
                {
                    ["webhookId"] = id, ["deliveryId"] = deliveryId, ["replayId"] = replay, ["eventId"] = original.EventId,
                }, now));
                return await WebhookStore.DeliveryAsync(c, tx, id, replay);
            },
            http.RequestAborted);
        if (replayed is null)
        {
            return ApiError.NotFound($"Delivery '{deliveryId}' of webhook '{id}'").ToResult();
        }

        signals.Set();
        return TypedResults.Accepted($"/v1/webhooks/{id}/deliveries/{replayed.Id}", Response(replayed, null));
    }

    private static async Task<Uri?> CheckUrlAsync(WebhookUrlGuard guard, string? url, Dictionary<string, string[]> errors, CancellationToken cancellationToken)
    {
        if (guard.CheckForm(url, out var uri) is { } formProblem)
        {
            errors["url"] = [formProblem];
            return null;
        }

        if (await guard.CheckAddressesAsync(uri!, cancellationToken) is { } addressProblem)
        {
            errors["url"] = [addressProblem];
            return null;
        }

        return uri;
    }

    private static void CheckEvents(IReadOnlyList<string>? events, Dictionary<string, string[]> errors)
    {
        if (events is null || events.Count == 0 || events.Count > EventCatalog.MaxFilters)
        {
            errors["events"] = [$"events lists 1-{EventCatalog.MaxFilters} event types or patterns, e.g. [\"tenant.*\"]; GET /v1/events/types lists the types."];
            return;
        }

        for (var i = 0; i < events.Count; i++)
        {
            if (EventCatalog.CheckFilter(events[i]) is { } problem)
            {
                errors[$"events[{i}]"] = [problem];
            }
        }
    }

    private static void CheckDescription(string? description, Dictionary<string, string[]> errors)
    {
        if (description is not null && (description.Length > MaxDescription || description.Any(char.IsControl)))
        {
            errors["description"] = [$"A description is at most {MaxDescription} printable characters."];
        }
    }

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static ApiError NotFound(string id) => ApiError.NotFound($"Webhook '{id}'");

    private static ApiError ForeignTenant(string named) => new(
        StatusCodes.Status403Forbidden, "access-denied", "A tenant's token manages its own tenant's webhooks only.",
        $"This token belongs to another tenant than '{(named.Length > 100 ? named[..100] : named)}'.");

    private static Task AuditDeniedAsync(IControlPlaneDatabase db, TimeProvider time, HttpContext http, Guid? tenant, string named) => db.WriteAsync(
        (c, tx) => AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(
            http, tenant, "webhook.created", new JsonObject { ["targetTenant"] = named.Length > 100 ? named[..100] : named, ["reason"] = "The token belongs to another tenant." },
            time.GetUtcNow(), outcome: "denied")),
        http.RequestAborted);

    private static JsonObject Detail(Webhook w) => new()
    {
        ["webhookId"] = w.Id, ["url"] = w.Url, ["events"] = WebhookStore.ToJson(w.Events), ["enabled"] = w.Enabled,
    };

    private static WebhookResponse Response(Webhook w, string? secret) =>
        new(w.Id, w.Url, w.Events, w.TenantId, w.Description, w.Enabled, w.DisabledReason, w.FailingSince, w.CreatedAt, w.UpdatedAt, secret);

    private static DeliveryResponse Response(Delivery d, IReadOnlyList<DeliveryAttempt>? history) => new(
        d.Id, d.WebhookId, d.EventId, d.EventType, d.TenantId, d.Status, d.Attempts, d.Status == WebhookStore.Pending ? d.NextAttemptAt : null,
        d.LastAttemptAt is { } at ? new AttemptResponse(at, d.LastStatusCode, d.LastDurationMs ?? 0, d.LastError, d.LastResponse) : null,
        d.ReplayOf, d.CreatedAt, d.FinishedAt,
        history?.Select(a => new AttemptResponse(a.At, a.StatusCode, a.DurationMs, a.Error, a.ResponseExcerpt)).ToList());
}
