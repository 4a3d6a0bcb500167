using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Storage;

namespace Tenantry.ControlPlane.Billing.Usage;

public sealed record IngestRejection(int Index, string Reason);

public sealed record IngestResponse(int Accepted, int Duplicates, IReadOnlyList<IngestRejection> Rejected);

public sealed record UsagePoint(string TenantId, string Meter, DateTimeOffset WindowStart, decimal Value, string? Group);

public sealed record UsageResponse(IReadOnlyList<UsagePoint> Items);

public static class UsageApi
{
    public const int MaxBodyBytes = 8 * 1024 * 1024;
    private const int MaxField = 200;

    public static RouteGroupBuilder MapUsageApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/usage/events", Ingest).WithTags("Usage")
            .Accepts<JsonElement>("application/json", "application/cloudevents-batch+json")
            .WithSummary("Record a batch of CloudEvents-shaped usage events; 202 after they are durable. Replays (same source and id) are no-ops.");
        v1.MapGet("/usage", Query).WithTags("Usage")
            .WithSummary("A meter's value per tenant and window (hour, day, month) over [from, to), optionally grouped by a data property.");
        v1.MapGet("/meters", async (BillingCatalog catalog) => TypedResults.Ok((await catalog.GetAsync()).Meters.Values.OrderBy(m => m.Key, StringComparer.Ordinal).ToList()))
            .WithTags("Usage").WithSummary("The meters.");
        v1.MapPost("/meters", CreateMeter).WithTags("Usage").Accepts<MeterRequest>("application/json")
            .WithSummary("Define a meter: an aggregation (sum, count, max, unique_count, latest) over a property of events of one type.");
        return v1;
    }

    private static async Task<Results<Accepted<IngestResponse>, ProblemHttpResult>> Ingest(
        HttpContext http, BillingCatalog catalog, UsageIngestor ingestor, IOptions<BillingOptions> options, TimeProvider time)
    {
        var (document, error) = await ReadArrayAsync(http.Request, options.Value.MaxBatch);
        if (error is not null)
        {
            return error.ToResult();
        }

        using (document)
        {
            var snapshot = await catalog.GetAsync(http.RequestAborted);
            var now = time.GetUtcNow();
            var openFrom = OpenFrom(now, options.Value.LateEventGrace);
            var latest = now + options.Value.MaxFutureSkew;
            var rejected = new List<IngestRejection>();
            var events = new List<UsageEvent>();
            var indexes = new List<int>();
            var index = 0;
            foreach (var element in document!.RootElement.EnumerateArray())
            {
                var (e, reason) = await ValidateAsync(element, snapshot, catalog, now, openFrom, latest, http.RequestAborted);
                if (reason is not null)
                {
                    rejected.Add(new IngestRejection(index, reason));
                }
                else
                {
                    events.Add(e!);
                    indexes.Add(index);
                }

                index++;
            }

            IngestOutcome[] outcomes;
            try
            {
                outcomes = await ingestor.IngestAsync(events, http.RequestAborted);
            }
            catch (Exception ex) when (ex is System.Data.Common.DbException or InvalidOperationException or TimeoutException)
            {
                return new ApiError(StatusCodes.Status503ServiceUnavailable, "store-unavailable", "The usage store did not commit the batch.",
                    "No event of this batch is acknowledged; send it again (replays are no-ops).").ToResult();
            }

            for (var i = 0; i < outcomes.Length; i++)
            {
                if (outcomes[i] == IngestOutcome.PeriodClosed)
                {
                    rejected.Add(new IngestRejection(indexes[i], "The billing period of this event is closed: the tenant's invoice for it is finalized."));
                }
            }

            rejected.Sort((a, b) => a.Index.CompareTo(b.Index));
            return TypedResults.Accepted((string?)null, new IngestResponse(
                outcomes.Count(o => o == IngestOutcome.Accepted), outcomes.Count(o => o == IngestOutcome.Duplicate), rejected));
        }
    }

    /// <summary>The earliest event time still accepted: this month's start, or last month's while its grace runs.</summary>
    public static DateTimeOffset OpenFrom(DateTimeOffset now, TimeSpan grace)
    {
        var current = BillingPeriod.Of(now);
        return now < current.Start + grace ? current.Previous.Start : current.Start;
    }

    private static async Task<(JsonDocument? Document, ApiError? Error)> ReadArrayAsync(HttpRequest request, int maxBatch)
    {
        var type = request.ContentType?.Split(';')[0].Trim();
        if (!request.HasJsonContentType() && !string.Equals(type, "application/cloudevents-batch+json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, new ApiError(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "The body must be JSON.", "Send Content-Type: application/json."));
        }

        var tooLarge = new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The body is too large.", $"At most {MaxBodyBytes} bytes.");
        if (request.ContentLength > MaxBodyBytes)
        {
            return (null, tooLarge);
        }

        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, request.HttpContext.RequestAborted);
        if (buffer.Length > MaxBodyBytes)
        {
            return (null, tooLarge);
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
        }
        catch (JsonException ex)
        {
            return (null, ApiError.BadRequest($"The body is not valid JSON (line {ex.LineNumber + 1}, position {ex.BytePositionInLine + 1})."));
        }

        if (document.RootElement.ValueKind != JsonValueKind.Array)
        {
            document.Dispose();
            return (null, ApiError.BadRequest("The body is a JSON array of events: [{id, source, type, subject, time, data}]."));
        }

        var count = document.RootElement.GetArrayLength();
        if (count == 0 || count > maxBatch)
        {
            document.Dispose();
            return (null, ApiError.Validation("events", $"A batch holds 1-{maxBatch} events."));
        }

        return (document, null);
    }

    private static async Task<(UsageEvent? Event, string? Reason)> ValidateAsync(
        JsonElement e, BillingCatalog.Snapshot snapshot, BillingCatalog catalog, DateTimeOffset now, DateTimeOffset openFrom, DateTimeOffset latest, CancellationToken cancellationToken)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            return (null, "An event is a JSON object.");
        }

        if (Text(e, "id") is not { } id)
        {
            return (null, $"id is required: a string of 1-{MaxField} characters.");
        }

        if (Text(e, "source") is not { } source)
        {
            return (null, $"source is required: a string of 1-{MaxField} characters.");
        }

        if (Text(e, "type") is not { } type)
        {
            return (null, $"type is required: a string of 1-{MaxField} characters.");
        }

        var meters = snapshot.MetersByType[type];
        if (!meters.Any())
        {
            return (null, $"No meter counts events of type '{type}' (GET /v1/meters lists them).");
        }

        if (Text(e, "subject") is not { } subject)
        {
            return (null, "subject is required: the tenant's id or slug.");
        }

        Guid? tenant = catalog.TryResolveCached(subject, out var cached) ? cached : await catalog.ResolveTenantAsync(subject, cancellationToken);
        if (tenant is null)
        {
            return (null, $"No tenant '{subject}'.");
        }

        var at = now;
        if (e.TryGetProperty("time", out var timeElement) && timeElement.ValueKind != JsonValueKind.Null)
        {
            if (timeElement.ValueKind != JsonValueKind.String ||
                !timeElement.TryGetDateTimeOffset(out at) && !DateTimeOffset.TryParse(timeElement.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out at))
            {
                return (null, "time is an RFC 3339 timestamp, e.g. 2026-11-23T10:00:00Z.");
            }
        }

        if (at < openFrom)
        {
            return (null, $"The event is older than the closed billing period: events from {openFrom:yyyy-MM-dd'T'HH:mm:ss'Z'} on are accepted.");
        }

        if (at > latest)
        {
            return (null, "The event's time is in the future.");
        }

        string? data = null;
        JsonElement? dataElement = null;
        if (e.TryGetProperty("data", out var d) && d.ValueKind != JsonValueKind.Null)
        {
            if (d.ValueKind != JsonValueKind.Object)
            {
                return (null, "data is a JSON object.");
            }

            dataElement = d;
            data = d.GetRawText();
        }

        foreach (var meter in meters)
        {
            if (meter.NeedsNumber && !Aggregations.TryNumber(dataElement, meter.Property!, out _))
            {
                return (null, $"data.{meter.Property} must be a number (meter {meter.Key}).");
            }

            if (meter.Aggregation == Aggregations.UniqueCount && !Aggregations.TryProperty(dataElement, meter.Property!, out _))
            {
                return (null, $"data.{meter.Property} is required (meter {meter.Key}).");
            }
        }

        return (new UsageEvent(source, id, tenant.Value, type, at, data), null);
    }

    private static string? Text(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 and <= MaxField } s && !s.Any(char.IsControl) ? s : null;

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
        Aggregations.TryProperty(data, property, out var v) ? (v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()) : null;

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
        var created = await db.WriteAsync(async (c, tx) => await c.ExecuteAsync(
            "INSERT INTO meters (key, definition, created_at) VALUES (@key, @def, @now) ON CONFLICT (key) DO NOTHING",
            tx, ("@key", meter.Key), ("@def", JsonSerializer.Serialize(meter, BillingCatalog.Json)), ("@now", time.GetUtcNow())) == 1);
        if (!created)
        {
            return ApiError.Conflict("meter-exists", "The meter exists.", $"A meter '{meter.Key}' exists; meters are not redefined, since stored usage was read with them.").ToResult();
        }

        await catalog.ReloadAsync();
        return TypedResults.Created($"/v1/meters/{meter.Key}", meter);
    }
}
