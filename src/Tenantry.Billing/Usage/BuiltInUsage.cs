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

/// <summary>
/// Usage the platform itself observes (API calls, user logins, samples the store did not take)
/// waiting to be written; flushed every <see cref="BillingOptions.ApiCallFlushInterval"/> and at
/// shutdown. A batch the store did not commit goes back to the front and is written with the next
/// flush. While the store stays unavailable the buffer keeps at most <see cref="Capacity"/> events:
/// past that the oldest are dropped and counted (<see cref="TakeDropped"/>), so an outage costs
/// usage, not the process's memory.
/// </summary>
public sealed class BuiltInUsageBuffer
{
    /// <summary>About 100 k API calls: some minutes of a busy control plane, a few tens of MB.</summary>
    public const int DefaultCapacity = 100_000;

    private readonly Lock _lock = new();
    private readonly LinkedList<UsageEvent> _events = new();
    private long _dropped;

    public BuiltInUsageBuffer()
        : this(DefaultCapacity)
    {
    }

    public BuiltInUsageBuffer(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
    }

    /// <summary>The most events held; past it the oldest are dropped.</summary>
    public int Capacity { get; }

    /// <summary>Events waiting to be written.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _events.Count;
            }
        }
    }

    public void Add(UsageEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        lock (_lock)
        {
            _events.AddLast(e);
            Trim();
        }
    }

    /// <summary>Takes up to <paramref name="max"/> of the oldest events out of the buffer.</summary>
    public List<UsageEvent> Drain(int max)
    {
        lock (_lock)
        {
            var list = new List<UsageEvent>(Math.Min(max, _events.Count));
            while (list.Count < max && _events.First is { } first)
            {
                list.Add(first.Value);
                _events.RemoveFirst();
            }

            return list;
        }
    }

    /// <summary>Puts events the store did not commit back in front of the newer ones, to be written with the next flush.</summary>
    public void Return(IReadOnlyList<UsageEvent> events)
    {
        ArgumentNullException.ThrowIfNull(events);
        lock (_lock)
        {
            for (var i = events.Count - 1; i >= 0; i--)
            {
                _events.AddFirst(events[i]);
            }

            Trim();
        }
    }

    /// <summary>How many events were dropped since the last call.</summary>
    public long TakeDropped() => Interlocked.Exchange(ref _dropped, 0);

    private void Trim()
    {
        while (_events.Count > Capacity)
        {
            _events.RemoveFirst();
            Interlocked.Increment(ref _dropped);
        }
    }
}

/// <summary>
/// Writes buffered API calls and logins, and samples <c>storage_bytes</c> (size of each tenant's
/// storage folder) and <c>compute_seconds</c> (time a dedicated instance is deployed and routed)
/// once per <see cref="BillingOptions.SampleInterval"/>. A sample's id is its tenant and time slot,
/// so a restart inside a slot, or a sample written again after a failed write, does not count it
/// twice. What the store does not commit stays in the <see cref="BuiltInUsageBuffer"/> and is
/// written with the next flush, which backs off while the store stays unavailable.
/// </summary>
public sealed partial class BuiltInUsageWorker(
    BuiltInUsageBuffer buffer, UsageIngestor ingestor, IRunningTenants running, IOptions<BillingOptions> billing,
    TimeProvider time, ILogger<BuiltInUsageWorker> logger, UsageMetrics? metrics = null) : BackgroundService
{
    private const int BatchSize = 1000;

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
                    var flushed = await FlushAsync(CancellationToken.None);
                    if (time.GetUtcNow() >= firstSample)
                    {
                        await SampleAsync(stoppingToken);
                    }

                    failures = flushed ? 0 : failures + 1;
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

    /// <summary>Writes the buffer; false if the store did not take a batch (it is back in the buffer).</summary>
    private async Task<bool> FlushAsync(CancellationToken cancellationToken)
    {
        try
        {
            for (var batch = buffer.Drain(BatchSize); batch.Count > 0; batch = buffer.Drain(BatchSize))
            {
                try
                {
                    await ingestor.IngestAsync(batch, cancellationToken);
                }
                catch (Exception ex) when (ex is UsageNotStoredException or OperationCanceledException)
                {
                    buffer.Return(batch);
                    Log.FlushFailed(logger, batch.Count, buffer.Count, ex);
                    return false;
                }
                catch
                {
                    buffer.Return(batch);
                    throw;
                }
            }

            return true;
        }
        finally
        {
            if (buffer.TakeDropped() is > 0 and var dropped)
            {
                metrics?.UsageNotStored((int)Math.Min(dropped, int.MaxValue), "dropped");
                Log.Dropped(logger, dropped, buffer.Capacity);
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

        // The slot is taken once its samples are: those the store does not commit go to the buffer
        // and are written with the next flush (their ids make a second write a duplicate), so a
        // store that is down until the next slot does not lose this one.
        _lastSlot = slot;
        for (var i = 0; i < events.Count; i += BatchSize)
        {
            var batch = events.GetRange(i, Math.Min(BatchSize, events.Count - i));
            try
            {
                await ingestor.IngestAsync(batch, cancellationToken);
            }
            catch (Exception ex) when (ex is UsageNotStoredException or OperationCanceledException)
            {
                var unsent = events[i..];
                buffer.Return(unsent);
                Log.FlushFailed(logger, unsent.Count, buffer.Count, ex);
                return;
            }
            catch
            {
                buffer.Return(events[i..]);
                throw;
            }
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
        [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Writing {Count} built-in usage events failed; they stay buffered ({Buffered} in all) and are retried with the next flush")]
        public static partial void FlushFailed(ILogger logger, int count, int buffered, Exception exception);

        [LoggerMessage(EventId = 5009, Level = LogLevel.Error, Message = "Dropped the {Count} oldest built-in usage events (API calls, logins, samples): the store did not take them and the buffer holds at most {Capacity}; this usage is not billed")]
        public static partial void Dropped(ILogger logger, long count, int capacity);

        [LoggerMessage(EventId = 5008, Level = LogLevel.Error, Message = "Built-in usage metering failed ({Failures} in a row); it goes on after a pause")]
        public static partial void RoundFailed(ILogger logger, int failures, Exception exception);
    }
}
