using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Tenantry.Billing.Plans;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Jobs;
using Tenantry.Testing;

// Tenant work queues, store level (no HTTP): throughput on SQLite and PostgreSQL against a plain
// polling queue without SKIP LOCKED, and quiet tenants' waits beside a flooding one against one FIFO.
var seconds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 8;
var duration = TimeSpan.FromSeconds(seconds);
var dir = Path.Combine(Path.GetTempPath(), "tenantry-jobs-bench", Guid.NewGuid().ToString("N"));
Directory.CreateDirectory(dir);
await using var server = await PostgresServer.StartAsync();
var databases = 0;
Console.WriteLine($"Tenantry.Jobs.Benchmarks: {Environment.ProcessorCount} cores, PostgreSQL {server.Version}, {seconds} s per run");

async Task<(JobBackend Backend, string? Connection)> OpenAsync(string engine)
{
    var n = ++databases;
    if (engine == "sqlite")
    {
        return (new SqliteJobBackend(new SqliteDatabase(Path.Combine(dir, $"control-{n}.db"), ControlPlaneSchema.Sqlite, ControlPlaneSchema.AddedColumns)), null);
    }

    await server.ExecuteAsync($"CREATE DATABASE bench_{n}");
    var connection = server.SuperuserConnectionStringFor($"bench_{n}");
    PostgresDatabase.Open(connection, ControlPlaneSchema.Postgres).Dispose();
    return (new PostgresJobBackend(connection), connection);
}

JobQueues Queues(JobBackend backend) => new(
    backend, new JobSignal(), new Limits(), Options.Create(new JobsOptions()), TimeProvider.System, NullLogger<JobQueues>.Instance);

// Throughput: 2 producers enqueue over 8 tenants, 4 workers lease 50 at a time. Per call: one job per
// enqueue and one ack per job; batched: 100 jobs per enqueue and one ack call per lease.
async Task<(double Enqueued, double Completed)> ThroughputAsync(string engine, bool batched)
{
    var (backend, _) = await OpenAsync(engine);
    var queues = Queues(backend);
    var tenants = Enumerable.Range(0, 8).Select(_ => Guid.NewGuid()).ToArray();
    foreach (var t in tenants)
    {
        await queues.ProvisionAsync(t);
    }

    long enqueued = 0, completed = 0;
    using var stop = new CancellationTokenSource(duration);
    var clock = Stopwatch.StartNew();
    var producers = Enumerable.Range(0, 2).Select(p => Task.Run(async () =>
    {
        for (var i = p; !stop.IsCancellationRequested; i += 2)
        {
            if (batched)
            {
                var tenant = tenants[i % tenants.Length];
                await queues.EnqueueManyAsync([.. Enumerable.Range(0, 100).Select(_ => new NewJob(tenant, "bench", "{}", 0, null, null))]);
                Interlocked.Add(ref enqueued, 100);
            }
            else
            {
                await queues.EnqueueAsync(new NewJob(tenants[i % tenants.Length], "bench", "{}", 0, null, null));
                Interlocked.Increment(ref enqueued);
            }
        }
    }));
    var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
    {
        while (!stop.IsCancellationRequested)
        {
            var leased = await queues.LeaseAsync(new LeaseRequest(null, null, 50, TimeSpan.FromMinutes(1)), TimeSpan.Zero);
            if (batched && leased.Count > 0)
            {
                var acked = await queues.AckManyAsync([.. leased.Select(l => (l.Job.Id, l.LeaseId))], null);
                Interlocked.Add(ref completed, acked.Count(a => a.Outcome == JobOutcome.Done));
                continue;
            }

            foreach (var lease in leased)
            {
                await queues.AckAsync(lease.Job.Id, lease.LeaseId, null);
                Interlocked.Increment(ref completed);
            }
        }
    }));
    await Task.WhenAll([.. producers, .. workers]);
    var elapsed = clock.Elapsed.TotalSeconds;
    return (enqueued / elapsed, completed / elapsed);
}

