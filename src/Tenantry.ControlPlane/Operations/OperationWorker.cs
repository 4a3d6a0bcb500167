using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Events;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Telemetry;

namespace Tenantry.ControlPlane.Operations;

/// <summary>Where new or retried operations are handed to the worker.</summary>
public interface IOperationQueue
{
    void Enqueue(Guid operationId);
}

/// <summary>
/// Runs operations in the background, step by step, recording each step before and after it
/// runs. On start it resumes every unfinished operation: a step found "running" was cut short by
/// a crash and runs again, which is safe because every step is idempotent.
/// </summary>
/// <remarks>
/// Replicas sharing a store take an operation with a lease (<see cref="OperationLease"/>): short, renewed
/// while its steps run, and fenced: every commit of a step checks the lease's token, so a replica that
/// paused past its lease cannot commit once another took the operation over. A restarting node frees the
/// leases it held before at once; a dead replica's leases end within <c>Tenantry:Operations:Lease</c>.
/// </remarks>
internal sealed partial class OperationWorker(
    IControlPlaneDatabase db,
    ITenantLifecycle lifecycle,
    StepExecutor steps,
    OperationSignals signals,
    IEventOutbox events,
    OperationNode node,
    IOptions<TenantryOptions> options,
    TimeProvider time,
    ILogger<OperationWorker> logger,
    TenantryMetrics? metrics = null) : BackgroundService, IOperationQueue
{
    private const string SystemActor = "system:operations";
    private readonly Channel<Guid> _queue = Channel.CreateUnbounded<Guid>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<Guid, Task> _running = new();

    public void Enqueue(Guid operationId) => _queue.Writer.TryWrite(operationId);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value.Operations;
        var pipeline = BuildRetryPipeline(settings);
        using var slots = new SemaphoreSlim(settings.MaxParallel);
        if (db.Engine == "sqlite")
        {
            // The data dir is locked to this process, so every lease left in it is from a dead one.
            await db.WriteAsync(OperationStore.ReleaseAllAsync, stoppingToken);
        }
        else
        {
            // A shared store: this node's leases are from its previous life (one host per node name), so they
            // are free now; other nodes' leases run out unless renewed.
            var reclaimed = await db.WriteAsync((c, tx) => OperationStore.ReleaseOwnedAsync(c, tx, node.Name), stoppingToken);
            if (reclaimed.Count > 0)
            {
                Log.Reclaimed(logger, reclaimed.Count, node.Name);
            }
        }

        var unfinished = await db.ReadAsync(OperationStore.UnfinishedAsync, stoppingToken);
        if (unfinished.Count > 0)
        {
            Log.Resuming(logger, unfinished.Count);
        }

        unfinished.ForEach(Enqueue);
        var poller = PollAsync(settings.PollInterval, stoppingToken);
        try
        {
            await foreach (var id in _queue.Reader.ReadAllAsync(stoppingToken))
            {
                if (_running.ContainsKey(id))
                {
                    continue;
                }

                await slots.WaitAsync(stoppingToken);
                var run = RunGuardedAsync(id, pipeline, stoppingToken);
                _running[id] = run;
                _ = run.ContinueWith(
                    _ =>
                    {
                        _running.TryRemove(id, out Task? _);
                        slots.Release();
                    },
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: running steps see the token; what they leave is resumed at next start.
        }

        await Task.WhenAll(_running.Values.Append(poller));

        // Stopping gracefully: nothing of this node runs any more, so its leases are freed for another replica to
        // take its operations over now rather than once the leases end. A kill -9 leaves them to run out.
        try
        {
            var released = await db.WriteAsync((c, tx) => OperationStore.ReleaseOwnedAsync(c, tx, node.Name), CancellationToken.None);
            if (released.Count > 0)
            {
                Log.Released(logger, released.Count, node.Name);
            }
        }
#pragma warning disable CA1031 // The store may be gone at shutdown; the leases then run out by themselves.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.ReleaseFailed(logger, ex.Message);
        }
    }

    private async Task PollAsync(TimeSpan interval, CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        var failures = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    foreach (var id in await db.ReadAsync(OperationStore.UnfinishedAsync, stoppingToken))
                    {
                        if (!_running.ContainsKey(id))
                        {
                            Enqueue(id);
                        }
                    }

                    failures = 0;
                }
#pragma warning disable CA1031 // A failed poll must not end polling: operations left by another replica would wait for a restart.
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
#pragma warning restore CA1031
                {
                    failures++;
                    Log.PollFailed(logger, failures, ex);
                }

                timer.Period = LoopBackOff.After(interval, failures);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task RunGuardedAsync(Guid id, ResiliencePipeline pipeline, CancellationToken stoppingToken)
    {
        await Task.Yield();
        try
        {
            await RunAsync(id, pipeline, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            Log.Interrupted(logger, id);
        }
#pragma warning disable CA1031 // One broken operation must not stop the worker; the poller tries it again.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.WorkerError(logger, id, ex);
        }
    }

    private async Task RunAsync(Guid id, ResiliencePipeline pipeline, CancellationToken stoppingToken)
    {
        var settings = options.Value.Operations;
        var taken = time.GetUtcNow();
        if (await db.WriteAsync((c, tx) => OperationStore.AcquireAsync(c, tx, id, node.Name, taken, taken + settings.Lease), stoppingToken) is not { } lease)
        {
            return; // Finished, or another node holds it; the poller looks again once its lease ends.
        }

        try
        {
            if (!await LeaseRenewal.RunAsync(
                ct => db.WriteAsync((c, tx) => OperationStore.FenceAsync(c, tx, lease, time.GetUtcNow() + settings.Lease), ct),
                ct => RunStepsAsync(id, lease, pipeline, ct),
                settings.LeaseRenewal, time, ex => Log.RenewFailed(logger, lease.OperationId, ex.Message), stoppingToken))
            {
                Log.LeaseLost(logger, id);
            }
        }
        catch (LeaseLostException)
        {
            Log.LeaseLost(logger, id);
        }
    }

    private async Task RunStepsAsync(Guid id, OperationLease lease, ResiliencePipeline pipeline, CancellationToken ct)
    {
        var leaseTime = options.Value.Operations.Lease;
        var op = await db.ReadAsync(c => OperationStore.GetAsync(c, null, id), ct);
        if (op is null || op.Status is not (OperationStatus.Pending or OperationStatus.Running))
        {
            return;
        }

        using var scope = Log.Scope(logger, op.TenantId, op.Id);
        Log.Running(logger, op.TenantId, op.Id, op.Kind.ToWire());
        using var trace = TenantryMetrics.Source.StartActivity("operation " + op.Kind.ToWire());
        trace?.SetTag(TenantryMetrics.TenantTag, op.TenantId.ToString()).SetTag("operation.id", op.Id.ToString()).SetTag("operation.kind", op.Kind.ToWire());

        // A finished step is recorded in the same transaction that starts the next one (or ends the
        // operation): one commit per step instead of two. A crash in between leaves it "running",
        // and it runs again on resume, which its idempotence makes harmless.
        Done? done = null;
        foreach (var step in op.Steps.Where(s => s.Status != OperationStatus.Succeeded))
        {
            JsonObject? change;
            using var span = TenantryMetrics.Source.StartActivity("step " + step.Name);
            var context = ResilienceContextPool.Shared.Get(ct);
            context.Properties.Set(LeaseKey, lease);
            context.Properties.Set(StepKey, step.Ordinal);
            try
            {
                change = await pipeline.ExecuteAsync(
                    async ctx =>
                    {
                        var tenant = await db.WriteAsync(
                            async (c, tx) =>
                            {
                                var now = time.GetUtcNow();
                                if (!await OperationStore.FenceAsync(c, tx, lease, now + leaseTime))
                                {
                                    throw new LeaseLostException();
                                }

                                await RecordDoneAsync(c, tx, op, done);
                                await OperationStore.StartAsync(c, tx, id, now);
                                await OperationStore.StepAttemptAsync(c, tx, id, step.Ordinal, now);
                                return await lifecycle.GetAsync(c, tx, op.TenantId)
                                    ?? throw new PermanentStepException("The tenant no longer exists.");
                            },
                            ctx.CancellationToken);
                        done = null;
                        return await steps.ExecuteAsync(op, tenant, step.Name, ctx.CancellationToken);
                    },
                    context);
            }
            catch (Exception ex) when (ex is LeaseLostException || (ex is OperationCanceledException && ct.IsCancellationRequested))
            {
                throw; // Shutting down, or the lease is lost: the operation is left for whoever holds it next.
            }
#pragma warning disable CA1031 // Every failure of a step is recorded on the operation.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                var message = ex is PermanentStepException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}";
                span?.SetStatus(ActivityStatusCode.Error, message);
                trace?.SetStatus(ActivityStatusCode.Error, $"{step.Name}: {message}");
                var rolledBack = false;
                if (OperationDefinition.For(op.Kind).RollsBack)
                {
                    // Undone before the failure is recorded: a crash meanwhile runs the step (and, failing, the rollback) again.
                    try
                    {
                        var tenant = await db.ReadAsync(c => lifecycle.GetAsync(c, null, op.TenantId), ct);
                        rolledBack = tenant is not null && await steps.RollBackAsync(op, tenant, step.Name, ct);
                        message += rolledBack ? " (rolled back; the tenant stays as it was)" : "";
                    }
                    catch (Exception rollback) when (rollback is not OperationCanceledException || !ct.IsCancellationRequested)
                    {
                        message += $"; the rollback failed too: {rollback.GetType().Name}: {rollback.Message}";
                    }
                }

                await FailAsync(op, lease, step, message, done, keepTenantStatus: rolledBack);
                signals.Finished(op.Id);
                metrics?.OperationFinished(op.Kind.ToWire(), succeeded: false, time.GetUtcNow() - op.CreatedAt);
                Log.StepFailed(logger, op.TenantId, op.Id, step.Name, message);
                return;
            }
            finally
            {
                ResilienceContextPool.Shared.Return(context);
            }

            done = new Done(step, change);
            Log.StepSucceeded(logger, op.TenantId, op.Id, step.Name);
        }

        await SucceedAsync(op, lease, done);
    }

    /// <summary>A step whose work is done but not yet recorded.</summary>
    private sealed record Done(OperationStep Step, JsonObject? Change);

    private sealed class LeaseLostException : Exception;

    private async Task RecordDoneAsync(DbConnection c, DbTransaction tx, Operation op, Done? done)
    {
        if (done is null)
        {
            return;
        }

        await OperationStore.StepFinishAsync(c, tx, op.Id, done.Step.Ordinal, OperationStatus.Succeeded, null, time.GetUtcNow());
        if (done.Change is not null)
        {
            await lifecycle.MergeResourcesAsync(c, tx, op.TenantId, done.Change, time.GetUtcNow());
        }
    }

    private async Task SucceedAsync(Operation op, OperationLease lease, Done? done)
    {
        var definition = OperationDefinition.For(op.Kind);
        await db.WriteAsync(
            async (c, tx) =>
            {
                var now = time.GetUtcNow();
                if (!await OperationStore.FinishAsync(c, tx, lease, OperationStatus.Succeeded, null, now))
                {
                    throw new LeaseLostException();
                }

                await RecordDoneAsync(c, tx, op, done);
                if (await lifecycle.GetAsync(c, tx, op.TenantId) is { } tenant)
                {
                    await lifecycle.MoveAsync(c, tx, tenant, definition.Done, null, op.Id, SystemActor, now);
                }

                await AuditFinishedAsync(c, tx, op, "succeeded", new JsonObject { ["operationId"] = op.Id.ToString() }, now);
                await events.AppendAsync(c, tx, FinishedEvent(op, OperationStatus.Succeeded, null, null), now);
            },
            CancellationToken.None);
        signals.Finished(op.Id);
        metrics?.OperationFinished(op.Kind.ToWire(), succeeded: true, time.GetUtcNow() - op.CreatedAt);
        Log.Succeeded(logger, op.TenantId, op.Id, op.Kind.ToWire());
    }

    private Task FailAsync(Operation op, OperationLease lease, OperationStep step, string message, Done? done, bool keepTenantStatus = false) => db.WriteAsync(
        async (c, tx) =>
        {
            var now = time.GetUtcNow();
            var error = $"{step.Name}: {message}";
            if (!await OperationStore.FinishAsync(c, tx, lease, OperationStatus.Failed, error, now))
            {
                throw new LeaseLostException();
            }

            await RecordDoneAsync(c, tx, op, done);
            await OperationStore.StepFinishAsync(c, tx, op.Id, step.Ordinal, OperationStatus.Failed, message, now);
            if (!keepTenantStatus && await lifecycle.GetAsync(c, tx, op.TenantId) is { } tenant)
            {
                await lifecycle.MoveAsync(c, tx, tenant, TenantStatus.Failed, $"{op.Kind.ToWire()} failed at {error}", op.Id, SystemActor, now);
            }

            await AuditFinishedAsync(c, tx, op, "failed", new JsonObject { ["operationId"] = op.Id.ToString(), ["step"] = step.Name, ["error"] = message }, now);
            await events.AppendAsync(c, tx, FinishedEvent(op, OperationStatus.Failed, step.Name, message), now);
        },
        CancellationToken.None);

    private static OutboxEvent FinishedEvent(Operation op, OperationStatus status, string? step, string? error)
    {
        var data = new JsonObject
        {
            ["operationId"] = op.Id.ToString(),
            ["kind"] = op.Kind.ToWire(),
            ["tenantId"] = op.TenantId.ToString(),
            ["status"] = status.ToWire(),
        };
        if (step is not null)
        {
            data["step"] = step;
            data["error"] = error;
        }

        return new OutboxEvent(status == OperationStatus.Succeeded ? EventTypes.OperationSucceeded : EventTypes.OperationFailed, op.TenantId, data);
    }

    private static Task AuditFinishedAsync(DbConnection c, DbTransaction tx, Operation op, string outcome, JsonObject detail, DateTimeOffset now) =>
        AuditLog.AppendAsync(c, tx, AuditLog.By(SystemActor, op.TenantId, $"operation.{op.Kind.ToWire()}", outcome, detail, now));

    private static readonly ResiliencePropertyKey<int> StepKey = new("tenantry.step");

    private ResiliencePipeline BuildRetryPipeline(OperationOptions settings) => new ResiliencePipelineBuilder
    {
        TimeProvider = time,
    }
        .AddRetry(new RetryStrategyOptions
        {
            MaxRetryAttempts = Math.Max(0, settings.MaxAttempts - 1),
            Delay = settings.RetryDelay,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            ShouldHandle = new PredicateBuilder().Handle<Exception>(ex => ex is not (PermanentStepException or OperationCanceledException or LeaseLostException)),
            OnRetry = async args =>
            {
                if (args.Context.Properties.TryGetValue(StepKey, out var ordinal) && args.Outcome.Exception is { } ex)
                {
                    var error = $"attempt {args.AttemptNumber + 1} failed, retrying: {ex.GetType().Name}: {ex.Message}";
                    Log.Retrying(logger, ordinal, error);
                    if (args.Context.Properties.TryGetValue(LeaseKey, out var lease))
                    {
                        var until = time.GetUtcNow() + settings.Lease;
                        await db.WriteAsync(
                            async (c, tx) =>
                            {
                                if (await OperationStore.FenceAsync(c, tx, lease, until))
                                {
                                    await OperationStore.StepErrorAsync(c, tx, lease.OperationId, ordinal, error);
                                }
                            },
                            CancellationToken.None);
                    }
                }
            },
        })
        .Build();

    private static readonly ResiliencePropertyKey<OperationLease> LeaseKey = new("tenantry.lease");

    private static partial class Log
    {
        public static readonly Func<ILogger, Guid, Guid, IDisposable?> Scope =
            LoggerMessage.DefineScope<Guid, Guid>("Tenant {TenantId} operation {OperationId}");

        [LoggerMessage(1, LogLevel.Information, "Resuming {Count} unfinished operations")]
        public static partial void Resuming(ILogger logger, int count);

        [LoggerMessage(2, LogLevel.Information, "Operation {OperationId} ({Kind}) for tenant {TenantId} running")]
        public static partial void Running(ILogger logger, Guid tenantId, Guid operationId, string kind);

        [LoggerMessage(3, LogLevel.Debug, "Step {Step} of operation {OperationId} for tenant {TenantId} succeeded")]
        public static partial void StepSucceeded(ILogger logger, Guid tenantId, Guid operationId, string step);

        [LoggerMessage(4, LogLevel.Warning, "Step {Step} of operation {OperationId} for tenant {TenantId} failed: {Error}")]
        public static partial void StepFailed(ILogger logger, Guid tenantId, Guid operationId, string step, string error);

        [LoggerMessage(5, LogLevel.Information, "Operation {OperationId} ({Kind}) for tenant {TenantId} succeeded")]
        public static partial void Succeeded(ILogger logger, Guid tenantId, Guid operationId, string kind);

        [LoggerMessage(6, LogLevel.Information, "Operation {OperationId} interrupted by shutdown; it resumes at next start")]
        public static partial void Interrupted(ILogger logger, Guid operationId);

        [LoggerMessage(7, LogLevel.Error, "Operation {OperationId} could not run; it is tried again")]
        public static partial void WorkerError(ILogger logger, Guid operationId, Exception exception);

        [LoggerMessage(8, LogLevel.Warning, "Step #{Step}: {Error}")]
        public static partial void Retrying(ILogger logger, int step, string error);

        [LoggerMessage(9, LogLevel.Information, "Reclaimed {Count} operation leases held by node {Node} before it restarted")]
        public static partial void Reclaimed(ILogger logger, int count, string node);

        [LoggerMessage(10, LogLevel.Warning, "Operation {OperationId}: another node took it over; this one stops running it")]
        public static partial void LeaseLost(ILogger logger, Guid operationId);

        [LoggerMessage(11, LogLevel.Warning, "Operation {OperationId}: the lease could not be renewed: {Error}")]
        public static partial void RenewFailed(ILogger logger, Guid operationId, string error);

        [LoggerMessage(13, LogLevel.Information, "Released {Count} operation leases held by node {Node} at shutdown, for another replica to take over")]
        public static partial void Released(ILogger logger, int count, string node);

        [LoggerMessage(14, LogLevel.Warning, "Operation leases could not be released at shutdown ({Error}); they end after Tenantry:Operations:Lease")]
        public static partial void ReleaseFailed(ILogger logger, string error);

        [LoggerMessage(12, LogLevel.Error, "Polling for unfinished operations failed ({Failures} in a row); it goes on after a pause")]
        public static partial void PollFailed(ILogger logger, int failures, Exception exception);
    }
}
