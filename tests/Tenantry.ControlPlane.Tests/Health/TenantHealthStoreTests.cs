using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Health;
using Tenantry.ControlPlane.Tenants;
using Tenantry.Health;
using Tenantry.Testing;

namespace Tenantry.ControlPlane.Tests.Health;

/// <summary>SQLite and a private PostgreSQL server, for the health store's tests on both engines.</summary>
public sealed class HealthStores : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-unit", Guid.NewGuid().ToString("N"));
    private PostgresServer _server = null!;
    private int _databases;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        _server = await PostgresServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A new, empty control-plane store on <paramref name="engine"/>.</summary>
    public async Task<IControlPlaneDatabase> OpenAsync(string engine)
    {
        var n = Interlocked.Increment(ref _databases);
        if (engine == "sqlite")
        {
            return new SqliteDatabase(Path.Combine(_dir, $"control-{n}.db"), ControlPlaneSchema.Sqlite, ControlPlaneSchema.AddedColumns);
        }

        var name = $"health_{n}";
        await _server.ExecuteAsync($"CREATE DATABASE {name}");
        return PostgresDatabase.Open(_server.SuperuserConnectionStringFor(name), ControlPlaneSchema.Postgres);
    }
}

/// <summary>
/// The health store on each engine: replicas' batches for one minute merge exactly, a batch sent twice
/// counts once, late and unknown samples are refused, hours roll up to the exact merge of their minutes
/// (again after a late flush), and retention trims minutes and hours.
/// </summary>
public sealed class TenantHealthStoreTests(HealthStores stores) : IClassFixture<HealthStores>
{
    private static readonly DateTimeOffset Noon = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Two_gateways_writing_the_same_minute_merge_exactly_and_a_batch_sent_twice_counts_once(string engine)
    {
        var (db, clock, health, tenant) = await SetUpAsync(engine, Noon.AddMinutes(5));
        var random = new Random(3);
        var all = new LatencySketch();
        TenantHealthSample Sample(long requests, long s4, long s5, long throttled)
        {
            var sketch = new LatencySketch();
            for (var i = 0; i < requests; i++)
            {
                var ms = Math.Exp(random.NextDouble() * 8 - 2);
                sketch.Add(ms);
                all.Add(ms);
            }

            return new TenantHealthSample(tenant, Noon.AddMinutes(3), requests, s4, s5, throttled, sketch);
        }

        var a = new TenantHealthBatch("replica-a-1", [Sample(400, 30, 2, 10)]);
        var b = new TenantHealthBatch("replica-b-1", [Sample(600, 40, 5, 20)]);
        Assert.Equal(1, (await health.WriteAsync(a, default)).Accepted);
        Assert.Equal(1, (await health.WriteAsync(b, default)).Accepted);
        var again = await health.WriteAsync(a, default);
        Assert.True(again.Duplicate);
        Assert.Equal(0, again.Accepted);

        var series = await health.SeriesAsync(tenant, Noon, Noon.AddMinutes(5), 1, "1m", default);
        Assert.Equal(5, series.Items.Count);
        var minute = series.Items[3];
        Assert.Equal((Noon.AddMinutes(3), 1000L, 70L, 7L, 30L), (minute.At, minute.Requests, minute.Status4xx, minute.Status5xx, minute.Throttled));
        Assert.Equal(Round(all.Quantile(0.5)), minute.P50Ms);
        Assert.Equal(Round(all.Quantile(0.95)), minute.P95Ms);
        Assert.Equal(Round(all.Quantile(0.99)), minute.P99Ms);
        Assert.All(series.Items.Where(p => p.At != minute.At), p => Assert.Equal((0L, (double?)null), (p.Requests, p.P99Ms)));

        var summary = await health.SummarizeAsync([tenant, Guid.NewGuid()], Noon.AddMinutes(3).AddSeconds(20), Noon.AddMinutes(3).AddSeconds(40), default);
        Assert.Equal((Noon.AddMinutes(3), Noon.AddMinutes(4)), (summary.From, summary.To));
        Assert.Equal(1000, summary.Combined.Requests);
        Assert.Equal(0.007, summary.Combined.ErrorRate);
        Assert.Equal(minute.P99Ms, summary.Combined.P99Ms);
        Assert.Equal(2, summary.Tenants.Count);
        Assert.Equal(clock.Now, Noon.AddMinutes(5));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Late_future_and_unknown_tenants_samples_are_skipped_and_said_so(string engine)
    {
        var (_, _, health, tenant) = await SetUpAsync(engine, Noon.AddHours(3));
        var result = await health.WriteAsync(new TenantHealthBatch("mixed", [
            new TenantHealthSample(tenant, Noon, 1, 0, 0, 0, One()),                           // three hours ago: over MaxLateness
            new TenantHealthSample(tenant, Noon.AddHours(3).AddMinutes(10), 1, 0, 0, 0, One()), // ten minutes ahead
            new TenantHealthSample(Guid.NewGuid(), Noon.AddHours(3), 1, 0, 0, 0, One()),       // no such tenant
            new TenantHealthSample(tenant, Noon.AddHours(3), 1, 0, 0, 0, One()),
        ]), default);
        Assert.Equal(1, result.Accepted);
        Assert.Equal([new SkippedSample(0, "late"), new SkippedSample(1, "future"), new SkippedSample(2, "unknown-tenant")], result.Skipped);
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Hours_roll_up_exactly_again_after_a_late_flush_and_retention_trims_minutes_then_hours(string engine)
    {
        var (db, clock, health, tenant) = await SetUpAsync(engine, Noon.AddMinutes(30));
        var maintenance = new HealthMaintenance(db, Options.Create(new HealthOptions()), clock, NullLogger<HealthMaintenance>.Instance);
        var random = new Random(11);
        var all = new LatencySketch();
        for (var m = 0; m < 30; m++)
        {
            var sketch = new LatencySketch();
            for (var i = 0; i < 50; i++)
            {
                var ms = Math.Exp(random.NextDouble() * 6);
                sketch.Add(ms);
                all.Add(ms);
            }

            await health.WriteAsync(new TenantHealthBatch($"b{m}", [new TenantHealthSample(tenant, Noon.AddMinutes(m), 50, 1, m % 2, 0, sketch)]), default);
        }

        // Nothing rolls up while its hour runs.
        Assert.Equal(0, (await maintenance.RunOnceAsync(default)).RolledUp);
        clock.Now = Noon.AddMinutes(61);
        Assert.Equal(1, (await maintenance.RunOnceAsync(default)).RolledUp);
        Assert.Equal(0, (await maintenance.RunOnceAsync(default)).RolledUp);

        // A gateway's flush lands in the finished hour: it is rolled up again, whole.
        var late = new LatencySketch();
        late.Add(5000);
        all.Add(5000);
        await health.WriteAsync(new TenantHealthBatch("late", [new TenantHealthSample(tenant, Noon.AddMinutes(59), 1, 0, 1, 0, late)]), default);
        Assert.Equal(1, (await maintenance.RunOnceAsync(default)).RolledUp);

        // Past the minute retention, the hour is read from its roll-up: the same figures as its minutes gave.
        var byMinutes = await health.SeriesAsync(tenant, Noon, Noon.AddHours(1), 60, "1h", default);
        clock.Now = Noon.AddDays(15);
        var (_, minutesDeleted, hoursDeleted) = await maintenance.RunOnceAsync(default);
        Assert.Equal((31, 0), (minutesDeleted, hoursDeleted));
        Assert.Equal((0L, 1L), await db.ReadAsync(TenantHealthStore.CountAsync));
        var byHours = await health.SeriesAsync(tenant, Noon, Noon.AddHours(1), 60, "1h", default);
        Assert.Equal(byMinutes.Items, byHours.Items);
        var hour = Assert.Single(byHours.Items);
        Assert.Equal((1501L, 30L, 16L), (hour.Requests, hour.Status4xx, hour.Status5xx));
        Assert.Equal(Round(all.Quantile(0.99)), hour.P99Ms);

        // Thirteen months on, the hour is gone too.
        clock.Now = Noon.AddMonths(13).AddHours(2);
        Assert.Equal(1, (await maintenance.RunOnceAsync(default)).Hours);
        Assert.Equal((0L, 0L), await db.ReadAsync(TenantHealthStore.CountAsync));
    }

    private async Task<(IControlPlaneDatabase Db, ManualClock Clock, TenantHealthService Health, Guid Tenant)> SetUpAsync(string engine, DateTimeOffset now)
    {
        var db = await stores.OpenAsync(engine);
        var clock = new ManualClock(now);
        var tenant = Guid.NewGuid();
        await db.WriteAsync((c, tx) => TenantStore.InsertAsync(c, tx, new Tenant
        {
            Id = tenant, Slug = "t" + tenant.ToString("N")[..8], Name = "Health", Tier = "basic", Isolation = IsolationModel.Pool, Status = TenantStatus.Active,
            AdminEmail = "a@health.test", Config = [], Resources = [], Version = 1, CreatedAt = now, UpdatedAt = now,
        }));
        return (db, clock, new TenantHealthService(db, new TenantDirectory(), Options.Create(new HealthOptions()), clock), tenant);
    }

    private static LatencySketch One()
    {
        var sketch = new LatencySketch();
        sketch.Add(1);
        return sketch;
    }

    private static double? Round(double? value) => value is { } v ? Math.Round(v, 3) : null;
}

/// <summary>A clock the test sets.</summary>
internal sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}
