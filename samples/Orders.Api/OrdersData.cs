using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Tenantry;
using Tenantry.AspNetCore;
using Tenantry.Data;
using Tenantry.Data.Migrations;

namespace Orders.Api;

/// <summary>
/// Where a tenant's orders live on the embedded default: pool tenants share
/// <c>databases/pool.db</c> (enforced tenant filter), bridge and silo tenants have their own file.
/// Each target is migrated once, on its first request.
/// </summary>
internal sealed class OrdersData(ITenantDataSource data, IOptions<TenantryAppOptions> options, ILogger<TenantMigrationRunner> logger)
{
    private readonly ConcurrentDictionary<string, Lazy<Task>> _migrated = new(StringComparer.Ordinal);
    private readonly string _dataDir = options.Value.DataPath;

    public async Task<TenantSession> OpenAsync(ITenantContext tenant, CancellationToken cancellationToken)
    {
        var (target, migration) = tenant.Isolation == IsolationModel.Pool
            ? ((TenantDataTarget)new SqlitePoolTarget(PoolFile), MigrationTarget.SqlitePool(PoolFile))
            : Dedicated(tenant);
        var path = migration.Connection;
        var ready = _migrated.GetOrAdd(path, _ => new Lazy<Task>(() => MigrateAsync(migration)));
        try
        {
            await ready.Value.WaitAsync(cancellationToken);
        }
        catch (InvalidOperationException)
        {
            _migrated.TryRemove(path, out _);
            throw;
        }

        return await data.OpenSessionAsync(
            new TenantDataContext { TenantId = tenant.TenantId, Slug = tenant.Slug, Isolation = tenant.Isolation, Target = target },
            cancellationToken);
    }

    private string PoolFile => Path.Combine(_dataDir, "databases", "pool.db");

    private (TenantDataTarget, MigrationTarget) Dedicated(ITenantContext tenant)
    {
        var target = SqliteFileTarget.ForEmbedded(_dataDir, tenant.Isolation, tenant.Slug);
        return (target, MigrationTarget.SqliteDedicated(tenant.Slug, tenant.Isolation, target.FilePath));
    }

    private async Task MigrateAsync(MigrationTarget target)
    {
        // The tenant's database file is made by onboarding (create-database); a missing one is an error, not something to create here.
        var report = await new TenantMigrationRunner(OrdersSchema.Schema, logger: logger).RunAsync([target]);
        if (!report.Succeeded)
        {
            throw new InvalidOperationException($"Migrating {target} failed: {string.Join("; ", report.Failed.Select(f => f.Error))}");
        }
    }
}
