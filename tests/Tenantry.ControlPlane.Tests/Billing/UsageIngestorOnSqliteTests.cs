using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Billing;
using Tenantry.ControlPlane.Billing.Usage;
using Tenantry.ControlPlane.Storage;

namespace Tenantry.ControlPlane.Tests.Billing;

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
        using var catalog = new BillingCatalog(_db, TimeProvider.System);
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