// Baseline: one table polled without SKIP LOCKED (SELECT … FOR UPDATE: lessees queue on the same rows), same load.
async Task<(double Enqueued, double Completed)> PlainPollingAsync(bool batched)
{
    await server.ExecuteAsync($"CREATE DATABASE plain_{++databases}");
    await using var source = NpgsqlDataSource.Create(server.SuperuserConnectionStringFor($"plain_{databases}"));
    await using (var create = source.CreateCommand("CREATE TABLE plain_jobs (id BIGSERIAL PRIMARY KEY, tenant_id TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL); CREATE INDEX ON plain_jobs (status, id);"))
    {
        await create.ExecuteNonQueryAsync();
    }

    long enqueued = 0, completed = 0;
    using var stop = new CancellationTokenSource(duration);
    var clock = Stopwatch.StartNew();
    var producers = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
    {
        while (!stop.IsCancellationRequested)
        {
            var rows = batched ? 100 : 1;
            await using var insert = source.CreateCommand("INSERT INTO plain_jobs (tenant_id, payload, status) SELECT 't', '{}', 'queued' FROM generate_series(1, " + rows + ")");
            await insert.ExecuteNonQueryAsync();
            Interlocked.Add(ref enqueued, rows);
        }
    }));
    var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var ids = new List<long>();
                await using (var connection = await source.OpenConnectionAsync())
                await using (var tx = await connection.BeginTransactionAsync())
                {
                    await using (var select = new NpgsqlCommand("SELECT id FROM plain_jobs WHERE status = 'queued' ORDER BY id LIMIT 50 FOR UPDATE", connection, tx))
                    await using (var reader = await select.ExecuteReaderAsync())
                    {
                        while (await reader.ReadAsync())
                        {
                            ids.Add(reader.GetInt64(0));
                        }
                    }

                    await using (var mark = new NpgsqlCommand("UPDATE plain_jobs SET status = 'leased' WHERE id = ANY(@ids)", connection, tx))
                    {
                        mark.Parameters.AddWithValue("ids", ids.ToArray());
                        await mark.ExecuteNonQueryAsync();
                    }

                    await tx.CommitAsync();
                }

                if (batched && ids.Count > 0)
                {
                    await using var all = source.CreateCommand("UPDATE plain_jobs SET status = 'done' WHERE id = ANY(@ids)");
                    all.Parameters.AddWithValue("ids", ids.ToArray());
                    Interlocked.Add(ref completed, await all.ExecuteNonQueryAsync());
                    continue;
                }

                foreach (var id in ids)
                {
                    await using var done = source.CreateCommand("UPDATE plain_jobs SET status = 'done' WHERE id = @id");
                    done.Parameters.AddWithValue("id", id);
                    await done.ExecuteNonQueryAsync();
                    Interlocked.Increment(ref completed);
                }
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DeadlockDetected)
            {
                // Lessees and acks of a plain polling table lock rows in different orders; a real one retries.
            }
        }
    }));
    await Task.WhenAll([.. producers, .. workers]);
    var elapsed = clock.Elapsed.TotalSeconds;
    return (enqueued / elapsed, completed / elapsed);
}

