using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.Billing.Plans;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Jobs;
using Tenantry.ControlPlane.Tests.Health;
using Tenantry.Testing;

namespace Tenantry.ControlPlane.Tests.Jobs;

/// <summary>SQLite and a private PostgreSQL server, each store new and empty, for the queues' tests on both engines.</summary>
public sealed class JobStores : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-unit", Guid.NewGuid().ToString("N"));
    private readonly List<IAsyncDisposable> _open = [];
    private PostgresServer _server = null!;
    private int _databases;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        _server = await PostgresServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var open in _open)
        {
            await open.DisposeAsync();
        }

        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A backend on a new store of <paramref name="engine"/>.</summary>
    internal async Task<JobBackend> OpenAsync(string engine)
    {
        var n = Interlocked.Increment(ref _databases);
        if (engine == "sqlite")
        {
            return new SqliteJobBackend(new SqliteDatabase(Path.Combine(_dir, $"control-{n}.db"), ControlPlaneSchema.Sqlite, ControlPlaneSchema.AddedColumns));
        }

        var name = $"jobs_{n}";
        await _server.ExecuteAsync($"CREATE DATABASE {name}");
        var connection = _server.SuperuserConnectionStringFor(name);
        PostgresDatabase.Open(connection, ControlPlaneSchema.Postgres).Dispose();
        var backend = new PostgresJobBackend(connection);
        _open.Add(backend);
        return backend;
    }
}

/// <summary>Each tenant's limits as the test sets them (the plans' part is tested through the host).</summary>
internal sealed class FixedLimits : IJobLimits
{
    public Dictionary<Guid, JobLimits> Limits { get; } = [];

    public ValueTask<JobLimits> ForAsync(Guid tenantId, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Limits.GetValueOrDefault(tenantId, new JobLimits(1, 1000, 1_000_000)));
}

/// <summary>
/// The queues on each engine: an idempotency key gives one job, a lapsed lease comes back and an
/// acked job never does, nacks retry with backoff then dead-letter, the depth quota holds, and
/// leases share workers fairly by weight within each tenant's concurrency.
/// </summary>
public sealed class JobQueueTests(JobStores stores) : IClassFixture<JobStores>
{
    private static readonly DateTimeOffset Noon = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    private async Task<(JobQueues Queues, ManualClock Clock, FixedLimits Limits)> SetUpAsync(string engine, JobsOptions? options = null)
    {
        var backend = await stores.OpenAsync(engine);
        var clock = new ManualClock(Noon);
        var limits = new FixedLimits();
        return (new JobQueues(backend, new JobSignal(), limits, Options.Create(options ?? new JobsOptions()), clock, NullLogger<JobQueues>.Instance), clock, limits);
    }

    private static NewJob Job(Guid tenant, string type = "import", string payload = "{}", string? key = null) =>
        new(tenant, type, payload, 0, key, key is null ? null : JobRules.Hash(type, payload, null));

