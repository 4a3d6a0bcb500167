using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.Billing.Plans;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Jobs;

public sealed class JobQueueMissingException(Guid tenantId) : Exception($"Tenant {tenantId} has no job queue.");

public sealed class JobQueueFullException(long maxDepth) : Exception($"The queue holds its most jobs ({maxDepth}).")
{
    public long MaxDepth { get; } = maxDepth;
}

public sealed class IdempotencyMismatchException() : Exception("The idempotency key was used for another job.");

/// <summary>The tenants' work queues: provision and delete (onboarding, offboarding), enqueue, lease by fair share, ack, nack, figures.</summary>
public interface IJobQueues
{
    string Engine { get; }

    Task ProvisionAsync(Guid tenantId, CancellationToken cancellationToken = default);

    /// <summary>The tenant's jobs that are not done, in enqueue order (what offboarding exports).</summary>
    Task<IReadOnlyList<Job>> OpenJobsAsync(Guid tenantId, CancellationToken cancellationToken = default);

    Task DeleteAsync(Guid tenantId, CancellationToken cancellationToken = default);

    Task<EnqueueResult> EnqueueAsync(NewJob job, CancellationToken cancellationToken = default);

    /// <summary>Enqueues the jobs in one transaction: all of them or, when one tenant's queue is full or missing, none.</summary>
    Task<IReadOnlyList<EnqueueResult>> EnqueueManyAsync(IReadOnlyList<NewJob> jobs, CancellationToken cancellationToken = default);

    Task<Job?> GetAsync(Guid id, Guid? tenantId, CancellationToken cancellationToken = default);

    Task<(IReadOnlyList<Job> Items, long? Next)> ListAsync(Guid tenantId, string? status, long? before, int limit, CancellationToken cancellationToken = default);

    /// <summary>Leases due jobs, waiting up to <paramref name="wait"/> for some when none are due.</summary>
    Task<IReadOnlyList<LeasedJob>> LeaseAsync(LeaseRequest request, TimeSpan wait, CancellationToken cancellationToken = default);

    Task<(JobOutcome Outcome, Job? Job)> AckAsync(Guid id, string leaseId, Guid? tenantId, CancellationToken cancellationToken = default);

    /// <summary>Acks many leased jobs in one transaction; each answer as <see cref="AckAsync"/> would give it, with the job's status.</summary>
    Task<IReadOnlyList<(Guid Id, JobOutcome Outcome, string? Status)>> AckManyAsync(IReadOnlyList<(Guid Id, string LeaseId)> items, Guid? tenantId, CancellationToken cancellationToken = default);

    Task<(JobOutcome Outcome, Job? Job)> NackAsync(Guid id, string leaseId, Guid? tenantId, string? error, TimeSpan? retryAfter, CancellationToken cancellationToken = default);

    /// <summary>Puts jobs whose lease lapsed back in their queue (or in the dead-letter queue after their last attempt).</summary>
    Task<int> ReclaimAsync(CancellationToken cancellationToken = default);

    Task<IReadOnlyList<JobQueueFigures>> FiguresAsync(Guid? tenantId, CancellationToken cancellationToken = default);
}

