using System.Globalization;
using System.Security.Claims;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Jobs;
using Tenantry.ControlPlane.Identity;
using Tenantry.Health;

namespace Tenantry.ControlPlane.Health;

/// <summary>
/// Per-tenant health: a tenant's series (operator token, or a token of that tenant), the fleet's worst
/// tenants now (operator token), and the gateways' batches in (an operator's or a gateway replica's token).
/// </summary>
public static partial class HealthApi
{
    /// <summary>Points in one series at most.</summary>
    public const int MaxPoints = 1440;

    /// <summary>Samples in one posted batch at most.</summary>
    public const int MaxSamples = 1000;

    /// <summary>The largest batch body: samples carry their latency sketches.</summary>
    public const int MaxBatchBytes = 2 * 1024 * 1024;

    private const long MaxCount = 1L << 40;

    private static readonly int[] AutoSteps = [1, 5, 15, 60, 360, 1440];

    /// <summary><c>GET /v1/tenants/{id}/health</c>, in the group that takes operator and tenant tokens.</summary>
    public static RouteGroupBuilder MapTenantHealthApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/tenants/{id}/health", Series)
            .WithTags("Health")
            .WithSummary("A tenant's requests, 4xx, 5xx, 429s and p50/p95/p99 latency per step (from, to: ISO 8601; step: 1m, 5m, 1h, 1d …), as the gateways recorded them.");
        return v1;
    }

    /// <summary><c>GET /v1/health/worst</c>, in the operator's group.</summary>
    public static RouteGroupBuilder MapFleetHealthApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/health/worst", Worst)
            .WithTags("Health")
            .WithSummary("The worst tenants now: ranked by errorRate (5xx/requests), p99 latency or throttled (429s) over the last window (1m to 24h).");
        return v1;
    }

    /// <summary><c>POST /v1/health/samples</c>, in the group gateway replicas reach.</summary>
    public static RouteGroupBuilder MapHealthIngestApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/health/samples", Ingest)
            .Accepts<TenantHealthBatch>("application/json")
            .WithTags("Health")
            .WithSummary("A gateway's batch of per-tenant, per-minute samples, merged into the minute rows; a batch id seen before changes nothing.");
        return v1;
    }

    /// <summary>A span as the API writes it: whole minutes, hours or days (<c>90s</c> is not one; <c>120s</c> is <c>2m</c>).</summary>
    public static bool TryParseMinutes(string? text, int maxMinutes, out int minutes)
    {
        minutes = 0;
        if (text is null || Span().Match(text) is not { Success: true } m || !long.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return false;
        }

        var seconds = m.Groups[2].Value switch
        {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            _ => n * 86_400,
        };
        if (seconds <= 0 || seconds % 60 != 0 || seconds / 60 > maxMinutes)
        {
            return false;
        }

        minutes = (int)(seconds / 60);
        return true;
    }

    /// <summary>The shortest way to write <paramref name="minutes"/>.</summary>
    public static string FormatMinutes(int minutes) =>
        minutes % 1440 == 0 ? $"{minutes / 1440}d" : minutes % 60 == 0 ? $"{minutes / 60}h" : $"{minutes}m";

    private static async Task<Results<Ok<HealthSeries>, ProblemHttpResult>> Series(
        string id, string? from, string? to, string? step, HttpContext http, IControlPlaneDatabase db, ITenantRegistry tenants, TenantHealthService health, IJobQueues jobs, TimeProvider time)
    {
        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), http.RequestAborted);
        var own = TokenTenant(http.User);
        if (own is not null && tenant?.Id != own)
        {
            // Another tenant's figures (or a tenant that does not exist): refused alike, and audited.
            await db.WriteAsync(
                (c, tx) => AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(
                    http, own.Value, "health.read",
                    new JsonObject { ["targetTenant"] = id.Length > 100 ? id[..100] + "…" : id, ["reason"] = "The token belongs to another tenant." },
                    time.GetUtcNow(), outcome: "denied")),
                http.RequestAborted);
            return new ApiError(StatusCodes.Status403Forbidden, "access-denied", "This token may not read that tenant's health.", $"This token belongs to another tenant than '{id}'.").ToResult();
        }

        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        var now = time.GetUtcNow();
        var end = ParseTime(to, "to", errors) ?? now;
        var start = ParseTime(from, "from", errors) ?? end.AddHours(-1);
        if (errors.Count == 0 && start >= end)
        {
            errors["from"] = ["from must be before to."];
        }

        int stepMinutes;
        if (step is null)
        {
            var span = (end - start).TotalMinutes;
            stepMinutes = AutoSteps.FirstOrDefault(s => span / s <= 720, AutoSteps[^1]);
        }
        else if (!TryParseMinutes(step, 31 * 1440, out stepMinutes))
        {
            errors["step"] = ["step is a whole number of minutes, hours or days, at most 31 days: 1m, 5m, 15m, 1h, 1d (60s is 1m)."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var (first, last) = TenantHealthService.Steps(start, end, stepMinutes);
        var points = (last - first) / stepMinutes;
        if (points > MaxPoints)
        {
            return ApiError.Validation("step", string.Create(CultureInfo.InvariantCulture,
                $"From {start:u} to {end:u} at a step of {FormatMinutes(stepMinutes)} is {points} points; at most {MaxPoints}: use a larger step or a shorter range.")).ToResult();
        }

        if (first < health.MinuteRowsFrom() && stepMinutes % 60 != 0)
        {
            return ApiError.Validation("step", string.Create(CultureInfo.InvariantCulture,
                $"Figures before {TenantHealthService.FromUnixMinute(health.MinuteRowsFrom()):u} are kept per hour (Tenantry:Health:MinuteRetention): use a step of whole hours (1h, 6h, 1d), or start later.")).ToResult();
        }

        var series = await health.SeriesAsync(tenant.Id, start, end, stepMinutes, FormatMinutes(stepMinutes), http.RequestAborted);
        var queues = await jobs.FiguresAsync(tenant.Id, http.RequestAborted);
        var queue = queues.Count > 0 ? queues[0] : null;
        return TypedResults.Ok(queue is null ? series : series with
        {
            Jobs = new JobQueueHealth(queue.Depth, queue.Ready, queue.Leased, queue.Dead, queue.OldestAgeSeconds is { } age ? Math.Round(age, 3) : null, queue.Succeeded, queue.Failed),
        });
    }

    private static async Task<Results<Ok<WorstTenants>, ProblemHttpResult>> Worst(
        string? window, string? by, int? limit, long? minRequests, TenantHealthService health, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        var windowMinutes = 15;
        if (window is not null && !TryParseMinutes(window, 1440, out windowMinutes))
        {
            errors["window"] = ["window is whole minutes or hours from 1m to 24h: 5m, 15m, 1h."];
        }

        WorstBy rank = WorstBy.ErrorRate;
        if (by is not null && !TryParseBy(by, out rank))
        {
            errors["by"] = ["by is errorRate, p99 or throttled."];
        }

        if (limit is < 1 or > 100)
        {
            errors["limit"] = ["limit is 1-100."];
        }

        if (minRequests is < 1 or > MaxCount)
        {
            errors["minRequests"] = ["minRequests is at least 1."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        return TypedResults.Ok(await health.WorstAsync(windowMinutes, FormatMinutes(windowMinutes), rank, limit ?? 10, minRequests ?? 1, cancellationToken));
    }

    private static async Task<Results<Ok<HealthWriteResult>, ProblemHttpResult>> Ingest(HttpContext http, ITenantHealthWriter writer)
    {
        var (batch, error) = await JsonBody.ReadAsync<TenantHealthBatch>(http.Request, MaxBatchBytes);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (Check(batch!) is { } invalid)
        {
            return invalid.ToResult();
        }

        return TypedResults.Ok(await writer.WriteAsync(batch!, http.RequestAborted));
    }

    /// <summary>What makes a batch unreadable (not what makes a sample late: that is the store's to say per sample).</summary>
    private static ApiError? Check(TenantHealthBatch batch)
    {
        var errors = new Dictionary<string, string[]>();
        if (batch.Id is null || !BatchId().IsMatch(batch.Id))
        {
            errors["id"] = ["id is 1-100 of A-Z, a-z, 0-9, '.', '_', ':' and '-', new for each batch."];
        }

        if (batch.Samples is null || batch.Samples.Count is 0 or > MaxSamples)
        {
            errors["samples"] = [$"samples is a list of 1-{MaxSamples} samples."];
            return ApiError.Validation(errors);
        }

        for (var i = 0; i < batch.Samples.Count && errors.Count < 10; i++)
        {
            var s = batch.Samples[i];
            var at = $"samples[{i}]";
            if (s is null)
            {
                errors[at] = ["A sample is an object."];
                continue;
            }

            if (s.TenantId == Guid.Empty)
            {
                errors[at + ".tenantId"] = ["tenantId is a tenant's id."];
            }

            if (s.Minute.UtcTicks % TimeSpan.TicksPerMinute != 0)
            {
                errors[at + ".minute"] = ["minute is the start of a minute, e.g. 2026-12-02T10:15:00Z."];
            }

            if (s.Requests is < 0 or > MaxCount || s.Status4xx is < 0 or > MaxCount || s.Status5xx is < 0 or > MaxCount || s.Throttled is < 0 or > MaxCount)
            {
                errors[at] = ["requests, status4xx, status5xx and throttled are counts from 0."];
            }

            if (s.Latency is null)
            {
                errors[at + ".latency"] = ["latency is a latency sketch (base64)."];
            }
        }

        return errors.Count == 0 ? null : ApiError.Validation(errors);
    }

    private static bool TryParseBy(string text, out WorstBy by)
    {
        by = text switch
        {
            "errorRate" => WorstBy.ErrorRate,
            "p99" => WorstBy.P99,
            "throttled" => WorstBy.Throttled,
            _ => (WorstBy)(-1),
        };
        return Enum.IsDefined(by);
    }

    private static DateTimeOffset? ParseTime(string? text, string name, Dictionary<string, string[]> errors)
    {
        if (text is null)
        {
            return null;
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var value)
            && value.Year is >= 1971 and <= 9000)
        {
            return value;
        }

        errors[name] = [$"{name} is an ISO 8601 time, e.g. 2026-12-02T10:00:00Z."];
        return null;
    }

    /// <summary>The tenant of a tenant token; null for an operator token (no tenant claim).</summary>
    private static Guid? TokenTenant(ClaimsPrincipal user) =>
        user.FindFirst(IdentityApi.TenantIdClaim) is not { } claim ? null : Guid.TryParse(claim.Value, out var tenantId) ? tenantId : Guid.Empty;

    [GeneratedRegex(@"^([0-9]{1,7})([smhd])$")]
    private static partial Regex Span();

    [GeneratedRegex(@"^[A-Za-z0-9._:\-]{1,100}$")]
    private static partial Regex BatchId();
}
