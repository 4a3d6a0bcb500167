using System.Data.Common;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Usage;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record VoidUsageRequest(string? Source, string? Id, string? Reason);

/// <summary>A voided usage event: which it was, whose, and who voided it when and why.</summary>
public sealed record VoidedUsageEvent(
    string Source, string Id, string TenantId, string Type, DateTimeOffset Time, DateTimeOffset VoidedAt, string Actor, string? Reason);

/// <summary>
/// The operator's way out of a usage event that should not bill (a wrong value, a test sent to
/// production): the event stays stored, so a replay of it is still a duplicate, and is left out of
/// every read, aggregate, quota and invoice from then on. Voiding is idempotent and audited once.
/// An event of a period whose invoice is finalized is not voided: that invoice is recomputed from
/// the same events; void the invoice first.
/// </summary>
internal static class UsageVoids
{
    public const int MaxReason = 500;

    public static async Task<Results<Ok<VoidedUsageEvent>, ProblemHttpResult>> VoidAsync(HttpContext http, IControlPlaneDatabase db, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<VoidUsageRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (body!.Source is not { Length: > 0 and <= EventBatchReader.MaxField })
        {
            errors["source"] = [$"source is the event's source: 1-{EventBatchReader.MaxField} characters."];
        }

        if (body.Id is not { Length: > 0 and <= EventBatchReader.MaxField })
        {
            errors["id"] = [$"id is the event's id: 1-{EventBatchReader.MaxField} characters."];
        }

        if (body.Reason is { Length: > MaxReason })
        {
            errors["reason"] = [$"reason is at most {MaxReason} characters."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var now = time.GetUtcNow();

        // The exclusive write lock, as finalising an invoice takes it (not the shared one of ingest):
        // the closed-period check and the insert see the same invoices, so no void lands in an invoice being finalized.
        var outcome = await db.WriteAsync<(VoidedUsageEvent? Value, ApiError? Error)>(async (c, tx) =>
        {
            if (await UsageReader.EventAsync(c, tx, body.Source!, body.Id!) is not { } stored)
            {
                return (null, ApiError.NotFound($"Usage event '{body.Id}' of source '{body.Source}'"));
            }

            if (await ReadAsync(c, tx, body.Source!, body.Id!, stored) is { } earlier)
            {
                return (earlier, null); // Voiding twice is a no-op.
            }

            var period = BillingPeriod.Of(stored.Time).ToString();
            if (await c.ScalarAsync("SELECT 1 FROM invoices WHERE tenant_id = @t AND period = @p AND status = 'finalized'", tx,
                    ("@t", stored.TenantId), ("@p", period)) is not null)
            {
                return (null, ApiError.Conflict("usage-period-closed", "The event's billing period is closed.",
                    $"The tenant's invoice for {period} is finalized and is recomputed from these events; void that invoice first."));
            }

            var audit = AuditLog.ByCaller(http, stored.TenantId, "usage.void", new JsonObject
            {
                ["source"] = body.Source,
                ["id"] = body.Id,
                ["type"] = stored.Type,
                ["time"] = stored.Time,
                ["reason"] = body.Reason,
            }, now);
            var voided = new VoidedUsageEvent(body.Source!, body.Id!, stored.TenantId.ToString(), stored.Type, stored.Time, now, audit.Actor, body.Reason);
            var inserted = await c.ExecuteAsync(
                "INSERT INTO usage_voids (source, id, tenant_id, reason, actor, voided_at) VALUES (@s, @i, @t, @r, @a, @at) ON CONFLICT (source, id) DO NOTHING", tx,
                ("@s", voided.Source), ("@i", voided.Id), ("@t", stored.TenantId), ("@r", voided.Reason), ("@a", voided.Actor), ("@at", now));
            if (inserted == 0)
            {
                return (await ReadAsync(c, tx, body.Source!, body.Id!, stored), null); // Another call voided it meanwhile.
            }

            await AuditLog.AppendAsync(c, tx, audit);
            return (voided, null);
        });
        return outcome.Error is not null ? outcome.Error.ToResult() : TypedResults.Ok(outcome.Value!);
    }

    private static async Task<VoidedUsageEvent?> ReadAsync(DbConnection c, DbTransaction tx, string source, string id, (Guid TenantId, string Type, DateTimeOffset Time) stored)
    {
        var rows = await c.QueryAsync("SELECT reason, actor, voided_at FROM usage_voids WHERE source = @s AND id = @i", tx,
            r => new VoidedUsageEvent(source, id, stored.TenantId.ToString(), stored.Type, stored.Time, r.ReadTime(2), r.GetString(1), r.ReadStringOrNull(0)),
            ("@s", source), ("@i", id));
        return rows.Count == 0 ? null : rows[0];
    }
}