    private static LeaseRequest Lease(int max, Guid? tenant = null, int seconds = 30) => new(tenant, null, max, TimeSpan.FromSeconds(seconds));

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task The_same_idempotency_key_gives_the_same_job_and_another_body_under_it_is_refused(string engine)
    {
        var (queues, _, _) = await SetUpAsync(engine);
        var tenant = Guid.NewGuid();
        await queues.ProvisionAsync(tenant);
        var first = await queues.EnqueueAsync(Job(tenant, key: "k1"));
        var again = await queues.EnqueueAsync(Job(tenant, key: "k1"));
        Assert.True(first.Created);
        Assert.False(again.Created);
        Assert.Equal(first.Job.Id, again.Job.Id);
        await Assert.ThrowsAsync<IdempotencyMismatchException>(() => queues.EnqueueAsync(Job(tenant, payload: "{\"other\":1}", key: "k1")));

        // Keys are per tenant: another tenant's same key is its own job.
        var other = Guid.NewGuid();
        await queues.ProvisionAsync(other);
        Assert.NotEqual(first.Job.Id, (await queues.EnqueueAsync(Job(other, key: "k1"))).Job.Id);
        Assert.Equal(1, (await queues.FiguresAsync(tenant)).Single().Depth);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task A_lapsed_lease_comes_back_and_an_acked_job_never_does(string engine)
    {
        var (queues, clock, _) = await SetUpAsync(engine);
        var tenant = Guid.NewGuid();
        await queues.ProvisionAsync(tenant);
        var kept = (await queues.EnqueueAsync(Job(tenant, key: "kept"))).Job;
        var done = (await queues.EnqueueAsync(Job(tenant, key: "done"))).Job;

        var first = await queues.LeaseAsync(Lease(10), TimeSpan.Zero);
        Assert.Equal(2, first.Count);
        var doneLease = first.Single(l => l.Job.Id == done.Id);
        Assert.Equal(JobOutcome.Done, (await queues.AckAsync(done.Id, doneLease.LeaseId, tenant)).Outcome);
        Assert.Empty(await queues.LeaseAsync(Lease(10), TimeSpan.Zero));

        // Past the visibility timeout the unacked job is put back (due after the first backoff, 1 s) and handed out again under a new lease; the acked one is not.
        clock.Now = Noon.AddSeconds(31);
        Assert.Equal(1, await queues.ReclaimAsync());
        Assert.Empty(await queues.LeaseAsync(Lease(10), TimeSpan.Zero));
        clock.Now = Noon.AddSeconds(32);
        var second = Assert.Single(await queues.LeaseAsync(Lease(10), TimeSpan.Zero));
        Assert.Equal(kept.Id, second.Job.Id);
        Assert.Equal(2, second.Job.Attempts);
        Assert.NotEqual(first[0].LeaseId, second.LeaseId);

        // The first lease is no longer the job's: its ack is refused, the new one's is taken (and taken again, idempotently).
        var stale = first.Single(l => l.Job.Id == kept.Id);
        Assert.Equal(JobOutcome.LeaseLost, (await queues.AckAsync(kept.Id, stale.LeaseId, tenant)).Outcome);
        Assert.Equal(JobOutcome.Done, (await queues.AckAsync(kept.Id, second.LeaseId, tenant)).Outcome);
        Assert.Equal(JobOutcome.Done, (await queues.AckAsync(kept.Id, second.LeaseId, tenant)).Outcome);

        clock.Now = Noon.AddHours(1);
        Assert.Equal(0, await queues.ReclaimAsync());
        Assert.Empty(await queues.LeaseAsync(Lease(10), TimeSpan.Zero));
        var figures = (await queues.FiguresAsync(tenant)).Single();
        Assert.Equal((0L, 2L, 1L), (figures.Depth, figures.Succeeded, figures.Failed));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Nacks_retry_with_backoff_and_the_last_attempt_goes_to_the_tenants_dead_letter_queue(string engine)
    {
        var (queues, clock, _) = await SetUpAsync(engine, new JobsOptions { MaxAttempts = 3, Backoff = TimeSpan.FromSeconds(10), MaxBackoff = TimeSpan.FromSeconds(15) });
        var tenant = Guid.NewGuid();
        await queues.ProvisionAsync(tenant);
        var job = (await queues.EnqueueAsync(Job(tenant))).Job;

        var lease = Assert.Single(await queues.LeaseAsync(Lease(1), TimeSpan.Zero));
        var (_, after1) = await queues.NackAsync(job.Id, lease.LeaseId, tenant, "boom 1", null);
        Assert.Equal((JobStatus.Queued, Noon.AddSeconds(10).ToUnixTimeMilliseconds()), (after1!.Status, after1.RunAt));
        Assert.Empty(await queues.LeaseAsync(Lease(1), TimeSpan.Zero));

        clock.Now = Noon.AddSeconds(10);
        lease = Assert.Single(await queues.LeaseAsync(Lease(1), TimeSpan.Zero));
        var (_, after2) = await queues.NackAsync(job.Id, lease.LeaseId, tenant, "boom 2", null);
        Assert.Equal(Noon.AddSeconds(25).ToUnixTimeMilliseconds(), after2!.RunAt); // 20 s capped at 15

        clock.Now = Noon.AddSeconds(25);
        lease = Assert.Single(await queues.LeaseAsync(Lease(1), TimeSpan.Zero));
        var (_, dead) = await queues.NackAsync(job.Id, lease.LeaseId, tenant, "boom 3", null);
        Assert.Equal((JobStatus.Dead, 3, "boom 3"), (dead!.Status, dead.Attempts, dead.LastError));

        clock.Now = Noon.AddHours(1);
        Assert.Empty(await queues.LeaseAsync(Lease(1), TimeSpan.Zero));
        var (items, _) = await queues.ListAsync(tenant, JobStatus.Dead, null, 10);
        Assert.Equal(job.Id, Assert.Single(items).Id);
        Assert.Equal((0L, 1L, 3L), ((await queues.FiguresAsync(tenant)).Single().Depth, (await queues.FiguresAsync(tenant)).Single().Dead, (await queues.FiguresAsync(tenant)).Single().Failed));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task A_queue_at_its_depth_quota_refuses_more_until_a_job_finishes_and_a_tenant_without_a_queue_has_none(string engine)
    {
        var (queues, _, limits) = await SetUpAsync(engine);
        var tenant = Guid.NewGuid();
        limits.Limits[tenant] = new JobLimits(1, 10, 2);
        await queues.ProvisionAsync(tenant);
        await queues.EnqueueAsync(Job(tenant));
        await queues.EnqueueAsync(Job(tenant));
        var full = await Assert.ThrowsAsync<JobQueueFullException>(() => queues.EnqueueAsync(Job(tenant, key: "third")));
        Assert.Equal(2, full.MaxDepth);
        Assert.Null(await queues.GetAsync(Guid.Empty, tenant));

        var lease = (await queues.LeaseAsync(Lease(1), TimeSpan.Zero))[0];
        await queues.AckAsync(lease.Job.Id, lease.LeaseId, tenant);
        Assert.True((await queues.EnqueueAsync(Job(tenant, key: "third"))).Created);

        await Assert.ThrowsAsync<JobQueueMissingException>(() => queues.EnqueueAsync(Job(Guid.NewGuid())));
        await queues.DeleteAsync(tenant);
        await queues.DeleteAsync(tenant);
        await Assert.ThrowsAsync<JobQueueMissingException>(() => queues.EnqueueAsync(Job(tenant)));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task A_flooding_tenant_does_not_delay_ten_quiet_tenants_past_one_job_per_worker(string engine)
    {
        var (queues, _, _) = await SetUpAsync(engine);
        var flood = Guid.NewGuid();
        await queues.ProvisionAsync(flood);
        for (var i = 0; i < 300; i++)
        {
            await queues.EnqueueAsync(Job(flood));
        }

        // Some of the flood is already running when the quiet tenants enqueue.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(flood, Assert.Single(await queues.LeaseAsync(Lease(1), TimeSpan.Zero)).Job.TenantId);
        }

        var quiet = Enumerable.Range(0, 10).Select(_ => Guid.NewGuid()).ToList();
        foreach (var tenant in quiet)
        {
            await queues.ProvisionAsync(tenant);
            await queues.EnqueueAsync(Job(tenant));
        }

        // Ten quiet jobs, one flood job at most between any two of them: each quiet job waits at most one flood job per lease.
        var order = new List<Guid>();
        for (var i = 0; i < 20; i++)
        {
            order.Add(Assert.Single(await queues.LeaseAsync(Lease(1), TimeSpan.Zero)).Job.TenantId);
        }

        var quietPositions = order.Select((t, i) => (t, i)).Where(x => x.t != flood).Select(x => x.i).ToList();
        Assert.Equal(10, quietPositions.Count);
        Assert.Equal(quiet.ToHashSet(), order.Where(t => t != flood).ToHashSet());
        Assert.True(quietPositions[^1] <= 10, $"the last quiet job was leased at position {quietPositions[^1]}");
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Workers_are_shared_by_weight_and_a_tenant_never_holds_more_leases_than_its_concurrency(string engine)
    {
        var (queues, _, limits) = await SetUpAsync(engine);
        var (heavy, light, capped) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        limits.Limits[heavy] = new JobLimits(3, 1000, 1000);
        limits.Limits[light] = new JobLimits(1, 1000, 1000);
        limits.Limits[capped] = new JobLimits(100, 2, 1000);
        foreach (var tenant in new[] { heavy, light, capped })
        {
            await queues.ProvisionAsync(tenant);
            for (var i = 0; i < 60; i++)
            {
                await queues.EnqueueAsync(Job(tenant));
            }
        }

        var leased = new List<LeasedJob>();
        for (var i = 0; i < 10; i++)
        {
            leased.AddRange(await queues.LeaseAsync(Lease(5), TimeSpan.Zero));
        }

        var counts = leased.GroupBy(l => l.Job.TenantId).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(2, counts[capped]);
        Assert.Equal(48, counts[heavy] + counts[light]);
        Assert.InRange(counts[heavy], 35, 37); // 3:1
        Assert.Equal(2, (await queues.FiguresAsync(capped)).Single().Leased);

        // An ack frees a slot of the capped tenant, and only one.
        var one = leased.First(l => l.Job.TenantId == capped);
        await queues.AckAsync(one.Job.Id, one.LeaseId, capped);
        var more = await queues.LeaseAsync(Lease(50, capped), TimeSpan.Zero);
        Assert.Single(more);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task A_tenant_scoped_lease_ack_and_read_never_reach_another_tenants_jobs(string engine)
    {
        var (queues, _, _) = await SetUpAsync(engine);
        var (mine, theirs) = (Guid.NewGuid(), Guid.NewGuid());
        await queues.ProvisionAsync(mine);
        await queues.ProvisionAsync(theirs);
        var secret = (await queues.EnqueueAsync(Job(theirs, type: "payroll"))).Job;

        Assert.Empty(await queues.LeaseAsync(Lease(10, mine), TimeSpan.Zero));
        Assert.Null(await queues.GetAsync(secret.Id, mine));
        var lease = Assert.Single(await queues.LeaseAsync(Lease(10, theirs), TimeSpan.Zero));
        Assert.Equal(JobOutcome.NotFound, (await queues.AckAsync(secret.Id, lease.LeaseId, mine)).Outcome);
        Assert.Equal(JobOutcome.NotFound, (await queues.NackAsync(secret.Id, lease.LeaseId, mine, null, null)).Outcome);
        Assert.Equal(JobStatus.Leased, (await queues.GetAsync(secret.Id, theirs))!.Status);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Concurrent_lessees_never_get_the_same_job(string engine)
    {
        var (queues, _, _) = await SetUpAsync(engine);
        var tenant = Guid.NewGuid();
        await queues.ProvisionAsync(tenant);
        for (var i = 0; i < 200; i++)
        {
            await queues.EnqueueAsync(Job(tenant));
        }

        var all = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            var mine = new List<Guid>();
            for (var round = 0; round < 20; round++)
            {
                mine.AddRange((await queues.LeaseAsync(Lease(3), TimeSpan.Zero)).Select(l => l.Job.Id));
            }

            return mine;
        }));
        var ids = all.SelectMany(x => x).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Equal(200, ids.Count);
    }
}
