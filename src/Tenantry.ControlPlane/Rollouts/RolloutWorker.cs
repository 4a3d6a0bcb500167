using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.AppMigrations;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Health;
using Tenantry.ControlPlane.Instances;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Tenants;

namespace Tenantry.ControlPlane.Rollouts;

/// <summary>
/// Runs rollouts in the background, one unit at a time (the migrations, one instance swap, one
/// wave's bake), recording each before it moves on, so a rollout cut short by a crash resumes where
/// it was: every unit is idempotent (migrations keep a ledger; a swap to the release an instance
/// runs already does nothing). A host takes a rollout with a lease fenced like an operation's, and
/// on taking it repairs what an interrupted swap left (<see cref="IAppInstances.ReconcileAsync"/>).
/// </summary>
internal sealed partial class RolloutWorker(
    IControlPlaneDatabase db,
    IAppRegistry apps,
    IAppInstances instances,
    IReleaseMigrator migrator,
    ITenantHealth health,
    ITenantLifecycle tenants,
    OperationNode node,
    IOptions<TenantryOptions> options,
    TimeProvider time,
    ILogger<RolloutWorker> logger) : BackgroundService
{
    private const string SystemActor = "system:rollouts";

    /// <summary>Dedicated instances swapped at once within a wave.</summary>
    private const int SwapParallelism = 3;

    /// <summary>Databases migrated at once.</summary>
    private const int MigrationParallelism = 4;

    /// <summary>How long after a bake the gates wait for the gateways' last figures (they flush every 2 s by default).</summary>
    private static readonly TimeSpan GateSettle = TimeSpan.FromSeconds(3);

    private static readonly TimeSpan GateCheckInterval = TimeSpan.FromSeconds(2);

    private readonly Channel<Guid> _queue = Channel.CreateUnbounded<Guid>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<Guid, Task> _running = new();

    private enum Outcome
    {
        Done,
        Interrupted,
        Failed,
    }

    public void Enqueue(Guid id) => _queue.Writer.TryWrite(id);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The data dir of a SQLite store is locked to this process: every lease in it is from a dead one. On a shared
        // store this node's leases are from its previous life.
        await db.WriteAsync((c, tx) => RolloutStore.ReleaseOwnedAsync(c, tx, db.Engine == "sqlite" ? null : node.Name), stoppingToken);
        foreach (var id in await db.ReadAsync(RolloutStore.RunningAsync, stoppingToken))
        {
            Enqueue(id);
        }

        var poller = PollAsync(options.Value.Operations.PollInterval, stoppingToken);
        try
        {
            await foreach (var id in _queue.Reader.ReadAllAsync(stoppingToken))
            {
                if (_running.ContainsKey(id))
                {
                    continue;
                }

                var run = RunGuardedAsync(id, stoppingToken);
                _running[id] = run;
                _ = run.ContinueWith(_ => _running.TryRemove(id, out Task? _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: what a rollout leaves is resumed at next start.
        }

        await Task.WhenAll(_running.Values.Append(poller));
    }

    private async Task PollAsync(TimeSpan interval, CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    foreach (var id in await db.ReadAsync(RolloutStore.RunningAsync, stoppingToken))
                    {
                        if (!_running.ContainsKey(id))
                        {
                            Enqueue(id);
                        }
                    }
                }
#pragma warning disable CA1031 // A failed poll must not end polling: rollouts another host left would wait for a restart.
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
#pragma warning restore CA1031
                {
                    Log.PollFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task RunGuardedAsync(Guid id, CancellationToken stoppingToken)
    {
        await Task.Yield();
        try
        {
            await RunAsync(id, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            Log.Interrupted(logger, id);
        }
#pragma warning disable CA1031 // One broken rollout must not stop the worker; the poller tries it again.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.WorkerError(logger, id, ex);
        }
    }

    private async Task RunAsync(Guid id, CancellationToken stoppingToken)
    {
        var settings = options.Value.Operations;
        var now = time.GetUtcNow();
        if (await db.WriteAsync((c, tx) => RolloutStore.AcquireAsync(c, tx, id, node.Name, now, now + settings.Lease), stoppingToken) is not { } lease)
        {
            return; // Finished, paused, or another host holds it.
        }

        if (!await LeaseRenewal.RunAsync(
            ct => db.WriteAsync((c, tx) => RolloutStore.RenewAsync(c, tx, lease, time.GetUtcNow() + settings.Lease), ct),
            ct => StepAsync(lease, ct),
            settings.LeaseRenewal, time, ex => Log.RenewFailed(logger, lease.RolloutId, ex.Message), stoppingToken))
        {
            Log.LeaseLost(logger, id);
        }
    }

    /// <summary>Runs the rollout unit by unit until it finishes, pauses, or the lease is lost.</summary>
    private async Task StepAsync(RolloutLease lease, CancellationToken ct)
    {
        var first = await db.ReadAsync(c => RolloutStore.FindAsync(c, null, lease.RolloutId), ct);
        if (first is null)
        {
            return;
        }

        var targets = await db.ReadAsync(c => RolloutStore.TargetsAsync(c, null, lease.RolloutId), ct);
        var removed = await instances.ReconcileAsync(first.App, Recorded(first, targets), ct);
        if (removed > 0)
        {
            await AuditAsync(lease, "rollout.reconcile", "succeeded", new JsonObject { ["removedInstances"] = removed }, ct);
        }

        // Bounded: each unit moves the phase or the wave on, or ends the loop.
        for (var units = 0; units < 10_000; units++)
        {
            var rollout = await db.ReadAsync(c => RolloutStore.FindAsync(c, null, lease.RolloutId), ct);
            if (rollout is null || rollout.Finished)
            {
                return;
            }

            if (rollout.Status == RolloutStatus.Paused)
            {
                await db.WriteAsync((c, tx) => RolloutStore.ReleaseAsync(c, tx, lease), CancellationToken.None);
                Log.Paused(logger, rollout.Id);
                return;
            }

            switch (rollout.Phase)
            {
                case RolloutPhase.Migrate:
                    if (await MigrateAsync(lease, rollout, ct) is { } migrationError)
                    {
                        await FinishAsync(lease, rollout, RolloutStatus.Failed, migrationError, ct);
                        return;
                    }

                    await AdvanceAsync(lease, rollout, RolloutPhase.Shared, 0, ct);
                    break;

                case RolloutPhase.Shared:
                case RolloutPhase.Waves:
                    var wave = rollout.Phase == RolloutPhase.Shared ? 0 : rollout.Wave;
                    var waves = await db.ReadAsync(c => RolloutStore.WavesAsync(c, null, rollout.Id), ct);
                    if (wave >= waves.Count)
                    {
                        await SucceedAsync(lease, rollout, ct);
                        return;
                    }

                    var (outcome, reason) = await RunWaveAsync(lease, rollout, wave, ct);
                    if (outcome == Outcome.Failed)
                    {
                        await db.WriteAsync((c, tx) => RolloutStore.FailAsync(c, tx, lease, reason!, time.GetUtcNow()), ct);
                        await AuditAsync(lease, "rollout.wave", "failed", new JsonObject { ["wave"] = wave, ["reason"] = reason }, ct);
                        Log.WaveFailed(logger, rollout.Id, wave, reason!);
                    }
                    else if (outcome == Outcome.Done)
                    {
                        await AdvanceAsync(lease, rollout, RolloutPhase.Waves, wave + 1, ct);
                    }

                    break;

                case RolloutPhase.Rollback:
                    await RollbackAsync(lease, rollout, ct);
                    return;

                default:
                    return;
            }
        }
    }

    /// <summary>What each owner should run by the record: the new release once its target was swapped, else the previous one.</summary>
    private static Dictionary<string, string> Recorded(Rollout rollout, IReadOnlyList<RolloutTarget> targets) =>
        targets.Where(t => t.Dedicated || t.TenantId is null).ToDictionary(
            t => IAppInstances.OwnerOf(t.TenantId, t.Slot),
            t => t.Status == RolloutStatus.Updated ? rollout.Version : rollout.PreviousRelease);

    /// <summary>The release's migrations to every tenant (the pool once); null, or why a tenant failed.</summary>
    private async Task<string?> MigrateAsync(RolloutLease lease, Rollout rollout, CancellationToken ct)
    {
        var release = await apps.GetReleaseAsync(rollout.App, rollout.Version, ct);
        if (release is null)
        {
            return $"Release {rollout.Version} of app '{rollout.App}' does not exist any more.";
        }

        var tenants = await db.ReadAsync(c => TenantStore.ListAsync(c, new TenantFilter(null, null, null, null, int.MaxValue)), ct);
        var refs = tenants
            .Where(t => t.Status is not (TenantStatus.Offboarded or TenantStatus.Offboarding))
            .Select(t => new TenantRef(t.Id, t.Slug, t.Name, t.Tier, t.Isolation, t.AdminEmail))
            .ToList();
        var results = await migrator.ApplyAsync(refs, release, MigrationParallelism, cancellationToken: ct);
        var failed = results.Where(r => !r.Succeeded).ToList();
        await AuditAsync(lease, "rollout.migrate", failed.Count == 0 ? "succeeded" : "failed", new JsonObject
        {
            ["tenants"] = results.Count,
            ["applied"] = results.Count(r => r.Outcome == ReleaseMigrationOutcome.Applied),
            ["failed"] = failed.Count,
        }, ct);
        if (failed.Count == 0)
        {
            return null;
        }

        var slugs = tenants.ToDictionary(t => t.Id, t => t.Slug);
        var firstFailure = failed[0];
        return string.Create(CultureInfo.InvariantCulture,
            $"Migrations failed for {failed.Count} tenant(s); first: '{slugs.GetValueOrDefault(firstFailure.TenantId, firstFailure.Target)}' migration {firstFailure.FailedMigration}: {firstFailure.Error}. Applied migrations stay (forward only).");
    }

    /// <summary>Swaps the wave's instances that are not on the release yet, then bakes and checks the gates.</summary>
    private async Task<(Outcome, string?)> RunWaveAsync(RolloutLease lease, Rollout rollout, int wave, CancellationToken ct)
    {
        var targets = (await db.ReadAsync(c => RolloutStore.TargetsAsync(c, null, rollout.Id), ct)).Where(t => t.Wave == wave).ToList();
        await FencedAsync(lease, (c, tx) => RolloutStore.SetWaveAsync(c, tx, rollout.Id, wave, RolloutStatus.Updating, null), ct);

        // Wave 0: the shared instances one by one (each slot serves while another swaps); then their tenants are on it.
        // Waves 1..N: the silo tenants' dedicated instances, a few at once.
        var swaps = targets.Where(t => t.Status != RolloutStatus.Updated && (t.Dedicated || t.TenantId is null)).ToList();
        string? failure = null;
        var interrupted = false;
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = wave == 0 ? 1 : SwapParallelism, CancellationToken = ct };
        await Parallel.ForEachAsync(swaps, parallel, async (target, token) =>
        {
            if (Volatile.Read(ref failure) is not null || Volatile.Read(ref interrupted))
            {
                return;
            }

            if (await StopRequestedAsync(rollout.Id, token))
            {
                Volatile.Write(ref interrupted, true);
                return;
            }

            if (await SwapAsync(lease, rollout, target, rollout.Version, token) is { } error)
            {
                Interlocked.CompareExchange(ref failure, error, null);
            }
        });
        if (failure is not null)
        {
            await FencedAsync(lease, (c, tx) => RolloutStore.SetWaveAsync(c, tx, rollout.Id, wave, RolloutStatus.Failed, null), ct);
            return (Outcome.Failed, failure);
        }

        if (interrupted)
        {
            return (Outcome.Interrupted, null);
        }

        if (wave == 0)
        {
            await FencedAsync(
                lease,
                async (c, tx) =>
                {
                    foreach (var t in targets.Where(t => t.TenantId is not null && !t.Dedicated))
                    {
                        await RolloutStore.SetTargetAsync(c, tx, rollout.Id, t.Ordinal, RolloutStatus.Updated, rollout.Version, null);
                    }
                },
                ct);
        }

        var gated = targets.Where(t => t.TenantId is not null).Select(t => t.TenantId!.Value).ToList();
        var (outcome, reason) = await BakeAsync(lease, rollout, wave, gated, ct);
        if (outcome == Outcome.Done)
        {
            await FencedAsync(lease, (c, tx) => RolloutStore.SetWaveAsync(c, tx, rollout.Id, wave, RolloutStatus.Succeeded, null), ct);
            await AuditAsync(lease, "rollout.wave", "succeeded", new JsonObject { ["wave"] = wave, ["instances"] = swaps.Count }, ct);
        }

        return (outcome, reason);
    }

    /// <summary>Moves one target's instance to <paramref name="release"/>; null, or why its new instance never got healthy.</summary>
    private async Task<string?> SwapAsync(RolloutLease lease, Rollout rollout, RolloutTarget target, string release, CancellationToken ct)
    {
        var forward = release == rollout.Version;
        await FencedAsync(lease, (c, tx) => RolloutStore.SetTargetAsync(c, tx, rollout.Id, target.Ordinal, RolloutStatus.Updating, target.Release, null), ct);
        var current = (await instances.ListAsync(ct)).FirstOrDefault(i =>
            i.App == rollout.App && i.Serving && (target.TenantId is { } tenant ? i.TenantId == tenant : i.TenantId is null && i.Slot == target.Slot));
        string? error = null;
        AppInstance? swapped = null;
        if (current is not null && current.Release != release)
        {
            try
            {
                swapped = await instances.SwapAsync(current, release, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                error = $"The instance of {Owner(target)} on release {release} never got healthy: {ex.Message}";
            }
        }

        // An owner without an instance (offboarded since the plan) has nothing to move.
        var status = error is not null ? RolloutStatus.Failed : forward ? RolloutStatus.Updated : RolloutStatus.RolledBack;
        var runs = error is null ? release : current?.Release ?? target.Release;
        await FencedAsync(
            lease,
            async (c, tx) =>
            {
                await RolloutStore.SetTargetAsync(c, tx, rollout.Id, target.Ordinal, status, runs, error);
                if (swapped is { TenantId: { } tenantId })
                {
                    await RecordComputeAsync(c, tx, tenantId, swapped);
                }
            },
            ct);
        await AuditAsync(lease, forward ? "rollout.swap" : "rollout.swap-back", error is null ? "succeeded" : "failed", new JsonObject
        {
            ["tenantId"] = target.TenantId?.ToString(),
            ["slot"] = target.TenantId is null ? target.Slot : null,
            ["release"] = release,
            ["error"] = error,
        }, ct, target.TenantId);
        return error;
    }

    /// <summary>
    /// The tenant's <c>resources.compute.apps.{app}</c> names the release and upstream its dedicated instance now runs,
    /// as <c>GET /v1/tenants/{id}</c> shows them; in the transaction that records the swap.
    /// </summary>
    private async Task RecordComputeAsync(System.Data.Common.DbConnection c, System.Data.Common.DbTransaction tx, Guid tenantId, AppInstance instance)
    {
        if (await tenants.GetAsync(c, tx, tenantId) is not { } tenant || tenant.Resources["compute"] is not JsonObject known)
        {
            return;
        }

        var compute = known.DeepClone().AsObject();
        if (compute["apps"] is not JsonObject apps)
        {
            apps = [];
            compute["apps"] = apps;
        }

        apps[instance.App] = new JsonObject { ["release"] = instance.Release, ["upstream"] = instance.Upstream.ToString() };
        await tenants.MergeResourcesAsync(c, tx, tenantId, new JsonObject { ["compute"] = compute }, time.GetUtcNow());
    }

    /// <summary>Waits the bake time, checking the gates on the wave's tenants' figures; stops early on a failed gate, a pause or an abort.</summary>
    private async Task<(Outcome, string?)> BakeAsync(RolloutLease lease, Rollout rollout, int wave, List<Guid> tenants, CancellationToken ct)
    {
        if (rollout.BakeSeconds == 0)
        {
            return (Outcome.Done, null);
        }

        await FencedAsync(lease, (c, tx) => RolloutStore.SetWaveAsync(c, tx, rollout.Id, wave, RolloutStatus.Baking, null), ct);
        var start = time.GetUtcNow();
        var end = start + TimeSpan.FromSeconds(rollout.BakeSeconds);
        var gated = tenants.Count > 0 && (rollout.MaxErrorRate is not null || rollout.MaxP99Ms is not null);

        // Bounded by the bake time (at most an hour) and the settle time.
        while (true)
        {
            var now = time.GetUtcNow();
            var last = now >= end + GateSettle;
            if (await StopRequestedAsync(rollout.Id, ct))
            {
                return (Outcome.Interrupted, null);
            }

            if (gated && (last || now - start >= GateSettle))
            {
                var figures = await GatesAsync(rollout, tenants, start, ct);
                await FencedAsync(lease, (c, tx) => RolloutStore.SetWaveAsync(c, tx, rollout.Id, wave, RolloutStatus.Baking, RolloutResponse.Serialize(figures)), ct);
                if (!figures.Passed)
                {
                    return (Outcome.Failed, $"Wave {wave.ToString(CultureInfo.InvariantCulture)} failed its gate: {figures.Reason}");
                }
            }

            if (last || (!gated && now >= end))
            {
                return (Outcome.Done, null);
            }

            await Task.Delay(GateCheckInterval, time, ct);
        }
    }

    private async Task<GateFigures> GatesAsync(Rollout rollout, List<Guid> tenants, DateTimeOffset from, CancellationToken ct)
    {
        var summary = await health.SummarizeAsync(tenants, from, time.GetUtcNow() + TimeSpan.FromSeconds(1), ct);
        var f = summary.Combined;
        string? reason = null;
        if (rollout.MaxErrorRate is { } maxRate && f.ErrorRate > maxRate)
        {
            reason = string.Create(CultureInfo.InvariantCulture, $"5xx share {f.ErrorRate:0.####} ({f.Status5xx} of {f.Requests} requests) is above {maxRate}.");
        }
        else if (rollout.MaxP99Ms is { } maxP99 && f.P99Ms is { } p99 && p99 > maxP99)
        {
            reason = string.Create(CultureInfo.InvariantCulture, $"p99 {p99:0.#} ms is above {maxP99} ms.");
        }

        return new GateFigures(f.Requests, f.Status5xx, f.ErrorRate, f.P99Ms, reason is null, reason);
    }

    /// <summary>Puts every target that moved back on the previous release (dedicated ones first, then the shared instances), and ends the rollout rolled back.</summary>
    private async Task RollbackAsync(RolloutLease lease, Rollout rollout, CancellationToken ct)
    {
        var targets = await db.ReadAsync(c => RolloutStore.TargetsAsync(c, null, rollout.Id), ct);
        var moved = targets
            .Where(t => t.Status is RolloutStatus.Updated or RolloutStatus.Updating or RolloutStatus.Failed && (t.Dedicated || t.TenantId is null))
            .OrderByDescending(t => t.Wave).ThenBy(t => t.Ordinal)
            .ToList();
        var failures = new List<string>();
        foreach (var group in moved.GroupBy(t => t.Wave))
        {
            await Parallel.ForEachAsync(group, new ParallelOptions { MaxDegreeOfParallelism = group.Key == 0 ? 1 : SwapParallelism, CancellationToken = ct }, async (target, token) =>
            {
                if (await SwapAsync(lease, rollout, target, rollout.PreviousRelease, token) is { } error)
                {
                    lock (failures)
                    {
                        failures.Add(error);
                    }
                }
            });
        }

        var waves = await db.ReadAsync(c => RolloutStore.WavesAsync(c, null, rollout.Id), ct);
        await FencedAsync(
            lease,
            async (c, tx) =>
            {
                foreach (var t in targets.Where(t => t.TenantId is not null && !t.Dedicated && t.Status != RolloutStatus.Pending))
                {
                    await RolloutStore.SetTargetAsync(c, tx, rollout.Id, t.Ordinal, RolloutStatus.RolledBack, rollout.PreviousRelease, null);
                }

                foreach (var w in waves.Where(w => w.Status is RolloutStatus.Updating or RolloutStatus.Baking or RolloutStatus.Succeeded))
                {
                    await RolloutStore.SetWaveAsync(c, tx, rollout.Id, w.Wave, RolloutStatus.RolledBack, null);
                }
            },
            ct);
        var error = failures.Count == 0 ? null : $"{rollout.Error} Rolling back failed for {failures.Count} instance(s): {failures[0]}";
        await FinishAsync(lease, rollout, RolloutStatus.RolledBack, error, ct);
    }

    private async Task SucceedAsync(RolloutLease lease, Rollout rollout, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await FencedAsync(
            lease,
            async (c, tx) =>
            {
                // New tenants start on the release from now on.
                await AppStore.SetCurrentReleaseAsync(c, tx, rollout.App, rollout.Version, now);
                if (!await RolloutStore.FinishAsync(c, tx, lease, RolloutStatus.Succeeded, null, now))
                {
                    throw new OperationCanceledException("The rollout's lease was lost.");
                }

                await AuditLog.AppendAsync(c, tx, AuditLog.By(SystemActor, null, "rollout.finish", RolloutStatus.Succeeded, Detail(rollout), now));
                await RolloutStore.OutboxAsync(c, tx, rollout.Id, "rollout.succeeded", RolloutResponse.EventPayload(rollout).ToJsonString(), now);
            },
            ct);
        Log.Finished(logger, rollout.Id, RolloutStatus.Succeeded);
    }

    private async Task FinishAsync(RolloutLease lease, Rollout rollout, string status, string? error, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await db.WriteAsync(
            async (c, tx) =>
            {
                if (!await RolloutStore.FinishAsync(c, tx, lease, status, error, now))
                {
                    throw new OperationCanceledException("The rollout's lease was lost.");
                }

                var finished = await RolloutStore.FindAsync(c, tx, rollout.Id);
                var detail = Detail(rollout);
                detail["error"] = finished?.Error;
                await AuditLog.AppendAsync(c, tx, AuditLog.By(SystemActor, null, "rollout.finish", status, detail, now));
                var payload = RolloutResponse.EventPayload(rollout);
                payload["error"] = finished?.Error;
                await RolloutStore.OutboxAsync(c, tx, rollout.Id, "rollout." + status, payload.ToJsonString(), now);
            },
            ct);
        Log.Finished(logger, rollout.Id, status);
    }

    private async Task AdvanceAsync(RolloutLease lease, Rollout rollout, string phase, int wave, CancellationToken ct)
    {
        // False when an abort moved the phase meanwhile (the loop reads it next) or the lease was lost (the writes after it are fenced).
        await db.WriteAsync((c, tx) => RolloutStore.AdvanceAsync(c, tx, lease, rollout.Phase, phase, wave, time.GetUtcNow()), ct);
    }

    /// <summary>True when the rollout was paused or aborted since it was read: the worker stops before the next instance.</summary>
    private async Task<bool> StopRequestedAsync(Guid id, CancellationToken ct)
    {
        var now = await db.ReadAsync(c => RolloutStore.FindAsync(c, null, id), ct);
        return now is null || now.Status != RolloutStatus.Running || now.Phase == RolloutPhase.Rollback;
    }

    /// <summary>Runs <paramref name="write"/> in a transaction that commits only while this host holds the lease.</summary>
    private Task FencedAsync(RolloutLease lease, Func<System.Data.Common.DbConnection, System.Data.Common.DbTransaction, Task> write, CancellationToken ct) =>
        db.WriteAsync(
            async (c, tx) =>
            {
                if (!await RolloutStore.RenewAsync(c, tx, lease, time.GetUtcNow() + options.Value.Operations.Lease))
                {
                    throw new OperationCanceledException("The rollout's lease was lost.");
                }

                await write(c, tx);
            },
            ct);

    private Task AuditAsync(RolloutLease lease, string action, string outcome, JsonObject detail, CancellationToken ct, Guid? tenantId = null)
    {
        detail["rolloutId"] = lease.RolloutId.ToString();
        return FencedAsync(lease, (c, tx) => AuditLog.AppendAsync(c, tx, AuditLog.By(SystemActor, tenantId, action, outcome, detail, time.GetUtcNow())), ct);
    }

    private static JsonObject Detail(Rollout r) => new() { ["rolloutId"] = r.Id.ToString(), ["app"] = r.App, ["version"] = r.Version };

    private static string Owner(RolloutTarget t) => t.Slug is { } slug ? $"tenant '{slug}'" : $"shared instance {t.Slot.ToString(CultureInfo.InvariantCulture)}";

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Rollout {Id} finished: {Status}")]
        public static partial void Finished(ILogger logger, Guid id, string status);

        [LoggerMessage(2, LogLevel.Warning, "Rollout {Id}: wave {Wave} failed, rolling back: {Reason}")]
        public static partial void WaveFailed(ILogger logger, Guid id, int wave, string reason);

        [LoggerMessage(3, LogLevel.Information, "Rollout {Id} paused")]
        public static partial void Paused(ILogger logger, Guid id);

        [LoggerMessage(4, LogLevel.Warning, "Rollout {Id}: another host took it over")]
        public static partial void LeaseLost(ILogger logger, Guid id);

        [LoggerMessage(5, LogLevel.Warning, "Rollout {Id}: could not renew its lease: {Error}")]
        public static partial void RenewFailed(ILogger logger, Guid id, string error);

        [LoggerMessage(6, LogLevel.Information, "Rollout {Id} interrupted by the host's stop; it resumes at next start")]
        public static partial void Interrupted(ILogger logger, Guid id);

        [LoggerMessage(7, LogLevel.Error, "Rollout {Id} could not run; it is tried again")]
        public static partial void WorkerError(ILogger logger, Guid id, Exception exception);

        [LoggerMessage(8, LogLevel.Warning, "Polling for rollouts failed")]
        public static partial void PollFailed(ILogger logger, Exception exception);
    }
}
