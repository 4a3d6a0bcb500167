using System.ComponentModel.DataAnnotations;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.Health;

namespace Tenantry.Gateway;

/// <summary>
/// Where the gateway's per-tenant health batches go: the control-plane store, in the host's process or
/// over HTTP from a separate gateway replica. A batch sent again with the same id is counted once.
/// </summary>
public interface ITenantHealthSink
{
    Task WriteAsync(TenantHealthBatch batch, CancellationToken cancellationToken);
}

/// <summary>The gateway's health recording, under <c>Tenantry:Health</c>.</summary>
public sealed class HealthRecordingOptions
{
    public const string Section = "Tenantry:Health";

    /// <summary>Record per-tenant requests, errors, 429s and latency at the gateway (needs an <see cref="ITenantHealthSink"/>).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How often the counters are written to the control plane: the most a crash loses, and how far the stored figures lag.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Batches kept while the control plane does not take them; past it the oldest are dropped (and logged).</summary>
    [Range(1, 100_000)]
    public int MaxPendingBatches { get; set; } = 1000;
}

public static class TenantHealthRecording
{
    /// <summary>Samples per batch: a batch is one transaction of the store, and one request body of a replica.</summary>
    public const int MaxBatchSamples = 200;

    /// <summary>Registers the recorder and its flush loop; they record only when an <see cref="ITenantHealthSink"/> is registered.</summary>
    public static IServiceCollection AddTenantHealthRecording(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<HealthRecordingOptions>().BindConfiguration(HealthRecordingOptions.Section).ValidateSettings(HealthRecordingOptions.Section).ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<TenantHealthRecorder>();
        services.TryAddSingleton<TenantHealthFlusher>();
        services.AddHostedService(sp => sp.GetRequiredService<TenantHealthFlusher>());
        return services;
    }

    /// <summary>Times and counts every request resolved to a tenant, when recording is on and has somewhere to go.</summary>
    public static IApplicationBuilder UseTenantHealthRecording(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var services = app.ApplicationServices;
        if (services.GetService<TenantHealthFlusher>() is { IsRecording: true })
        {
            app.UseMiddleware<TenantHealthMiddleware>();
        }

        return app;
    }
}

/// <summary>
/// Counts each request the gateway resolved to a tenant, with its status and the time from its first
/// middleware to its last byte; requests with no tenant (no token, another tenant named) are nobody's.
/// An exception counts as 500 and a request whose client went away as 499.
/// </summary>
internal sealed class TenantHealthMiddleware(RequestDelegate next, TenantHealthRecorder recorder, TimeProvider time)
{
    public Task InvokeAsync(HttpContext http)
    {
        var started = time.GetTimestamp();
        Task pending;
        try
        {
            pending = next(http);
        }
        catch
        {
            Record(http, started, failed: true);
            throw;
        }

        if (pending.IsCompletedSuccessfully)
        {
            Record(http, started, failed: false);
            return Task.CompletedTask;
        }

        return AwaitedAsync(pending, http, started);
    }

    private async Task AwaitedAsync(Task pending, HttpContext http, long started)
    {
        try
        {
            await pending;
        }
        catch
        {
            Record(http, started, failed: true);
            throw;
        }

        Record(http, started, failed: false);
    }

    private void Record(HttpContext http, long started, bool failed)
    {
        if (http.Items.TryGetValue(TenantGateway.TenantItem, out var item) && item is ResolvedTenant tenant)
        {
            var status = http.RequestAborted.IsCancellationRequested ? 499 : failed ? StatusCodes.Status500InternalServerError : http.Response.StatusCode;
            recorder.Record(tenant.Route.TenantId, status, time.GetElapsedTime(started));
        }
    }
}

/// <summary>
/// Every <see cref="HealthRecordingOptions.FlushInterval"/>, drains the recorder into batches of at
/// most <see cref="TenantHealthRecording.MaxBatchSamples"/> samples and sends them, oldest first, to the
/// sink. A batch whose write fails is kept, with its id, and sent again first (the store counts an id
/// once); meanwhile new traffic keeps being drained into new batches, up to
/// <see cref="HealthRecordingOptions.MaxPendingBatches"/>. A graceful stop drains and sends once more.
/// </summary>
internal sealed partial class TenantHealthFlusher(
    TenantHealthRecorder recorder,
    IOptions<HealthRecordingOptions> options,
    TimeProvider time,
    ILogger<TenantHealthFlusher> logger,
    ITenantHealthSink? sink = null) : BackgroundService
{
    private static readonly TimeSpan StopBudget = TimeSpan.FromSeconds(5);

    private readonly Queue<TenantHealthBatch> _pending = new();
    private readonly SemaphoreSlim _flushing = new(1, 1);

    /// <summary>True when requests are counted: recording is on and there is a sink.</summary>
    public bool IsRecording => options.Value.Enabled && sink is not null;

    /// <summary>Batches waiting for the sink.</summary>
    public int Pending => _pending.Count;

    /// <summary>Drains the recorder and sends what waits; true when nothing is left waiting.</summary>
    public async Task<bool> FlushAsync(CancellationToken cancellationToken)
    {
        if (!IsRecording)
        {
            return true;
        }

        await _flushing.WaitAsync(cancellationToken);
        try
        {
            var samples = recorder.Drain();
            for (var i = 0; i < samples.Count; i += TenantHealthRecording.MaxBatchSamples)
            {
                _pending.Enqueue(new TenantHealthBatch(Guid.NewGuid().ToString("N"), samples.GetRange(i, Math.Min(TenantHealthRecording.MaxBatchSamples, samples.Count - i))));
            }

            var dropped = 0;
            while (_pending.Count > options.Value.MaxPendingBatches)
            {
                dropped += _pending.Dequeue().Samples.Count;
            }

            if (dropped > 0)
            {
                Log.Dropped(logger, dropped, options.Value.MaxPendingBatches);
            }

            while (_pending.TryPeek(out var batch))
            {
                await sink!.WriteAsync(batch, cancellationToken);
                _pending.Dequeue();
            }

            return true;
        }
        finally
        {
            _flushing.Release();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!IsRecording)
        {
            return;
        }

        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Backoff(failures), time, stoppingToken);
                await FlushAsync(stoppingToken);
                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                Log.FlushFailed(logger, _pending.Count, ex);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (!IsRecording)
        {
            return;
        }

        // What was counted since the last flush goes out before the gateway stops, within a bounded wait.
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(StopBudget);
        try
        {
            await FlushAsync(budget.Token);
        }
        catch (Exception ex)
        {
            Log.LostAtStop(logger, _pending.Sum(b => b.Samples.Count), ex);
        }
    }

    public override void Dispose()
    {
        _flushing.Dispose();
        base.Dispose();
    }

    private TimeSpan Backoff(int failures)
    {
        var interval = options.Value.FlushInterval;
        if (failures == 0)
        {
            return interval;
        }

        var delay = interval * Math.Pow(2, Math.Min(failures, 5));
        return delay < TimeSpan.FromSeconds(30) ? delay : TimeSpan.FromSeconds(30);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Could not write per-tenant health ({Pending} batches waiting); trying again")]
        public static partial void FlushFailed(ILogger logger, int pending, Exception exception);

        [LoggerMessage(2, LogLevel.Warning, "Dropped {Samples} per-tenant health samples: more than {Max} batches were waiting for the control plane")]
        public static partial void Dropped(ILogger logger, int samples, int max);

        [LoggerMessage(3, LogLevel.Warning, "Per-tenant health of {Samples} tenant-minutes was not written before the gateway stopped")]
        public static partial void LostAtStop(ILogger logger, int samples, Exception exception);
    }
}
