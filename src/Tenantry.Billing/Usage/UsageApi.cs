using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Usage;

public sealed record IngestRejection(int Index, string Reason);

public sealed record IngestResponse(int Accepted, int Duplicates, IReadOnlyList<IngestRejection> Rejected);

public sealed record UsagePoint(string TenantId, string Meter, DateTimeOffset WindowStart, decimal Value, string? Group);

public sealed record UsageResponse(IReadOnlyList<UsagePoint> Items);

public static class UsageApi
{
    public const int MaxBodyBytes = 8 * 1024 * 1024;

    public static RouteGroupBuilder MapUsageApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/usage/events", Ingest).WithTags("Usage")
            .Accepts<JsonElement>("application/json", "application/cloudevents-batch+json")
            .WithSummary("Record a batch of CloudEvents-shaped usage events; 202 after they are durable. Replays (same source and id) are no-ops.");
        v1.MapPost("/usage/events/void", UsageVoids.VoidAsync).WithTags("Usage").Accepts<VoidUsageRequest>("application/json")
            .WithSummary("Void a stored usage event (by source and id): it stays a duplicate for replays and is left out of every usage read, quota and invoice. Idempotent; audited.");
        v1.MapGet("/usage", Query).WithTags("Usage")
            .WithSummary("A meter's value per tenant and window (hour, day, month) over [from, to), optionally grouped by a data property.");
        v1.MapGet("/meters", async (BillingCatalog catalog) => TypedResults.Ok((await catalog.GetAsync()).Meters.Values.OrderBy(m => m.Key, StringComparer.Ordinal).ToList()))
            .WithTags("Usage").WithSummary("The meters.");
        v1.MapPost("/meters", CreateMeter).WithTags("Usage").Accepts<MeterRequest>("application/json")
            .WithSummary("Define a meter: an aggregation (sum, count, max, unique_count, latest) over a property of events of one type.");
        return v1;
    }

    private static async Task<Results<Accepted<IngestResponse>, ProblemHttpResult>> Ingest(
        HttpContext http, BillingCatalog catalog, UsageIngestor ingestor, IOptions<BillingOptions> options, TimeProvider time, [FromServices] UsageMetrics? metrics = null)
    {
        var snapshot = await catalog.GetAsync(http.RequestAborted);
        var now = time.GetUtcNow();
        var candidates = new List<EventCandidate>();
        var error = await ReadBatchAsync(http.Request, options.Value.MaxBatch, snapshot, now, options.Value, candidates);
        if (error is not null)
        {
            return error.ToResult();
        }

        var rejected = new List<IngestRejection>();
        var events = new List<UsageEvent>(candidates.Count);
        var indexes = new List<int>(candidates.Count);
        for (var index = 0; index < candidates.Count; index++)
        {
            var c = candidates[index];
            if (c.Reason is not null)
            {
                rejected.Add(new IngestRejection(index, c.Reason));
                continue;
            }

            Guid? tenant = catalog.TryResolveCached(c.Subject!, out var cached) ? cached : await catalog.ResolveTenantAsync(c.Subject!, http.RequestAborted);
            if (tenant is null)
            {
                rejected.Add(new IngestRejection(index, $"No tenant '{c.Subject}'."));
            }
            else if (c.ReasonAfterTenant is not null)
            {
                rejected.Add(new IngestRejection(index, c.ReasonAfterTenant));
            }
            else
            {
                events.Add(new UsageEvent(c.Source!, c.Id!, tenant.Value, c.Type!, c.Time, c.Data));
                indexes.Add(index);
            }
        }

        metrics?.UsageNotStored(rejected.Count, "rejected");
        IngestOutcome[] outcomes;
        try
        {
            outcomes = await ingestor.IngestAsync(events, http.RequestAborted);
        }
        catch (UsageNotStoredException)
        {
            http.Response.Headers.RetryAfter = "1";
            return new ApiError(StatusCodes.Status503ServiceUnavailable, "store-unavailable", "The usage store did not commit the batch.",
                "No event of this batch is acknowledged; send it again (replays are no-ops).").ToResult();
        }

        int accepted = 0, duplicates = 0;
        var fromStore = false; // the store's rejections come after the others: then sorted by index
        for (var i = 0; i < outcomes.Length; i++)
        {
            switch (outcomes[i])
            {
                case IngestOutcome.Accepted:
                    accepted++;
                    break;
                case IngestOutcome.Duplicate:
                    duplicates++;
                    break;
                case IngestOutcome.Unstorable:
                    rejected.Add(new IngestRejection(indexes[i], EventBatchReader.NotUnicode));
                    fromStore = true;
                    break;
                default:
                    rejected.Add(new IngestRejection(indexes[i], "The billing period of this event is closed: the tenant's invoice for it is finalized."));
                    fromStore = true;
                    break;
            }
        }

        if (fromStore)
        {
            rejected.Sort((a, b) => a.Index.CompareTo(b.Index));
        }

        return TypedResults.Accepted((string?)null, new IngestResponse(accepted, duplicates, rejected));
    }

    /// <summary>The earliest event time still accepted: this month's start, or last month's while its grace runs.</summary>
    public static DateTimeOffset OpenFrom(DateTimeOffset now, TimeSpan grace)
    {
        var current = BillingPeriod.Of(now);
        return now < current.Start + grace ? current.Previous.Start : current.Start;
    }

    /// <summary>Reads the body into a pooled buffer and parses it in one pass; the buffer goes back before the events are stored.</summary>
    private static async Task<ApiError?> ReadBatchAsync(
        HttpRequest request, int maxBatch, BillingCatalog.Snapshot snapshot, DateTimeOffset now, BillingOptions options, List<EventCandidate> candidates)
    {
        var type = request.ContentType?.Split(';')[0].Trim();
        if (!request.HasJsonContentType() && !string.Equals(type, "application/cloudevents-batch+json", StringComparison.OrdinalIgnoreCase))
        {
            return new ApiError(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "The body must be JSON.", "Send Content-Type: application/json.");
        }

        var tooLarge = new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The body is too large.", $"At most {MaxBodyBytes} bytes.");
        if (request.ContentLength > MaxBodyBytes)
        {
            return tooLarge;
        }

        var buffer = ArrayPool<byte>.Shared.Rent((int)(request.ContentLength ?? 16 * 1024) + 1);
        try
        {
            var length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var read = await request.Body.ReadAsync(buffer.AsMemory(length), request.HttpContext.RequestAborted);
                if (read == 0)
                {
                    break;
                }

                length += read;
                if (length > MaxBodyBytes)
                {
                    return tooLarge;
                }
            }

            var openFrom = OpenFrom(now, options.LateEventGrace);
            try
            {
                return EventBatchReader.Read(buffer.AsSpan(0, length), maxBatch, snapshot, now, openFrom, now + options.MaxFutureSkew, candidates);
            }
            catch (JsonException ex)
            {
                return ApiError.BadRequest($"The body is not valid JSON (line {ex.LineNumber + 1}, position {ex.BytePositionInLine + 1}).");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<Results<Ok<UsageResponse>, ProblemHttpResult>> Query(
        IControlPlaneDatabase db, BillingCatalog catalog, TimeProvider time, string? tenantId, string? meter, string? window, string? from, string? to, string? groupBy)
    {
        var snapshot = await catalog.GetAsync();
        if (meter is null || !snapshot.Meters.TryGetValue(meter, out var m))
        {
            return ApiError.Validation("meter", "meter names a meter (GET /v1/meters).").ToResult();
        }

        window ??= "day";
        if (window is not ("hour" or "day" or "month"))
        {
            return ApiError.Validation("window", "window is hour, day or month.").ToResult();
        }

        if (groupBy is not null && !Aggregations.PropertyPattern().IsMatch(groupBy))
        {
            return ApiError.Validation("groupBy", "groupBy names a property of the events' data.").ToResult();
        }

        var now = time.GetUtcNow();
        if (!TryTime(from, BillingPeriod.Of(now).Start, out var start) || !TryTime(to, now, out var end))
        {
            return ApiError.Validation(from is not null && !TryTime(from, now, out _) ? "from" : "to", "from and to are RFC 3339 timestamps.").ToResult();
        }

        if (end <= start || end - start > TimeSpan.FromDays(400) || (window == "hour" && end - start > TimeSpan.FromDays(93)))
        {
            return ApiError.Validation("to", "to is after from, at most 400 days (93 days for hourly windows).").ToResult();
        }

        Guid? tenant = null;
        if (tenantId is not null)
        {
            tenant = await catalog.ResolveTenantAsync(tenantId);
            if (tenant is null)
            {
                return ApiError.NotFound($"Tenant '{tenantId}'").ToResult();
            }
        }

        var events = await db.ReadAsync(c => UsageReader.EventsAsync(c, null, tenant, m.EventType, start, end));
        var items = events
            .GroupBy(e => (e.TenantId, Window: WindowStart(e.Time, window), Group: groupBy is null ? null : GroupOf(e.Data, groupBy)))
            .Select(g => new UsagePoint(g.Key.TenantId.ToString(), m.Key, g.Key.Window, Aggregations.Aggregate(m, g.Select(e => e.Data)), g.Key.Group))
            .OrderBy(p => p.TenantId, StringComparer.Ordinal).ThenBy(p => p.WindowStart).ThenBy(p => p.Group, StringComparer.Ordinal)
            .ToList();
        return TypedResults.Ok(new UsageResponse(items));
    }

    private static string? GroupOf(JsonElement? data, string property) =>
        Aggregations.TryProperty(data, property, out var v) && Aggregations.TryKey(v, out var key) ? key : null;

    private static bool TryTime(string? text, DateTimeOffset fallback, out DateTimeOffset value)
    {
        value = fallback;
        return text is null || DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value);
    }

    public static DateTimeOffset WindowStart(DateTimeOffset time, string window)
    {
        var t = time.UtcDateTime;
        return window switch
        {
            "hour" => new DateTimeOffset(t.Year, t.Month, t.Day, t.Hour, 0, 0, TimeSpan.Zero),
            "day" => new DateTimeOffset(t.Year, t.Month, t.Day, 0, 0, 0, TimeSpan.Zero),
            _ => new DateTimeOffset(t.Year, t.Month, 1, 0, 0, 0, TimeSpan.Zero),
        };
    }

    private static async Task<Results<Created<Meter>, ProblemHttpResult>> CreateMeter(HttpContext http, IControlPlaneDatabase db, BillingCatalog catalog, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<MeterRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var meter = new Meter
        {
            Key = body!.Key ?? "",
            EventType = body.EventType ?? body.Key ?? "",
            Aggregation = body.Aggregation ?? "",
            Property = body.Property,
            Unit = body.Unit,
            Description = body.Description,
        };
        if (Aggregations.Check(meter) is { } problem)
        {
            return ApiError.Validation("meter", problem).ToResult();
        }

        await catalog.GetAsync(); // The built-in meters exist before a new key is checked against them.
        var created = await db.WriteAsync(async (c, tx) => await MeterStore.InsertAsync(c, tx, meter, time.GetUtcNow()));
        if (!created)
        {
            return ApiError.Conflict("meter-exists", "The meter exists.", $"A meter '{meter.Key}' exists; meters are not redefined, since stored usage was read with them.").ToResult();
        }

        await catalog.ReloadAsync();
        return TypedResults.Created($"/v1/meters/{meter.Key}", meter);
    }
}
