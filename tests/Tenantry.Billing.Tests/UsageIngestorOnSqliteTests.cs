using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.Billing;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Routing;
using Tenantry.ControlPlane.Tenants;

namespace Tenantry.Billing.Tests;

/// <summary>The usage ingestor on the embedded SQLite store.</summary>
public sealed class UsageIngestorOnSqliteTests : IDisposable
{
    private static readonly Guid Tenant = Guid.Parse("0a1b2c3d-0000-4000-8000-000000000002");
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-unit", Guid.NewGuid().ToString("N"));
    private readonly SqliteDatabase _db;

    public UsageIngestorOnSqliteTests()
    {
        Directory.CreateDirectory(_dir);
        _db = new SqliteDatabase(Path.Combine(_dir, "control.db"), ControlPlaneSchema.Sqlite);
    }

    [Fact]
    public async Task Events_with_text_no_store_keeps_are_refused_one_by_one_and_the_others_stored_as_sent()
    {
        // SQLite would store a lone surrogate as U+FFFD: another key than the one sent, and data no read can decode.
        using var catalog = new BillingCatalog(_db, new TenantDirectory(), TimeProvider.System);
        var ingestor = new UsageIngestor(_db, catalog, Options.Create(new BillingOptions()), NullLogger<UsageIngestor>.Instance);
        await ingestor.StartAsync(CancellationToken.None);
        try
        {
            var now = DateTimeOffset.UtcNow;
            List<UsageEvent> batch =
            [
                new("shop", "ok-1", Tenant, "widgets", now, """{"n":1}"""),
                new("shop", "lone-\ud800", Tenant, "widgets", now, null),
                new("shop", "lone-type", Tenant, "widgets\udfff", now, null),
                new("shop", "nul-data", Tenant, "widgets", now, "{\"n\":\"\0\"}"),
                new("shop", "ok-\ud83d\ude00", Tenant, "widgets", now, """{"n":2}"""),
            ];
            IngestOutcome[] refused = [IngestOutcome.Unstorable, IngestOutcome.Unstorable, IngestOutcome.Unstorable];
            Assert.Equal([IngestOutcome.Accepted, .. refused, IngestOutcome.Accepted], await ingestor.IngestAsync(batch));
            Assert.Equal([IngestOutcome.Duplicate, .. refused, IngestOutcome.Duplicate], await ingestor.IngestAsync(batch));
        }
        finally
        {
            await ingestor.StopAsync(CancellationToken.None);
        }

        var ids = await _db.ReadAsync(c => c.QueryAsync("SELECT id FROM usage_events ORDER BY id", null, r => r.GetString(0)));
        Assert.Equal(["ok-1", "ok-\ud83d\ude00"], ids);
    }

