using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Events;

/// <summary>
/// Delivers the outbox to webhooks, at least once. Each pass turns newly committed events into
/// deliveries (one per matching endpoint), takes due deliveries with a lease (the oldest pending one
/// of each endpoint and tenant, so a lane stays in order), and sends them; results are recorded in
/// batches (one transaction for many). A failed attempt is retried with exponential back-off and
/// jitter, up to <c>MaxAttempts</c>; an endpoint that has failed for <c>DisableAfter</c> is disabled and
/// <c>webhook.disabled</c> is published. A crash between sending and recording sends again, with the
/// same <c>webhook-id</c>: on SQLite every lease is freed at start (the data dir belongs to one
/// process); on PostgreSQL the leases of a dead host end after <see cref="LeaseTime"/>.
/// </summary>
internal sealed partial class WebhookWorker(
    IControlPlaneDatabase db,
    WebhookSender sender,
    EventSignals signals,
    IEventOutbox events,
    IOptions<WebhookOptions> options,
    TimeProvider time,
    ILogger<WebhookWorker> logger) : BackgroundService
{
    public const string Actor = "system:webhooks";
    private const int FanOutBatch = 1000;
    private const int RecordBatch = 500;
    private readonly string _node = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid():N}";
    private readonly Channel<AttemptResult> _results = Channel.CreateUnbounded<AttemptResult>(new UnboundedChannelOptions { SingleReader = true });
    private int _inFlight;

    /// <summary>How long a taken delivery stays this host's: long enough for its attempt and its record.</summary>
    private TimeSpan LeaseTime => (options.Value.Timeout * 2) + TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var settings = options.Value;
        try
        {
            var freed = await db.WriteAsync((c, tx) => WebhookStore.ReleaseAsync(c, tx, db.Engine == "sqlite" ? null : _node), stoppingToken);
            if (freed > 0)
            {
                Log.Resuming(logger, freed);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }

        var recorder = RecordLoopAsync(stoppingToken);
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PassAsync(settings, stoppingToken);
                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
#pragma warning disable CA1031 // A failed pass must not end delivery; the next pass tries again after a pause.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                failures++;
                Log.PassFailed(logger, failures, ex);
            }

            try
            {
                await signals.WaitAsync(LoopBackOff.After(settings.PollInterval, failures), stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }

        _results.Writer.TryComplete();
        await recorder;
    }

    /// <summary>One pass: new events into deliveries, then due deliveries out.</summary>
    private async Task PassAsync(WebhookOptions settings, CancellationToken ct)
    {
        while (await db.WriteAsync((c, tx) => WebhookStore.FanOutAsync(c, tx, time.GetUtcNow(), FanOutBatch), ct) == FanOutBatch)
        {
        }

        var free = settings.MaxConcurrency - Volatile.Read(ref _inFlight);
        if (free <= 0)
        {
            return;
        }

        var claimed = await db.WriteAsync(
            async (c, tx) =>
            {
                var now = time.GetUtcNow();
                var due = await WebhookStore.ClaimAsync(c, tx, _node, now, now + LeaseTime, free);
                // An event fans out to many endpoints: each endpoint and each event is read once per pass.
                var hooks = new Dictionary<string, Webhook?>(StringComparer.Ordinal);
                var stored = new Dictionary<long, StoredEvent?>();
                var ready = new List<ClaimedDelivery>(due.Count);
                foreach (var (id, webhookId, eventSequence, attempts) in due)
                {
                    if (!hooks.TryGetValue(webhookId, out var hook))
                    {
                        hooks[webhookId] = hook = await WebhookStore.GetAsync(c, tx, webhookId);
                    }

                    if (!stored.TryGetValue(eventSequence, out var e))
                    {
                        stored[eventSequence] = e = await WebhookStore.EventAsync(c, tx, eventSequence);
                    }

                    if (hook is not null && e is not null)
                    {
                        ready.Add(new ClaimedDelivery(id, hook, e, attempts));
                    }
                }

                return ready;
            },
            ct);
        foreach (var delivery in claimed)
        {
            Interlocked.Increment(ref _inFlight);
            _ = SendAsync(delivery, ct);
        }
    }

    private async Task SendAsync(ClaimedDelivery delivery, CancellationToken ct)
    {
        try
        {
            _results.Writer.TryWrite(await sender.SendAsync(delivery, ct));
        }
#pragma warning disable CA1031 // Shutting down (the lease is freed at the next start) or an unexpected fault: the attempt is not recorded and runs again.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Interlocked.Decrement(ref _inFlight);
            if (!ct.IsCancellationRequested)
            {
                Log.SendFailed(logger, delivery.Id, ex);
            }
        }
    }

    /// <summary>Records results in batches, one transaction each, and wakes the loop: the next delivery of each lane is due.</summary>
    private async Task RecordLoopAsync(CancellationToken stoppingToken)
    {
        var batch = new List<AttemptResult>(RecordBatch);
        var failures = 0;
        try
        {
            while (await _results.Reader.WaitToReadAsync(stoppingToken))
            {
                while (batch.Count < RecordBatch && _results.Reader.TryRead(out var result))
                {
                    batch.Add(result);
                }

                try
                {
                    await db.WriteAsync((c, tx) => RecordAsync(c, tx, batch), stoppingToken);
                    Interlocked.Add(ref _inFlight, -batch.Count);
                    batch.Clear();
                    failures = 0;
                    signals.Set();
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // The attempts are kept and recorded once the store answers again.
                    failures++;
                    Log.RecordFailed(logger, batch.Count, failures, ex);
                    await Task.Delay(LoopBackOff.After(options.Value.PollInterval, failures), time, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Unrecorded attempts are sent again after the restart.
        }
    }

    private async Task RecordAsync(System.Data.Common.DbConnection c, System.Data.Common.DbTransaction tx, List<AttemptResult> batch)
    {
        var settings = options.Value;
        var now = time.GetUtcNow();
        foreach (var result in batch)
        {
            var attempts = result.Delivery.Attempts + 1;
            DateTimeOffset? retryAt = result.Succeeded || attempts >= settings.MaxAttempts ? null : now + RetryDelay(settings, attempts);
            if (!await WebhookStore.RecordAsync(c, tx, _node, result, retryAt))
            {
                continue;
            }

            var webhook = result.Delivery.Webhook;
            if (!result.Succeeded)
            {
                Log.AttemptFailed(logger, webhook.TenantId, result.Delivery.Id, webhook.Id, attempts, result.Error ?? "");
            }

            var failingSince = await WebhookStore.NoteHealthAsync(c, tx, webhook.Id, result.Succeeded, result.At);
            if (failingSince is { } since && now - since >= settings.DisableAfter)
            {
                var reason = $"Every delivery failed since {since:yyyy-MM-dd'T'HH:mm:ss'Z'}; last: {result.Error}";
                if (await WebhookStore.DisableAsync(c, tx, webhook.Id, reason, now))
                {
                    var data = new JsonObject
                    {
                        ["webhookId"] = webhook.Id,
                        ["url"] = webhook.Url,
                        ["tenantId"] = webhook.TenantId?.ToString(),
                        ["failingSince"] = since,
                        ["reason"] = reason,
                    };
                    await events.AppendAsync(c, tx, new OutboxEvent(EventTypes.WebhookDisabled, webhook.TenantId, data), now);
                    await AuditLog.AppendAsync(c, tx, AuditLog.By(Actor, webhook.TenantId, "webhook.disabled", "succeeded", data.DeepClone().AsObject(), now));
                    Log.Disabled(logger, webhook.TenantId, webhook.Id, since);
                }
            }
        }
    }

    /// <summary>Base × 4^(n-1), at most the maximum, ±20 % jitter: with the defaults about a day over 11 attempts.</summary>
    public static TimeSpan RetryDelay(WebhookOptions settings, int failedAttempts)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var exponential = settings.RetryBaseDelay.TotalMilliseconds * Math.Pow(4, Math.Max(0, failedAttempts - 1));
        var capped = Math.Min(exponential, settings.MaxRetryDelay.TotalMilliseconds);
#pragma warning disable CA5394 // Jitter spreads retries; it protects nothing.
        var jitter = 0.8 + (Random.Shared.NextDouble() * 0.4);
#pragma warning restore CA5394
        return TimeSpan.FromMilliseconds(capped * jitter);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Webhook deliveries: {Count} taken by a process that stopped are due again")]
        public static partial void Resuming(ILogger logger, int count);

        [LoggerMessage(2, LogLevel.Error, "A webhook delivery pass failed ({Failures} in a row); it goes on after a pause")]
        public static partial void PassFailed(ILogger logger, int failures, Exception exception);

        [LoggerMessage(3, LogLevel.Warning, "Webhook delivery {DeliveryId} could not be sent; it is sent again later")]
        public static partial void SendFailed(ILogger logger, string deliveryId, Exception exception);

        [LoggerMessage(4, LogLevel.Error, "Recording {Count} webhook attempts failed ({Failures} in a row); they are recorded once the store answers")]
        public static partial void RecordFailed(ILogger logger, int count, int failures, Exception exception);

        [LoggerMessage(5, LogLevel.Information, "Webhook delivery {DeliveryId} to {WebhookId} (tenant {TenantId}) failed, attempt {Attempt}: {Error}")]
        public static partial void AttemptFailed(ILogger logger, Guid? tenantId, string deliveryId, string webhookId, int attempt, string error);

        [LoggerMessage(6, LogLevel.Warning, "Webhook {WebhookId} (tenant {TenantId}) disabled: it has failed since {Since}")]
        public static partial void Disabled(ILogger logger, Guid? tenantId, string webhookId, DateTimeOffset since);
    }
}
