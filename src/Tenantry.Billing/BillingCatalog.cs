using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.Json;
using Tenantry.Billing.Plans;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing;

/// <summary>
/// Plans and meters (rows of JSON definitions) and the tenant lookups billing needs, cached in
/// process. The defaults are written on first use; a cache older than a few seconds is reloaded,
/// so replicas sharing a PostgreSQL store converge.
/// </summary>
public sealed class BillingCatalog(IControlPlaneDatabase db, ITenantDirectory tenants, TimeProvider time) : IDisposable
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);
    private readonly SemaphoreSlim _load = new(1, 1);
    private readonly ConcurrentDictionary<string, Guid> _tenants = new(StringComparer.Ordinal);
    private volatile Snapshot? _snapshot;

    public sealed record Snapshot(
        IReadOnlyDictionary<string, Meter> Meters, ILookup<string, Meter> MetersByType, IReadOnlyDictionary<string, Plan> Plans, DateTimeOffset LoadedAt);

    public async Task<Snapshot> GetAsync(CancellationToken cancellationToken = default)
    {
        var current = _snapshot;
        if (current is not null && time.GetUtcNow() - current.LoadedAt < MaxAge)
        {
            return current;
        }

        return await ReloadAsync(cancellationToken);
    }

    public async Task<Snapshot> ReloadAsync(CancellationToken cancellationToken = default)
    {
        await _load.WaitAsync(cancellationToken);
        try
        {
            if (_snapshot is null)
            {
                await db.WriteAsync(SeedAsync, cancellationToken);
            }

            var (meters, plans) = await db.ReadAsync(async c => (await ReadMetersAsync(c, null), await ReadPlansAsync(c, null)), cancellationToken);
            var snapshot = new Snapshot(
                meters.ToDictionary(m => m.Key, StringComparer.Ordinal),
                meters.ToLookup(m => m.EventType, StringComparer.Ordinal),
                plans.ToDictionary(p => p.Id, StringComparer.Ordinal),
                time.GetUtcNow());
            _snapshot = snapshot;
            return snapshot;
        }
        finally
        {
            _load.Release();
        }
    }

    /// <summary>The tenant id for a subject already resolved once, without a query.</summary>
    public bool TryResolveCached(string subject, out Guid tenantId) => _tenants.TryGetValue(subject, out tenantId);

    /// <summary>The tenant id for a subject (tenant id or slug), or null when no such tenant exists.</summary>
    public async Task<Guid?> ResolveTenantAsync(string subject, CancellationToken cancellationToken = default)
    {
        if (_tenants.TryGetValue(subject, out var known))
        {
            return known;
        }

        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, subject), cancellationToken);
        if (tenant is null)
        {
            return null;
        }

        // Slugs are never reused (offboarded tenants keep theirs), so the mapping never goes stale.
        if (_tenants.Count < 100_000)
        {
            _tenants[subject] = tenant.Id;
        }

        return tenant.Id;
    }

    public void Dispose() => _load.Dispose();

    internal static async Task<List<Meter>> ReadMetersAsync(DbConnection c, DbTransaction? tx) =>
        (await c.QueryAsync("SELECT definition FROM meters ORDER BY key", tx, r => r.GetString(0)))
        .Select(s => JsonSerializer.Deserialize<Meter>(s, Json)!).ToList();

    internal static async Task<List<Plan>> ReadPlansAsync(DbConnection c, DbTransaction? tx) =>
        (await c.QueryAsync("SELECT definition, version FROM plans ORDER BY id", tx, r => (Json: r.GetString(0), Version: r.GetInt64(1))))
        .Select(row => JsonSerializer.Deserialize<Plan>(row.Json, Json)! with { Version = row.Version }).ToList();

    internal static async Task<Plan?> ReadPlanAsync(DbConnection c, DbTransaction? tx, string id) =>
        (await c.QueryAsync("SELECT definition, version FROM plans WHERE id = @id", tx, r => (Json: r.GetString(0), Version: r.GetInt64(1)), ("@id", id)))
        .Select(row => JsonSerializer.Deserialize<Plan>(row.Json, Json)! with { Version = row.Version }).SingleOrDefault();

    private async Task SeedAsync(DbConnection c, DbTransaction tx)
    {
        var now = time.GetUtcNow();
        foreach (var meter in Aggregations.BuiltIn)
        {
            await MeterStore.InsertAsync(c, tx, meter, now);
        }

        foreach (var plan in DefaultPlans.All)
        {
            await c.ExecuteAsync(
                "INSERT INTO plans (id, definition, version, created_at, updated_at) VALUES (@id, @def, 1, @now, @now) ON CONFLICT (id) DO NOTHING",
                tx, ("@id", plan.Id), ("@def", JsonSerializer.Serialize(plan with { Version = 0 }, Json)), ("@now", now));
        }
    }
}