// Fairness: a flood tenant's backlog, 10 quiet tenants enqueuing 10 jobs/s each, 4 workers leasing
// one job at a time and running each 2 ms. p99 of the quiet jobs' waits (due → leased).
async Task<double> QuietP99Async(string engine, int flood, bool singleFifo)
{
    var (backend, _) = await OpenAsync(engine);
    var queues = Queues(backend);
    var fifo = Guid.NewGuid();
    var floodTenant = singleFifo ? fifo : Guid.NewGuid();
    var quiet = Enumerable.Range(0, 10).Select(_ => singleFifo ? fifo : Guid.NewGuid()).ToArray();
    foreach (var t in quiet.Append(floodTenant).Distinct())
    {
        await queues.ProvisionAsync(t);
    }

    await Parallel.ForEachAsync(Enumerable.Range(0, flood / 100), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (_, ct) =>
        await queues.EnqueueManyAsync([.. Enumerable.Range(0, 100).Select(_ => new NewJob(floodTenant, "flood", "{}", 0, null, null))], ct));

    var waits = new ConcurrentBag<double>();
    var quietIds = new ConcurrentDictionary<Guid, bool>();
    var expected = 10 * 10 * seconds;
    using var stop = new CancellationTokenSource(duration + TimeSpan.FromSeconds(20));
    var producers = quiet.Select((t, i) => Task.Run(async () =>
    {
        var start = Stopwatch.StartNew();
        for (var n = 0; n < 10 * seconds && !stop.IsCancellationRequested; n++)
        {
            var due = TimeSpan.FromMilliseconds(100 * n + (10 * i));
            if (due > start.Elapsed)
            {
                await Task.Delay(due - start.Elapsed);
            }

            quietIds[(await queues.EnqueueAsync(new NewJob(t, "quiet", "{}", 0, null, null))).Job.Id] = true;
        }
    }));
    var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
    {
        while (!stop.IsCancellationRequested && waits.Count < expected)
        {
            var leased = await queues.LeaseAsync(new LeaseRequest(null, null, 1, TimeSpan.FromMinutes(1)), TimeSpan.Zero);
            foreach (var lease in leased)
            {
                if (lease.Job.Type == "quiet")
                {
                    waits.Add(lease.Job.LeasedAt!.Value - lease.Job.RunAt);
                }

                await Task.Delay(2);
                await queues.AckAsync(lease.Job.Id, lease.LeaseId, null);
            }

            if (leased.Count == 0)
            {
                await Task.Delay(1);
            }
        }
    }));
    await Task.WhenAll([.. producers, .. workers]);
    var sorted = waits.Order().ToList();
    // Quiet jobs never served by the end count as waiting the whole run.
    var unserved = expected - sorted.Count;
    sorted.AddRange(Enumerable.Repeat((duration + TimeSpan.FromSeconds(20)).TotalMilliseconds, Math.Max(0, unserved)));
    return sorted[(int)Math.Ceiling(0.99 * sorted.Count) - 1];
}

var only = args.Length > 1 ? args[1] : "all";
if (only is "all" or "throughput")
{
    foreach (var batched in new[] { false, true })
    {
        var mode = batched ? "batched " : "per call";
        foreach (var engine in new[] { "sqlite", "postgresql" })
        {
            var (enq, done) = await ThroughputAsync(engine, batched);
            Console.WriteLine($"throughput {mode} {engine,-10}: enqueued {enq,8:F0}/s, completed {done,8:F0}/s");
        }

        var (plainEnq, plainDone) = await PlainPollingAsync(batched);
        Console.WriteLine($"throughput {mode} plain polling (PostgreSQL, FOR UPDATE without SKIP LOCKED): enqueued {plainEnq,8:F0}/s, completed {plainDone,8:F0}/s");
    }
}

if (only is not ("all" or "fairness"))
{
    Directory.Delete(dir, recursive: true);
    return;
}

const int Flood = 100_000;
var alone = await QuietP99Async("postgresql", 0, singleFifo: false);
var fair = await QuietP99Async("postgresql", Flood, singleFifo: false);
var fifoP99 = await QuietP99Async("postgresql", Flood, singleFifo: true);
Console.WriteLine($"fairness (PostgreSQL, {Flood} flood jobs, 10 quiet tenants at 10 jobs/s, 4 workers, 2 ms jobs): quiet p99 wait alone {alone:F0} ms, beside the flood {fair:F0} ms ({fair / Math.Max(1, alone):F2}x), single FIFO {fifoP99:F0} ms ({fifoP99 / Math.Max(1, alone):F1}x)");
Directory.Delete(dir, recursive: true);

/// <summary>Limits that never bind: the runs measure the queue, not the plan.</summary>
internal sealed class Limits : IJobLimits
{
    public ValueTask<JobLimits> ForAsync(Guid tenantId, CancellationToken cancellationToken = default) => ValueTask.FromResult(new JobLimits(1, 10_000, 100_000_000));
}
