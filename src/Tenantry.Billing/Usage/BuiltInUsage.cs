using Tenantry.ControlPlane;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.Billing.Entitlements;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Usage;

/// <summary>
/// Meters the control plane's own API: every call made on behalf of a tenant (routes under
/// <c>/v1/tenants/{id}</c>) is an <c>api_calls</c> event, buffered and written in batches. A
/// tenant past a hard <c>api_calls</c> quota gets 429 problem details instead. The call's request
/// metrics are labelled with the tenant (<see cref="UsageMetrics.TenantTags"/>).
/// </summary>
public sealed class ApiCallMeter(
    BillingCatalog catalog, EntitlementService entitlements, BuiltInUsageBuffer buffer, TimeProvider time, IOptions<BillingOptions> options, UsageMetrics? metrics = null)
    : IEndpointFilter
{
    public const string MeterKey = "api_calls";
    public const string Source = "tenantry/control-plane";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var http = context.HttpContext;
        var pattern = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText;
        var metered = options.Value.MeterApiCalls;
        var tagged = metrics?.TenantTags == true;
        if (!(metered || tagged) || pattern is null || !pattern.Contains("tenants/{id}", StringComparison.Ordinal) ||
            http.Request.RouteValues["id"] is not string subject || await catalog.ResolveTenantAsync(subject, http.RequestAborted) is not { } tenantId)
        {
            return await next(context);
        }

        if (tagged)
        {
            // The request's own metrics (http.server.request.duration) carry the tenant it was made for.
            http.Features.Get<IHttpMetricsTagsFeature>()?.Tags.Add(new(UsageMetrics.TenantTag, tenantId.ToString()));
        }

        if (!metered)
        {
            return await next(context);
        }

        if (await entitlements.CountApiCallAsync(tenantId, http.RequestAborted) is { } quota)
        {
            var end = BillingPeriod.Of(time.GetUtcNow()).End;
            http.Response.Headers.RetryAfter = ((long)Math.Ceiling((end - time.GetUtcNow()).TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            return EntitlementService.Exceeded(quota, quota.Limit, StatusCodes.Status429TooManyRequests, end).ToResult();
        }

        var result = await next(context);
        buffer.Add(new UsageEvent(
            Source, Guid.NewGuid().ToString("N"), tenantId, MeterKey, time.GetUtcNow(),
            new JsonObject { ["method"] = http.Request.Method, ["route"] = pattern }.ToJsonString()));
        return result;
    }
}

/// <summary>Usage the platform itself observes (API calls, user logins) waiting to be written; flushed every <see cref="BillingOptions.ApiCallFlushInterval"/> and at shutdown.</summary>
public sealed class BuiltInUsageBuffer
{
    private readonly ConcurrentQueue<UsageEvent> _events = new();

    public void Add(UsageEvent e) => _events.Enqueue(e);

    public List<UsageEvent> Drain(int max)
    {
        var list = new List<UsageEvent>();
        while (list.Count < max && _events.TryDequeue(out var e))
        {
            list.Add(e);
        }

        return list;
    }
}

/// <summary>
/// Writes buffered API calls, and samples <c>storage_bytes</c> (size of each tenant's storage
/// folder) and <c>compute_seconds</c> (time a dedicated instance is deployed and routed) once per
/// <see cref="BillingOptions.SampleInterval"/>. A sample's id is its tenant and time slot, so a
/// restart inside a slot does not count it twice.
/// </summary>
public sealed partial class BuiltInUsageWorker(
    BuiltInUsageBuffer buffer, UsageIngestor ingestor, IRunningTenants running, IOptions<BillingOptions> billing,
    TimeProvider time, ILogger<BuiltInUsageWorker> logger) : BackgroundService
{
    public const string SamplerSource = "tenantry/sampler";
    private DateTimeOffset _lastSlot = DateTimeOffset.MinValue;

    /// <summary>Sampling waits this long after start (or one interval if shorter), so a restart serves requests first.</summary>
    public static readonly TimeSpan FirstSampleDelay = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = billing.Value.SampleInterval;
        var firstSample = time.GetUtcNow() + (interval < FirstSampleDelay ? interval : FirstSampleDelay);
        var failures = 0;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await FlushAsync(CancellationToken.None);
                    if (time.GetUtcNow() >= firstSample)
                    {
                        await SampleAsync(stoppingToken);
                    }

                    failures = 0;
                }
#pragma warning disable CA1031 // One failed round (the store, a folder, a bug) must not end metering; the next round tries again.
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
#pragma warning restore CA1031
                {
                    failures++;
                    Log.RoundFailed(logger, failures, ex);
                }

                await Task.Delay(LoopBackOff.After(billing.Value.ApiCallFlushInterval, failures), time, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await FlushAsync(cancellationToken);
    }

    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        for (var batch = buffer.Drain(1000); batch.Count > 0; batch = buffer.Drain(1000))
        {
            try
            {
                await ingestor.IngestAsync(batch, cancellationToken);
            }
            catch (Exception ex) when (ex is UsageNotStoredException or OperationCanceledException)
            {
                Log.FlushFailed(logger, batch.Count, ex);
                return;
            }
        }
    }

    /// <summary>Takes this slot's samples, once per slot.</summary>
    internal async Task SampleAsync(CancellationToken cancellationToken)
    {
        var interval = billing.Value.SampleInterval;
        if (interval <= TimeSpan.Zero)
        {
            return;
        }

        var now = time.GetUtcNow();
        var slot = new DateTimeOffset(now.UtcTicks - (now.UtcTicks % interval.Ticks), TimeSpan.Zero);
        if (slot <= _lastSlot)
        {
            return;
        }

        var tenants = await running.ListAsync(cancellationToken);
        var stamp = Sql.Time(slot);
        var events = new List<UsageEvent>();
        foreach (var (id, _, folder, dedicated) in tenants)
        {
            var bytes = FolderBytes(folder);
            events.Add(new UsageEvent(SamplerSource, $"storage_bytes/{id}/{stamp}", id, "storage_bytes", now,
                new JsonObject { ["bytes"] = bytes }.ToJsonString()));
            if (dedicated)
            {
                events.Add(new UsageEvent(SamplerSource, $"compute_seconds/{id}/{stamp}", id, "compute_seconds", now,
                    new JsonObject { ["seconds"] = (long)interval.TotalSeconds }.ToJsonString()));
            }
        }

        try
        {
            for (var i = 0; i < events.Count; i += 1000)
            {
                await ingestor.IngestAsync(events.GetRange(i, Math.Min(1000, events.Count - i)), cancellationToken);
            }

            _lastSlot = slot;
        }
        catch (UsageNotStoredException ex)
        {
            Log.FlushFailed(logger, events.Count, ex);
        }
    }

    private static long FolderBytes(string folder)
    {
        if (!Directory.Exists(folder))
        {
            return 0;
        }

        long total = 0;
        try
        {
            foreach (var file in new DirectoryInfo(folder).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }))
            {
                total += file.Length;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Files come and go while sampling: the next sample counts them.
        }

        return total;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Writing {Count} built-in usage events failed; they are retried with the next samples")]
        public static partial void FlushFailed(ILogger logger, int count, Exception exception);

        [LoggerMessage(EventId = 5008, Level = LogLevel.Error, Message = "Built-in usage metering failed ({Failures} in a row); it goes on after a pause")]
        public static partial void RoundFailed(ILogger logger, int failures, Exception exception);
    }
}
