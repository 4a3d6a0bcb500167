using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.AppMigrations;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.Migrations;

/// <summary>
/// Runs fleet migrations in the background, a batch of tenants at a time: the pool first, then the
/// tenants in order, each batch's results committed before the next starts. A migration cut short by
/// a crash resumes with its pending targets; what a batch had applied before the crash is found in
/// each target's ledgers, so running it again applies nothing twice. A host takes a migration with a
/// lease fenced like an operation's (<c>Tenantry:Operations:Lease</c>): renewed while it runs, and
/// checked by every commit, so a host that lost it cannot record anything.
/// </summary>
internal sealed partial class FleetMigrationWorker(
    IControlPlaneDatabase db,
    ITenantRegistry registry,
    ITenantDatabaseProvider databases,
    CurrentReleases releases,
    OperationNode node,
    IOptions<TenantryOptions> options,
    TimeProvider time,
    ILogger<FleetMigrationWorker> logger) : BackgroundService
{
    private const string SystemActor = "system:migrations";
    private readonly Channel<Guid> _queue = Channel.CreateUnbounded<Guid>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<Guid, Task> _running = new();

    public void Enqueue(Guid id) => _queue.Writer.TryWrite(id);

    private int Parallelism => options.Value.Postgres.MigrationParallelism;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A SQLite data dir is locked to this process: every lease in it is from a dead one. On a shared
        // store this node's leases are from its previous life.
        await db.WriteAsync((c, tx) => FleetMigrationStore.ReleaseOwnedAsync(c, tx, db.Engine == "sqlite" ? null : node.Name), stoppingToken);
        foreach (var id in await db.ReadAsync(FleetMigrationStore.UnfinishedAsync, stoppingToken))
        {
            Enqueue(id);
        }

        var poller = PollAsync(stoppingToken);
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
        }

        await Task.WhenAll(_running.Values.Append(poller));
    }

    private async Task PollAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.Operations.PollInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    foreach (var id in await db.ReadAsync(FleetMigrationStore.UnfinishedAsync, stoppingToken))
                    {
                        if (!_running.ContainsKey(id))
                        {
                            Enqueue(id);
                        }
                    }
                }
#pragma warning disable CA1031 // A failed poll must not end polling: a migration another host left would wait for a restart.
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
        }
        catch (LeaseLostException)
        {
            Log.LeaseLost(logger, id);
        }
