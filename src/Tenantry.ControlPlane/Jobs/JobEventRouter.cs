using System.Data.Common;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Events;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>
/// Turns control-plane events into jobs by the routes (<see cref="JobRoute"/>): a durable cursor over
/// the outbox, moved in the transaction that inserts the jobs, so an event is routed once whatever
/// crashes; each job's idempotency key is <c>{event id}:{job type}</c>, so even a cursor set back
/// makes no second job. The payload is the event as a CloudEvent, as webhooks get it.
/// </summary>
/// <remarks>
/// A routed job is not refused by the queue's depth quota (the event happened; dropping it would
/// lose it) but counts in the depth. A tenant whose queue is not made yet (an event of its
/// onboarding before the provision-queue step) gets it now, as that step would; a tenant being
/// offboarded or gone gets no job: its queue has been exported or is about to be.
/// </remarks>
internal sealed partial class JobEventRouter(
    JobBackend backend,
    JobSignal signal,
    ITenantRegistry tenants,
    IOptions<JobsOptions> options,
    TimeProvider time,
    ILogger<JobEventRouter> logger,
    JobMetrics? metrics = null) : BackgroundService
{
    private const int Batch = 500;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(500);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                while (await RouteAsync(stoppingToken) == Batch)
                {
                }

                failures = 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException)
            {
                failures++;
                Log.Failed(logger, ex);
            }

            await Task.Delay(LoopBackOff.After(Interval, failures), time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>One pass: routes up to <see cref="Batch"/> events after the cursor; returns how many were read.</summary>
    internal async Task<int> RouteAsync(CancellationToken cancellationToken)
    {
        // A read first: most passes find nothing new and take no write (SQLite has one writer).
        var (cursor, last) = await backend.ReadAsync(async c => (await JobRouteStore.CursorAsync(c, null, ""), await EventOutbox.LastAsync(c, null)), cancellationToken);
        if (cursor is { } seen && seen >= last)
        {
            return 0;
        }

        var routed = new List<Job>();
        var read = await backend.WriteAsync(async (c, tx) =>
        {
            routed.Clear();
            // On PostgreSQL the cursor row is taken for the transaction: routers of several replicas take turns.
            if (await JobRouteStore.CursorAsync(c, tx, backend.LockRow) is not { } from)
            {
                // First pass: start where the oldest route starts, or at the end of the outbox.
                await JobRouteStore.StartCursorAsync(c, tx, await JobRouteStore.EarliestAsync(c, tx) ?? await EventOutbox.LastAsync(c, tx));
                from = (await JobRouteStore.CursorAsync(c, tx, backend.LockRow))!.Value;
            }

            var events = await EventOutbox.AfterAsync(c, tx, from, Batch);
            if (events.Count == 0)
            {
                return 0;
            }

            var routes = await JobRouteStore.ListAsync(c, tx, null);
            var queues = new Dictionary<Guid, bool>();
            var now = time.GetUtcNow().ToUnixTimeMilliseconds();
            foreach (var e in events)
            {
                if (e.TenantId is not { } tenant)
                {
                    continue;
                }

                var types = routes
                    .Where(r => e.Sequence > r.FromSequence && (r.TenantId is null || r.TenantId == tenant) && EventCatalog.MatchesAny(r.Events, e.Type))
                    .Select(r => r.JobType).Distinct(StringComparer.Ordinal).ToList();
                if (types.Count == 0)
                {
                    continue;
                }

                if (!queues.TryGetValue(tenant, out var open))
                {
                    queues[tenant] = open = await QueueOpenAsync(c, tx, tenant, now);
                }

                if (!open)
                {
                    Log.Skipped(logger, tenant, e.Id, e.Type);
                    continue;
                }

                var payload = e.CloudEventJson;
                foreach (var type in types)
                {
                    var job = new Job
                    {
                        Id = Guid.CreateVersion7(time.GetUtcNow()),
                        TenantId = tenant,
                        Type = type,
                        Payload = payload,
                        Status = JobStatus.Queued,
                        RunAt = now,
                        Attempts = 0,
                        MaxAttempts = options.Value.MaxAttempts,
                        CreatedAt = now,
                    };
                    var key = $"{e.Id}:{type}";
                    if (await JobStore.InsertAsync(c, tx, job, key, JobRules.Hash(type, payload, null)))
                    {
                        await JobStore.TakeDepthAsync(c, tx, tenant, 1, long.MaxValue);
                        routed.Add(job);
                    }
                }
            }

            await JobRouteStore.MoveCursorAsync(c, tx, events[^1].Sequence);
            if (routed.Count > 0)
            {
                await backend.NotifyAsync(c, tx);
            }

            return events.Count;
        }, cancellationToken);
        foreach (var job in routed)
        {
            metrics?.Enqueued(job.TenantId, job.Type);
            Log.Routed(logger, job.TenantId, job.Id, job.Type);
        }

        if (routed.Count > 0)
        {
            signal.Pulse();
        }

        return read;
    }

    /// <summary>The tenant has a queue, or gets one now unless it is leaving (offboarding, offboarded) or gone.</summary>
    private async Task<bool> QueueOpenAsync(DbConnection c, DbTransaction tx, Guid tenantId, long now)
    {
        var tenant = await tenants.GetAsync(c, tx, tenantId);
        if (tenant is null || tenant.Status is TenantStatus.Offboarding or TenantStatus.Offboarded)
        {
            return false;
        }

        if (!await JobStore.ExistsAsync(c, tx, tenantId))
        {
            await JobStore.ProvisionAsync(c, tx, tenantId, now);
        }

        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Routing events into job queues failed; it runs again shortly.")]
        public static partial void Failed(ILogger logger, Exception exception);

        [LoggerMessage(2, LogLevel.Debug, "Event routed into the queue of tenant {TenantId}: job {JobId} ({Type}).")]
        public static partial void Routed(ILogger logger, Guid tenantId, Guid jobId, string type);

        [LoggerMessage(3, LogLevel.Information, "Event {EventId} ({EventType}) of tenant {TenantId} was not routed: the tenant is offboarding or gone.")]
        public static partial void Skipped(ILogger logger, Guid tenantId, string eventId, string eventType);
    }
}