internal sealed partial class JobQueues(
    JobBackend backend,
    JobSignal signal,
    IJobLimits limits,
    IOptions<JobsOptions> options,
    TimeProvider time,
    ILogger<JobQueues> logger,
    BuiltInUsageBuffer? usage = null,
    JobMetrics? metrics = null) : IJobQueues
{
    private const int ReclaimBatch = 500;
    private readonly FairShare _fair = new();
    private long _lastReclaim = long.MinValue / 2;

    public string Engine => backend.Engine;

    private long Now => time.GetUtcNow().ToUnixTimeMilliseconds();

    public Task ProvisionAsync(Guid tenantId, CancellationToken cancellationToken = default) =>
        backend.WriteAsync((c, tx) => JobStore.ProvisionAsync(c, tx, tenantId, Now), cancellationToken);

    public async Task<IReadOnlyList<Job>> OpenJobsAsync(Guid tenantId, CancellationToken cancellationToken = default) =>
        await backend.ReadAsync(c => JobStore.OpenJobsAsync(c, null, tenantId), cancellationToken);

    public async Task DeleteAsync(Guid tenantId, CancellationToken cancellationToken = default)
    {
        await backend.WriteAsync(async (c, tx) => { await JobStore.DeleteAsync(c, tx, tenantId); return true; }, cancellationToken);
        _fair.Forget(tenantId);
    }

    public async Task<EnqueueResult> EnqueueAsync(NewJob job, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(job);
        return (await EnqueueManyAsync([job], cancellationToken))[0];
    }

    public async Task<IReadOnlyList<EnqueueResult>> EnqueueManyAsync(IReadOnlyList<NewJob> jobs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        if (jobs.Count == 0)
        {
            return [];
        }

        var limit = new Dictionary<Guid, JobLimits>();
        foreach (var tenant in jobs.Select(j => j.TenantId).Distinct())
        {
            limit[tenant] = await limits.ForAsync(tenant, cancellationToken);
        }

        var now = Now;
        var at = time.GetUtcNow();
        var stored = jobs.Select(job => new Job
        {
            Id = Guid.CreateVersion7(at),
            TenantId = job.TenantId,
            Type = job.Type,
            Payload = job.Payload,
            Status = JobStatus.Queued,
            RunAt = Math.Max(job.RunAt, now),
            Attempts = 0,
            MaxAttempts = options.Value.MaxAttempts,
            CreatedAt = now,
        }).ToArray();
        var results = await backend.WriteAsync(async (c, tx) =>
        {
            var answers = new EnqueueResult?[jobs.Count];
            var fresh = new List<int>(jobs.Count);
            for (var i = 0; i < jobs.Count; i++)
            {
                if (jobs[i].IdempotencyKey is { } key && await JobStore.FindByKeyAsync(c, tx, jobs[i].TenantId, key) is { } found)
                {
                    answers[i] = found.Hash == jobs[i].RequestHash ? new EnqueueResult(found.Job, false) : throw new IdempotencyMismatchException();
                }
                else
                {
                    fresh.Add(i);
                }
            }

            var inserted = fresh.Count == 0 ? [] : await JobStore.InsertManyAsync(c, tx, [.. fresh.Select(i => (stored[i], jobs[i].IdempotencyKey, jobs[i].RequestHash))]);
            foreach (var i in fresh)
            {
                if (inserted.Contains(stored[i].Id))
                {
                    answers[i] = new EnqueueResult(stored[i], true);
                    continue;
                }

                // Another enqueue with the key committed meanwhile (PostgreSQL waited for it), or an earlier item of this batch had it: its job is the answer.
                var other = await JobStore.FindByKeyAsync(c, tx, jobs[i].TenantId, jobs[i].IdempotencyKey!);
                answers[i] = other is { } o && o.Hash == jobs[i].RequestHash ? new EnqueueResult(o.Job, false) : throw new IdempotencyMismatchException();
            }

            // Queue rows in tenant order, as every transaction takes them, so two never wait on each other.
            foreach (var group in fresh.Where(i => inserted.Contains(stored[i].Id)).GroupBy(i => jobs[i].TenantId).OrderBy(g => g.Key))
            {
                var max = limit[group.Key].MaxDepth;
                if (!await JobStore.TakeDepthAsync(c, tx, group.Key, group.Count(), max))
                {
                    // Throwing rolls the inserts back: a batch goes in whole or not at all.
                    throw await JobStore.ExistsAsync(c, tx, group.Key) ? new JobQueueFullException(max) : new JobQueueMissingException(group.Key);
                }
            }

            if (inserted.Count > 0)
            {
                await backend.NotifyAsync(c, tx);
            }

            return answers.Select(a => a!).ToArray();
        }, cancellationToken);
        foreach (var result in results.Where(r => r.Created))
        {
            metrics?.Enqueued(result.Job.TenantId, result.Job.Type);
        }

        if (results.Any(r => r.Created))
        {
            signal.Pulse();
        }

        return results;
    }

    public Task<Job?> GetAsync(Guid id, Guid? tenantId, CancellationToken cancellationToken = default) =>
        backend.ReadAsync(c => JobStore.GetAsync(c, null, id, tenantId), cancellationToken);

    public async Task<(IReadOnlyList<Job> Items, long? Next)> ListAsync(Guid tenantId, string? status, long? before, int limit, CancellationToken cancellationToken = default)
    {
        var rows = await backend.ReadAsync(c => JobStore.ListAsync(c, tenantId, status, before, limit + 1), cancellationToken);
        var items = rows.Take(limit).ToList();
        return ([.. items.Select(r => r.Job)], rows.Count > limit ? items[^1].Seq : null);
    }

    public async Task<IReadOnlyList<LeasedJob>> LeaseAsync(LeaseRequest request, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var deadline = time.GetUtcNow() + wait;
        while (true)
        {
            // Take the signal before looking, so an enqueue between the look and the wait is not missed.
            var next = signal.Next;
            var leased = await LeaseOnceAsync(request, cancellationToken);
            var left = deadline - time.GetUtcNow();
            if (leased.Count > 0 || left <= TimeSpan.Zero)
            {
                return leased;
            }

            // A job due later, or a lease lapsing, wakes no one: look again at least every second.
            var tick = left < TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1);
            try
            {
                await next.WaitAsync(tick, time, cancellationToken);
            }
            catch (TimeoutException)
            {
            }
        }
    }

    private async Task<IReadOnlyList<LeasedJob>> LeaseOnceAsync(LeaseRequest request, CancellationToken cancellationToken)
    {
        var leaseId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var refunds = new List<(Guid Tenant, int Jobs, int Weight)>();
        // Lapsed leases go back in a transaction of their own (at most once a second here; the
        // maintenance loop does it too): each transaction then takes queue rows in tenant order only.
        var last = Interlocked.Read(ref _lastReclaim);
        if (Now - last >= 1000 && Interlocked.CompareExchange(ref _lastReclaim, Now, last) == last)
        {
            await ReclaimAsync(cancellationToken);
        }

        var leased = await backend.WriteAsync(async (c, tx) =>
        {
            refunds.Clear();
            var now = Now;
            var ready = await JobStore.ReadyTenantsAsync(c, tx, now, request.TenantId, request.Types);
            if (ready.Count == 0)
            {
                return [];
            }

            var candidates = new List<(Guid TenantId, int Weight, int Room)>();
            var weights = new Dictionary<Guid, JobLimits>();
            foreach (var (tenant, leasedNow) in ready)
            {
                var limit = await limits.ForAsync(tenant, cancellationToken);
                weights[tenant] = limit;
                var room = limit.Concurrency - leasedNow;
                if (room > 0)
                {
                    candidates.Add((tenant, limit.Weight, room));
                }
            }

            var shares = _fair.Share(candidates, request.Max);
            var expires = now + (long)request.Visibility.TotalMilliseconds;
            var jobs = new List<Job>();
            foreach (var (tenant, share) in shares.OrderBy(x => x.Key))
            {
                // On PostgreSQL other lessees may have leased this tenant's jobs since the count: count again as its only lessee.
                await backend.LeaseTenantAsync(c, tx, tenant);
                var room = weights[tenant].Concurrency - await JobStore.LeasedCountAsync(c, tx, tenant);
                var taken = room <= 0 ? [] : await JobStore.LeaseDueAsync(c, tx, tenant, now, request.Types, Math.Min(share, room), leaseId, expires, backend.SkipLocked, backend.IdIn);
                jobs.AddRange(taken);
                refunds.Add((tenant, share - taken.Count, weights[tenant].Weight));
            }

            return jobs;
        }, cancellationToken);
        foreach (var (tenant, jobs, weight) in refunds)
        {
            _fair.Refund(tenant, jobs, weight);
        }

        foreach (var job in leased)
        {
            metrics?.Started(job.TenantId, job.Type, (job.LeasedAt!.Value - job.RunAt) / 1000.0);
        }

        return [.. leased.Select(j => new LeasedJob(j, leaseId, j.LeaseExpiresAt!.Value))];
    }

    public Task<(JobOutcome Outcome, Job? Job)> AckAsync(Guid id, string leaseId, Guid? tenantId, CancellationToken cancellationToken = default) =>
        FinishAsync(id, leaseId, tenantId, success: true, null, null, cancellationToken);

    public Task<(JobOutcome Outcome, Job? Job)> NackAsync(Guid id, string leaseId, Guid? tenantId, string? error, TimeSpan? retryAfter, CancellationToken cancellationToken = default) =>
        FinishAsync(id, leaseId, tenantId, success: false, error, retryAfter, cancellationToken);

    public async Task<IReadOnlyList<(Guid Id, JobOutcome Outcome, string? Status)>> AckManyAsync(IReadOnlyList<(Guid Id, string LeaseId)> items, Guid? tenantId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0)
        {
            return [];
        }

        var (finished, others) = await backend.WriteAsync(async (c, tx) =>
        {
            var now = Now;
            var done = await JobStore.AckManyAsync(c, tx, items, tenantId, now);
            // Queue rows in tenant order, as every transaction takes them, so two never wait on each other.
            foreach (var group in done.GroupBy(d => d.TenantId).OrderBy(g => g.Key))
            {
                await JobStore.CountAsync(c, tx, group.Key, group.Count(), group.Count(), 0, 0);
            }

            var acked = done.Select(d => d.Id).ToHashSet();
            var rest = items.Where(i => !acked.Contains(i.Id)).Select(i => i.Id).Distinct().ToList();
            var found = rest.Count == 0 ? [] : await JobStore.GetManyAsync(c, tx, rest, tenantId);
            return (done.Select(d => (d.Id, d.TenantId, d.Type, d.Attempts, Seconds: d.LeasedAt is { } at ? now - at : (long?)null)).ToList(), found.ToDictionary(j => j.Id));
        }, cancellationToken);
        var byId = finished.ToDictionary(f => f.Id);
        var answers = new List<(Guid, JobOutcome, string?)>(items.Count);
        foreach (var (id, leaseId) in items)
        {
            if (byId.TryGetValue(id, out var f))
            {
                if (f.Seconds is { } ms)
                {
                    Meter(id, f.TenantId, f.Type, f.Attempts, ms);
                    metrics?.Finished(f.TenantId, f.Type, JobStatus.Succeeded, ms / 1000.0);
                }

                answers.Add((id, JobOutcome.Done, JobStatus.Succeeded));
            }
            else if (others.TryGetValue(id, out var other))
            {
                // The same ack again was taken; anything else is a lease that is no longer this one.
                answers.Add((id, other.LeaseId == leaseId && other.Status == JobStatus.Succeeded ? JobOutcome.Done : JobOutcome.LeaseLost, other.Status));
            }
            else
            {
                answers.Add((id, JobOutcome.NotFound, null));
            }
        }

        return answers;
    }

    private async Task<(JobOutcome Outcome, Job? Job)> FinishAsync(Guid id, string leaseId, Guid? tenantId, bool success, string? error, TimeSpan? retryAfter, CancellationToken cancellationToken)
    {
        var o = options.Value;
        var (outcome, job, seconds) = await backend.WriteAsync<(JobOutcome, Job?, long?)>(async (c, tx) =>
        {
            var now = Now;
            var job = await JobStore.GetAsync(c, tx, id, tenantId);
            if (job is null)
            {
                return (JobOutcome.NotFound, null, null);
            }

            if (job.LeaseId != leaseId)
            {
                return (JobOutcome.LeaseLost, job, null);
            }

            if (job.Status != JobStatus.Leased)
            {
                // The same ack (or nack) again: it was taken; a nack after an ack (or the reverse) is not.
                var same = success ? job.Status == JobStatus.Succeeded : job.Status is JobStatus.Queued or JobStatus.Dead;
                return (same ? JobOutcome.Done : JobOutcome.LeaseLost, job, null);
            }

            string status;
            long runAt = job.RunAt;
            if (success)
            {
                status = JobStatus.Succeeded;
            }
            else if (job.Attempts >= job.MaxAttempts)
            {
                status = JobStatus.Dead;
            }
            else
            {
                status = JobStatus.Queued;
                var backoff = JobRules.Backoff(job.Attempts, o.Backoff, o.MaxBackoff);
                runAt = now + (long)(retryAfter is { } after && after > backoff ? after : backoff).TotalMilliseconds;
            }

            if (!await JobStore.FinishAsync(c, tx, id, leaseId, status, now, runAt, success ? null : Truncate(error)))
            {
                return (JobOutcome.LeaseLost, job, null);
            }

            var left = status == JobStatus.Queued ? 0 : 1;
            await JobStore.CountAsync(c, tx, job.TenantId, left, success ? 1 : 0, success ? 0 : 1, status == JobStatus.Dead ? 1 : 0);
            if (status == JobStatus.Queued)
            {
                await backend.NotifyAsync(c, tx);
            }

            return (JobOutcome.Done, await JobStore.GetAsync(c, tx, id, null), job.LeasedAt is { } at ? now - at : null);
        }, cancellationToken);
        if (outcome == JobOutcome.Done && job is not null && seconds is { } ms)
        {
            Meter(job, ms);
            metrics?.Finished(job.TenantId, job.Type, job.Status, ms / 1000.0);
            if (job.Status == JobStatus.Dead)
            {
                Log.DeadLettered(logger, job.TenantId, job.Id, job.Type, job.Attempts);
            }
        }

        return (outcome, job);
    }

    public async Task<int> ReclaimAsync(CancellationToken cancellationToken = default)
    {
        var reclaimed = new List<(Guid Tenant, bool Dead, long? Seconds)>();
        await backend.WriteAsync(async (c, tx) => { reclaimed.Clear(); await ReclaimInAsync(c, tx, Now, reclaimed); return true; }, cancellationToken);
        AfterReclaim(reclaimed);
        return reclaimed.Count;
    }

    private async Task ReclaimInAsync(System.Data.Common.DbConnection c, System.Data.Common.DbTransaction tx, long now, List<(Guid Tenant, bool Dead, long? Seconds)> reclaimed)
    {
        var o = options.Value;
        foreach (var (id, tenant, attempts, max, leasedAt) in await JobStore.LapsedAsync(c, tx, now, ReclaimBatch, backend.SkipLocked))
        {
            var dead = attempts >= max;
            var runAt = now + (long)JobRules.Backoff(attempts, o.Backoff, o.MaxBackoff).TotalMilliseconds;
            var lease = await c.ScalarAsync("SELECT lease_id FROM jobs WHERE id = @id", tx, ("@id", id)) as string;
            if (lease is not null && await JobStore.FinishAsync(c, tx, id, lease, dead ? JobStatus.Dead : JobStatus.Queued, now, runAt, "The lease's visibility timeout passed before an ack."))
            {
                reclaimed.Add((tenant, dead, leasedAt is { } at ? now - at : null));
            }
        }

        // Queue rows in tenant order, as every transaction takes them, so two never wait on each other.
        foreach (var counts in reclaimed.GroupBy(r => r.Tenant).OrderBy(g => g.Key))
        {
            var dead = counts.Count(r => r.Dead);
            await JobStore.CountAsync(c, tx, counts.Key, dead, 0, counts.Count(), dead);
        }

        if (reclaimed.Count > 0)
        {
            await backend.NotifyAsync(c, tx);
        }
    }

    private void AfterReclaim(List<(Guid Tenant, bool Dead, long? Seconds)> reclaimed)
    {
        foreach (var (tenant, dead, _) in reclaimed)
        {
            Log.LeaseLapsed(logger, tenant, dead);
        }

        if (reclaimed.Count > 0)
        {
            signal.Pulse();
        }
    }

    public async Task<IReadOnlyList<JobQueueFigures>> FiguresAsync(Guid? tenantId, CancellationToken cancellationToken = default)
    {
        var now = Now;
        var rows = await backend.ReadAsync(c => JobStore.FiguresAsync(c, tenantId, now), cancellationToken);
        return [.. rows.Select(r => new JobQueueFigures(r.TenantId, r.Depth, r.Ready, r.Leased, r.Dead, r.Succeeded, r.Failed, r.OldestDue is { } due ? (now - due) / 1000.0 : null))];
    }

    /// <summary>Metering: the seconds a run held its lease, as <c>job_seconds</c> (one event per run, so a replay counts once).</summary>
    private void Meter(Job job, long milliseconds) => Meter(job.Id, job.TenantId, job.Type, job.Attempts, milliseconds);

    private void Meter(Guid id, Guid tenantId, string type, int attempts, long milliseconds) => usage?.Add(new UsageEvent(
        "tenantry/jobs", $"job_seconds/{id:N}/{attempts}", tenantId, "job_seconds", time.GetUtcNow(),
        new JsonObject { ["seconds"] = Math.Round(milliseconds / 1000.0, 3), ["type"] = type }.ToJsonString()));

    private static string? Truncate(string? error) => error is { Length: > 2000 } e ? e[..2000] : error;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Job {JobId} ({Type}) of tenant {TenantId} failed its last attempt ({Attempts}) and went to the dead-letter queue.")]
        public static partial void DeadLettered(ILogger logger, Guid tenantId, Guid jobId, string type, int attempts);

        [LoggerMessage(2, LogLevel.Information, "A job lease of tenant {TenantId} lapsed before an ack; dead-lettered: {Dead}.")]
        public static partial void LeaseLapsed(ILogger logger, Guid tenantId, bool dead);
    }
}