#pragma warning disable CA1031 // One broken migration must not stop the worker; the poller tries it again.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.Failed(logger, id, ex);
        }
    }

    private async Task RunAsync(Guid id, CancellationToken stoppingToken)
    {
        var settings = options.Value.Operations;
        var now = time.GetUtcNow();
        if (await db.WriteAsync((c, tx) => FleetMigrationStore.AcquireAsync(c, tx, id, node.Name, now, now + settings.Lease), stoppingToken) is not { } lease)
        {
            return; // Finished, or another host holds it; the poller looks again once its lease ends.
        }

        if (!await LeaseRenewal.RunAsync(
            ct => db.WriteAsync((c, tx) => FleetMigrationStore.FenceAsync(c, tx, lease, time.GetUtcNow() + settings.Lease), ct),
            ct => MigrateAsync(lease, ct),
            settings.LeaseRenewal, time, ex => Log.RenewFailed(logger, lease.Id, ex.Message), stoppingToken))
        {
            Log.LeaseLost(logger, id);
        }
    }

    private async Task MigrateAsync(FleetMigrationLease lease, CancellationToken ct)
    {
        var pending = await db.ReadAsync(c => FleetMigrationStore.TargetsAsync(c, null, lease.Id, FleetMigrationStatus.Pending), ct);
        Log.Running(logger, lease.Id, pending.Count);
        if (pending.FirstOrDefault(t => t.TenantId is null) is { } pool)
        {
            // The pool alone: a report of no tenants migrates the shared pool database.
            var report = await databases.MigrateAsync([], ct);
            var poolResult = report.Targets.FirstOrDefault(t => t.Isolation == IsolationModel.Pool);
            var result = new JsonObject
            {
                ["schema"] = poolResult is null ? null : Schema(poolResult),
                ["apps"] = new JsonArray(),
            };
            await RecordAsync(lease, [(pool, poolResult is null || poolResult.Succeeded ? FleetMigrationStatus.Succeeded : FleetMigrationStatus.Failed, poolResult?.Error, result)], ct);
        }

        var batchSize = Math.Max(1, Parallelism * 4);
        foreach (var batch in pending.Where(t => t.TenantId is not null).Chunk(batchSize))
        {
            ct.ThrowIfCancellationRequested();
            var tenants = await db.ReadAsync(
                async c =>
                {
                    var found = new Dictionary<Guid, TenantRef>();
                    foreach (var target in batch)
                    {
                        if (await registry.GetAsync(c, null, target.TenantId!.Value) is { Status: not TenantStatus.Offboarded } t)
                        {
                            found[t.Id] = new TenantRef(t.Id, t.Slug, t.Name, t.Tier, t.Isolation, t.AdminEmail);
                        }
                    }

                    return found;
                },
                ct);
            var refs = tenants.Values.ToList();
            var schema = refs.Count == 0 ? null : await databases.MigrateAsync(refs, ct);
            var apps = refs.Count == 0 ? [] : await releases.ApplyToFleetAsync(refs, Parallelism, ct);
            var outcomes = new List<(FleetMigrationTarget, string, string?, JsonObject?)>();
            foreach (var target in batch)
            {
                if (!tenants.TryGetValue(target.TenantId!.Value, out var tenant))
                {
                    outcomes.Add((target, FleetMigrationStatus.Skipped, "The tenant was offboarded before its turn.", null));
                    continue;
                }

                var own = tenant.Isolation == IsolationModel.Pool ? null : schema?.Targets.FirstOrDefault(r => r.Isolation != IsolationModel.Pool && r.Target == tenant.Slug);
                var appResults = apps.SelectMany(a => a.Results.Where(r => r.TenantId == tenant.Id).Select(r => (a.Release, Result: r))).ToList();
                var error = own is { Succeeded: false } ? $"schema: {own.Error}"
                    : appResults.FirstOrDefault(a => !a.Result.Succeeded) is { Result: not null } failed && failed.Release is not null
                        ? $"{failed.Release.App} {failed.Release.Version}: {failed.Result.Error}"
                        : null;
                var result = new JsonObject
                {
                    ["target"] = own?.Target ?? (tenant.Isolation == IsolationModel.Pool ? "pool" : tenant.Slug),
                    ["isolation"] = tenant.Isolation.ToWire(),
                    ["schema"] = own is null ? null : Schema(own),
                    ["apps"] = new JsonArray([.. appResults.Select(a => (JsonNode)new JsonObject
                    {
                        ["app"] = a.Release.App,
                        ["release"] = a.Release.Version,
                        ["target"] = a.Result.Target,
                        ["outcome"] = Outcome(a.Result.Outcome),
                        ["applied"] = new JsonArray([.. a.Result.Applied.Select(x => (JsonNode)JsonValue.Create(x))]),
                        ["alreadyApplied"] = a.Result.AlreadyApplied,
                        ["failedMigration"] = a.Result.FailedMigration,
                        ["error"] = a.Result.Error,
                    })]),
                };
                outcomes.Add((target, error is null ? FleetMigrationStatus.Succeeded : FleetMigrationStatus.Failed, error, result));
            }

            await RecordAsync(lease, outcomes, ct);
        }

        await FinishAsync(lease, ct);
    }

    private static JsonObject Schema(Tenantry.Data.Migrations.MigrationTargetResult r) => new()
    {
        ["applied"] = new JsonArray([.. r.Applied.Select(v => (JsonNode)JsonValue.Create(v))]),
        ["alreadyApplied"] = r.AlreadyApplied,
        ["failedVersion"] = r.FailedVersion,
        ["error"] = r.Error,
        ["durationMs"] = r.Duration.TotalMilliseconds,
    };

    private Task RecordAsync(FleetMigrationLease lease, IReadOnlyList<(FleetMigrationTarget Target, string Status, string? Error, JsonObject? Result)> outcomes, CancellationToken ct) =>
        db.WriteAsync(
            async (c, tx) =>
            {
                var now = time.GetUtcNow();
                if (!await FleetMigrationStore.FenceAsync(c, tx, lease, now + options.Value.Operations.Lease))
                {
                    throw new LeaseLostException();
                }

                foreach (var (target, status, error, result) in outcomes)
                {
                    await FleetMigrationStore.SetTargetAsync(c, tx, lease.Id, target.Ordinal, status, error, result?.ToJsonString(), now);
                }

                await FleetMigrationStore.CountAsync(c, tx, lease.Id);
            },
            ct);

    private async Task FinishAsync(FleetMigrationLease lease, CancellationToken ct)
    {
        var migration = await db.ReadAsync(c => FleetMigrationStore.FindAsync(c, null, lease.Id), ct);
        var failed = await db.ReadAsync(c => FleetMigrationStore.TargetsAsync(c, null, lease.Id, FleetMigrationStatus.Failed), ct);
        var status = failed.Count == 0 ? FleetMigrationStatus.Succeeded : FleetMigrationStatus.Failed;
        var error = failed.Count == 0 ? null : $"{failed.Count} of {migration!.Total} targets failed; the first: {failed[0].Slug ?? "pool"}: {failed[0].Error}";
        await db.WriteAsync(
            async (c, tx) =>
            {
                var now = time.GetUtcNow();
                if (!await FleetMigrationStore.FinishAsync(c, tx, lease, status, error, now))
                {
                    throw new LeaseLostException();
                }

                await AuditLog.AppendAsync(c, tx, AuditLog.By(SystemActor, null, "migrations.run", status, new JsonObject
                {
                    ["migrationId"] = lease.Id.ToString(),
                    ["schema"] = migration!.Schema,
                    ["targets"] = migration.Total,
                    ["failed"] = new JsonArray([.. failed.Select(f => (JsonNode)JsonValue.Create(f.TenantId?.ToString() ?? "pool"))]),
                }, now));
            },
            CancellationToken.None);
        Log.Finished(logger, lease.Id, status, failed.Count);
    }

    internal static string Outcome(ReleaseMigrationOutcome outcome) => outcome switch
    {
        ReleaseMigrationOutcome.Applied => "applied",
        ReleaseMigrationOutcome.UpToDate => "up-to-date",
        ReleaseMigrationOutcome.NoDatabase => "no-database",
        _ => "failed",
    };

    private sealed class LeaseLostException : Exception;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Fleet migration {MigrationId} running: {Pending} targets left")]
        public static partial void Running(ILogger logger, Guid migrationId, int pending);

        [LoggerMessage(2, LogLevel.Information, "Fleet migration {MigrationId} {Status}: {Failed} targets failed")]
        public static partial void Finished(ILogger logger, Guid migrationId, string status, int failed);

        [LoggerMessage(3, LogLevel.Warning, "Fleet migration {MigrationId}: another host took it over; this one stops running it")]
        public static partial void LeaseLost(ILogger logger, Guid migrationId);

        [LoggerMessage(4, LogLevel.Warning, "Fleet migration {MigrationId}: the lease could not be renewed: {Error}")]
        public static partial void RenewFailed(ILogger logger, Guid migrationId, string error);

        [LoggerMessage(5, LogLevel.Error, "Fleet migration {MigrationId} could not run; it is tried again")]
        public static partial void Failed(ILogger logger, Guid migrationId, Exception exception);

        [LoggerMessage(6, LogLevel.Error, "Polling for unfinished fleet migrations failed")]
        public static partial void PollFailed(ILogger logger, Exception exception);
    }
}