    [Fact]
    public async Task A_group_commit_that_throws_fails_only_its_callers_and_the_next_batches_are_stored()
    {
        var db = new FaultingDatabase(_db);
        using var catalog = new BillingCatalog(db, new TenantDirectory(), TimeProvider.System);
        var ingestor = new UsageIngestor(db, catalog, Options.Create(new BillingOptions()), NullLogger<UsageIngestor>.Instance);
        await ingestor.StartAsync(CancellationToken.None);
        var now = DateTimeOffset.UtcNow;
        List<UsageEvent> Batch(string prefix) => [.. Enumerable.Range(0, 5).Select(i => new UsageEvent("shop", $"{prefix}-{i}", Tenant, "widgets", now, """{"n":1}"""))];

        // Bounded only so that a caller left waiting fails the test instead of hanging it.
        var bound = TimeSpan.FromSeconds(30);
        try
        {
            Assert.All(await ingestor.IngestAsync(Batch("a")).WaitAsync(bound), o => Assert.Equal(IngestOutcome.Accepted, o));

            db.FailNextSharedWrite(new NotSupportedException("not a database error"));
            var failed = await Assert.ThrowsAsync<UsageNotStoredException>(() => ingestor.IngestAsync(Batch("b")).WaitAsync(bound));
            Assert.IsType<NotSupportedException>(failed.InnerException);

            var next = await Task.WhenAll(Enumerable.Range(0, 4).Select(k => ingestor.IngestAsync(Batch($"c{k}")))).WaitAsync(bound);
            Assert.All(next.SelectMany(o => o), o => Assert.Equal(IngestOutcome.Accepted, o));
            Assert.All(await ingestor.IngestAsync(Batch("b")).WaitAsync(bound), o => Assert.Equal(IngestOutcome.Accepted, o));
        }
        finally
        {
            await ingestor.StopAsync(CancellationToken.None);
        }

        var stored = await _db.ReadAsync(c => c.ScalarAsync("SELECT COUNT(*) FROM usage_events", null));
        Assert.Equal(30L, Convert.ToInt64(stored, System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Built_in_metering_goes_on_after_a_round_that_throws()
    {
        var db = new FaultingDatabase(_db);
        using var catalog = new BillingCatalog(db, new TenantDirectory(), TimeProvider.System);
        var billing = Options.Create(new BillingOptions { SampleInterval = TimeSpan.FromMilliseconds(1), ApiCallFlushInterval = TimeSpan.FromMilliseconds(20) });
        var ingestor = new UsageIngestor(db, catalog, billing, NullLogger<UsageIngestor>.Instance);
        var buffer = new BuiltInUsageBuffer();
        using var worker = new BuiltInUsageWorker(buffer, ingestor, new RunningTenants(db, Options.Create(new TenantryOptions { DataDir = _dir })), billing, TimeProvider.System,
            NullLogger<BuiltInUsageWorker>.Instance);
        await ingestor.StartAsync(CancellationToken.None);
        db.FailNextRead(new NotSupportedException("not a database error"));
        await worker.StartAsync(CancellationToken.None);
        try
        {
            // The sampler's read of the tenants throws; the call recorded after it is still written.
            await db.Thrown.Task.WaitAsync(TimeSpan.FromSeconds(30));
            buffer.Add(new UsageEvent(ApiCallMeter.Source, "after-failure", Tenant, ApiCallMeter.MeterKey, DateTimeOffset.UtcNow, null));
            for (var i = 0; i < 300 && await CountAsync("after-failure") == 0; i++)
            {
                await Task.Delay(100);
            }

            Assert.Equal(1L, await CountAsync("after-failure"));
        }
        finally
        {
            await worker.StopAsync(CancellationToken.None);
            await ingestor.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Built_in_usage_of_a_flush_the_store_fails_is_written_with_the_next_flush_once()
    {
        var db = new FaultingDatabase(_db);
        using var catalog = new BillingCatalog(db, new TenantDirectory(), TimeProvider.System);
        var billing = Options.Create(new BillingOptions { SampleInterval = TimeSpan.Zero, ApiCallFlushInterval = TimeSpan.FromMilliseconds(20) });
        var ingestor = new UsageIngestor(db, catalog, billing, NullLogger<UsageIngestor>.Instance);
        var buffer = new BuiltInUsageBuffer();
        using var worker = new BuiltInUsageWorker(buffer, ingestor, new RunningTenants(db, Options.Create(new TenantryOptions { DataDir = _dir })), billing, TimeProvider.System,
            NullLogger<BuiltInUsageWorker>.Instance);
        await ingestor.StartAsync(CancellationToken.None);
        string[] ids = [.. Enumerable.Range(0, 5).Select(i => $"call-{i}")];
        foreach (var id in ids)
        {
            buffer.Add(new UsageEvent(ApiCallMeter.Source, id, Tenant, ApiCallMeter.MeterKey, DateTimeOffset.UtcNow, null));
        }

        // The first flush's commit throws: the store took none of the calls.
        db.FailNextSharedWrite(new NotSupportedException("not a database error"));
        await worker.StartAsync(CancellationToken.None);
        try
        {
            await db.Thrown.Task.WaitAsync(TimeSpan.FromSeconds(30));
            for (var i = 0; i < 300 && buffer.Count > 0; i++)
            {
                await Task.Delay(100);
            }
        }
        finally
        {
            await worker.StopAsync(CancellationToken.None);
            await ingestor.StopAsync(CancellationToken.None);
        }

        foreach (var id in ids)
        {
            Assert.Equal(1L, await CountAsync(id));
        }
    }

    [Fact]
    public async Task Samples_the_store_fails_are_written_with_the_next_flush_though_the_next_slot_has_begun()
    {
        var slug = "sampled";
        await _db.WriteAsync((c, tx) => c.ExecuteAsync(
            "INSERT INTO tenants (id, slug, name, tier, isolation, status, admin_email, config, resources, version, created_at, updated_at) " +
            "VALUES (@id, @slug, 'Sampled', 'free', 'shared', 'active', 'admin@example.com', '{}', '{}', 1, @now, @now)",
            tx, ("@id", Tenant.ToString()), ("@slug", slug), ("@now", Sql.Time(DateTimeOffset.UtcNow))));
        var db = new FaultingDatabase(_db);
        using var catalog = new BillingCatalog(db, new TenantDirectory(), TimeProvider.System);
        var interval = TimeSpan.FromMinutes(5);
        var billing = Options.Create(new BillingOptions { SampleInterval = interval });
        var ingestor = new UsageIngestor(db, catalog, billing, NullLogger<UsageIngestor>.Instance);
        var time = new SettableTime(new DateTimeOffset(2030, 1, 1, 10, 1, 0, TimeSpan.Zero));
        using var worker = new BuiltInUsageWorker(new BuiltInUsageBuffer(), ingestor, new RunningTenants(db, Options.Create(new TenantryOptions { DataDir = _dir })), billing, time,
            NullLogger<BuiltInUsageWorker>.Instance);
        await ingestor.StartAsync(CancellationToken.None);
        try
        {
            db.FailNextSharedWrite(new NotSupportedException("not a database error"));
            await worker.SampleAsync(CancellationToken.None);
            time.Now += interval;
            await worker.SampleAsync(CancellationToken.None);

            // Stopping flushes what is buffered.
            await worker.StopAsync(CancellationToken.None);
        }
        finally
        {
            await ingestor.StopAsync(CancellationToken.None);
        }

        Assert.Equal(1L, await CountAsync($"storage_bytes/{Tenant}/{Sql.Time(new DateTimeOffset(2030, 1, 1, 10, 0, 0, TimeSpan.Zero))}"));
        Assert.Equal(1L, await CountAsync($"storage_bytes/{Tenant}/{Sql.Time(new DateTimeOffset(2030, 1, 1, 10, 5, 0, TimeSpan.Zero))}"));
    }

    [Fact]
    public void A_full_buffer_drops_its_oldest_events_and_counts_them()
    {
        var buffer = new BuiltInUsageBuffer(capacity: 3);
        UsageEvent Call(int i) => new(ApiCallMeter.Source, $"call-{i}", Tenant, ApiCallMeter.MeterKey, DateTimeOffset.UtcNow, null);
        buffer.Add(Call(0));
        buffer.Add(Call(1));
        var taken = buffer.Drain(2);
        buffer.Add(Call(2));
        buffer.Add(Call(3));

        // The batch the store did not take goes back in front of the newer events, past the cap.
        buffer.Return(taken);

        Assert.Equal(["call-1", "call-2", "call-3"], buffer.Drain(10).Select(e => e.Id));
        Assert.Equal(1L, buffer.TakeDropped());
        Assert.Equal(0L, buffer.TakeDropped());
    }

    private sealed class SettableTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private async Task<long> CountAsync(string id) =>
        Convert.ToInt64(await _db.ReadAsync(c => c.ScalarAsync("SELECT COUNT(*) FROM usage_events WHERE id = @i", null, ("@i", id))), System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _db.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
