using System.Data.Common;
using System.IO.Compression;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.Data;
using Tenantry.Data.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// Tenant databases on SQLite: pool tenants are rows carrying <c>tenant_id</c> in one shared file;
/// bridge and silo tenants get a file of their own (SQLite has no schemas or servers).
/// </summary>
internal sealed class SqliteTenantDatabaseProvider : ITenantDatabaseProvider, IDisposable
{
    private const string PoolSchema = """
        CREATE TABLE IF NOT EXISTS tenants (
            tenant_id TEXT PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL
        );
        """;

    private const string DedicatedSchema = """
        CREATE TABLE IF NOT EXISTS tenant_info (
            tenant_id TEXT PRIMARY KEY,
            slug TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """;

    private readonly string _root;
    private readonly TimeProvider _time;
    private readonly Lazy<SqliteDatabase> _pool;
    private readonly TenantSchema _schema;
    private readonly SemaphoreSlim _poolMigration = new(1, 1);
    private bool _poolMigrated;

    public SqliteTenantDatabaseProvider(IOptions<TenantryOptions> options, TimeProvider time, TenantSchema schema)
    {
        _root = Path.Combine(options.Value.DataPath, "databases");
        _time = time;
        _schema = schema;
        _pool = new Lazy<SqliteDatabase>(() => new SqliteDatabase(Path.Combine(_root, "pool.db"), PoolSchema));

        // Scratch files outlive their use only when the process died mid-check; none is in use yet.
        if (Directory.Exists(ScratchFolder))
        {
            Directory.Delete(ScratchFolder, recursive: true);
        }
    }

    private string ScratchFolder => Path.Combine(_root, "scratch");

    public async Task<JsonObject> CreateAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        if (tenant.Isolation == IsolationModel.Pool)
        {
            await _pool.Value.WriteAsync(
                async (c, tx) =>
                {
                    var owner = await c.ScalarAsync("SELECT tenant_id FROM tenants WHERE slug = @slug", tx, ("@slug", tenant.Slug));
                    if (owner is string id && id != tenant.Id.ToString())
                    {
                        throw new PermanentStepException($"The pool already holds another tenant with slug '{tenant.Slug}'.");
                    }

                    await c.ExecuteAsync(
                        "INSERT INTO tenants (tenant_id, slug, created_at) VALUES (@id, @slug, @now) ON CONFLICT (tenant_id) DO NOTHING",
                        tx, ("@id", tenant.Id), ("@slug", tenant.Slug), ("@now", _time.GetUtcNow()));
                },
                cancellationToken);
            await MigratePoolOnceAsync(cancellationToken);
            return new JsonObject { ["engine"] = "sqlite", ["model"] = "pool", ["file"] = _pool.Value.Path, ["tenantKey"] = "tenant_id" };
        }

        var path = DedicatedPath(tenant);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await using (var c = await OpenDedicatedAsync(path, cancellationToken))
        {
            await using var tx = await c.BeginTransactionAsync(cancellationToken);
            await c.ExecuteAsync(DedicatedSchema, tx);
            var owner = await c.ScalarAsync("SELECT tenant_id FROM tenant_info LIMIT 1", tx);
            if (owner is string id && id != tenant.Id.ToString())
            {
                throw new PermanentStepException($"The database file for '{tenant.Slug}' belongs to another tenant ({id}).");
            }

            await c.ExecuteAsync(
                "INSERT INTO tenant_info (tenant_id, slug, created_at) VALUES (@id, @slug, @now) ON CONFLICT (tenant_id) DO NOTHING",
                tx, ("@id", tenant.Id), ("@slug", tenant.Slug), ("@now", _time.GetUtcNow()));
            await tx.CommitAsync(cancellationToken);
        }

        await MigrateOrThrowAsync(MigrationTarget.SqliteDedicated(tenant.Slug, tenant.Isolation, path) with { TenantId = tenant.Id }, cancellationToken);
        return new JsonObject { ["engine"] = "sqlite", ["model"] = tenant.Isolation.ToWire(), ["file"] = path };
    }

    public Task<TenantDataContext?> ConnectAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        TenantDataTarget? target = tenant.Isolation == IsolationModel.Pool
            ? new SqlitePoolTarget(_pool.Value.Path)
            : File.Exists(DedicatedPath(tenant)) ? new SqliteFileTarget(DedicatedPath(tenant)) : null;
        return Task.FromResult(target is null ? null : new TenantDataContext { TenantId = tenant.Id, Slug = tenant.Slug, Isolation = tenant.Isolation, Target = target });
    }

    public async Task<MigrationReport> MigrateAsync(IReadOnlyList<TenantRef> tenants, CancellationToken cancellationToken)
    {
        var targets = new List<MigrationTarget> { MigrationTarget.SqlitePool(_pool.Value.Path) };
        targets.AddRange(tenants.Where(t => t.Isolation != IsolationModel.Pool).Select(DedicatedTarget).OfType<MigrationTarget>());
        return await new TenantMigrationRunner(_schema).RunAsync(targets, cancellationToken);
    }

    public Task<MigrationTarget?> MigrationTargetAsync(TenantRef tenant, CancellationToken cancellationToken) =>
        Task.FromResult(tenant.Isolation == IsolationModel.Pool ? MigrationTarget.SqlitePool(_pool.Value.Path) : DedicatedTarget(tenant));

    public MigrationTarget ScratchTarget()
    {
        Directory.CreateDirectory(ScratchFolder);
        var path = Path.Combine(ScratchFolder, Guid.NewGuid().ToString("N") + ".db");
        OwnerOnlyFile.Ensure(path);
        return MigrationTarget.SqlitePool(path);
    }

    private MigrationTarget? DedicatedTarget(TenantRef tenant) =>
        File.Exists(DedicatedPath(tenant)) ? MigrationTarget.SqliteDedicated(tenant.Slug, tenant.Isolation, DedicatedPath(tenant)) with { TenantId = tenant.Id } : null;

    private async Task MigratePoolOnceAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _poolMigrated))
        {
            return;
        }

        await _poolMigration.WaitAsync(cancellationToken);
        try
        {
            if (!_poolMigrated)
            {
                await MigrateOrThrowAsync(MigrationTarget.SqlitePool(_pool.Value.Path), cancellationToken);
                Volatile.Write(ref _poolMigrated, true);
            }
        }
        finally
        {
            _poolMigration.Release();
        }
    }

    private async Task MigrateOrThrowAsync(MigrationTarget target, CancellationToken cancellationToken)
    {
        var report = await new TenantMigrationRunner(_schema).RunAsync([target], cancellationToken);
        if (report.Failed.FirstOrDefault() is { } failed)
        {
            throw new InvalidOperationException($"Migrating {failed.Target} failed at version {failed.FailedVersion}: {failed.Error}");
        }
    }

    public async Task ExportAsync(TenantRef tenant, ZipArchive archive, CancellationToken cancellationToken)
    {
        if (tenant.Isolation == IsolationModel.Pool)
        {
            await using var c = await _pool.Value.OpenAsync(cancellationToken);
            foreach (var table in await TenantTablesAsync(c))
            {
                await ExportTableAsync(c, table, archive, tenant.Id, cancellationToken);
            }

            return;
        }

        var path = DedicatedPath(tenant);
        if (!File.Exists(path))
        {
            return;
        }

        await using (var c = await OpenDedicatedAsync(path, cancellationToken))
        {
            foreach (var table in await TablesAsync(c))
            {
                await ExportTableAsync(c, table, archive, null, cancellationToken);
            }
        }
    }

    public async Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        if (tenant.Isolation == IsolationModel.Pool)
        {
            await _pool.Value.WriteAsync(
                async (c, tx) =>
                {
                    foreach (var table in await TenantTablesAsync(c, tx))
                    {
                        // Table names come from sqlite_master, quoted; the tenant id is a parameter.
                        await c.ExecuteAsync($"DELETE FROM {Quote(table)} WHERE tenant_id = @id", tx, ("@id", tenant.Id));
                    }
                },
                cancellationToken);
            return;
        }

        SqliteConnection.ClearAllPools();
        var path = DedicatedPath(tenant);
        foreach (var file in new[] { path, path + "-wal", path + "-shm", path + "-journal" })
        {
            File.Delete(file);
        }
    }

    public Task<TenantDataPlace?> PlaceAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var path = tenant.Isolation == IsolationModel.Pool ? _pool.Value.Path : DedicatedPath(tenant);
        return Task.FromResult(File.Exists(path)
            ? new TenantDataPlace("sqlite", tenant.Isolation == IsolationModel.Pool, null, path, async ct => await OpenDedicatedAsync(path, ct))
            : null);
    }

    public Task DropPlaceAsync(TenantRef tenant, CancellationToken cancellationToken) => DeleteAsync(tenant, cancellationToken);

    public void Dispose()
    {
        _poolMigration.Dispose();
        if (_pool.IsValueCreated)
        {
            _pool.Value.Dispose();
        }
    }

    private string DedicatedPath(TenantRef tenant)
    {
        var folder = tenant.Isolation == IsolationModel.Silo ? "silo" : "bridge";
        var path = Path.GetFullPath(Path.Combine(_root, folder, tenant.Slug + ".db"));
        if (!path.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new PermanentStepException("The tenant's database path resolves outside the database root.");
        }

        return path;
    }

    private static async Task<SqliteConnection> OpenDedicatedAsync(string path, CancellationToken cancellationToken)
    {
        OwnerOnlyFile.Ensure(path);
        var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate }.ToString());
        await c.OpenAsync(cancellationToken);
        await c.ExecuteAsync("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;", null);
        return c;
    }

    private static async Task<List<string>> TablesAsync(DbConnection c, DbTransaction? tx = null) => await c.QueryAsync(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", tx, r => r.GetString(0));

    private static async Task<List<string>> TenantTablesAsync(DbConnection c, DbTransaction? tx = null)
    {
        var result = new List<string>();
        foreach (var table in await TablesAsync(c, tx))
        {
            var hasTenantColumn = await c.ScalarAsync(
                "SELECT 1 FROM pragma_table_info(@table) WHERE lower(name) = 'tenant_id'", tx, ("@table", table));
            if (hasTenantColumn is not null)
            {
                result.Add(table);
            }
        }

        return result;
    }

    private static async Task ExportTableAsync(DbConnection c, string table, ZipArchive archive, Guid? tenantId, CancellationToken cancellationToken)
    {
        var sql = tenantId is null ? $"SELECT * FROM {Quote(table)}" : $"SELECT * FROM {Quote(table)} WHERE tenant_id = @id";
        await using var command = c.Command(sql, null, ("@id", tenantId));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await using var writer = ExportRows.Entry(archive, table);
        while (await reader.ReadAsync(cancellationToken))
        {
            await ExportRows.WriteAsync(writer, reader);
        }
    }

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}

public static class SqliteTenantDatabasesExtensions
{
    /// <summary>Tenant databases on SQLite files in the data dir (the embedded default).</summary>
    public static TenantryBuilder AddSqliteTenantDatabases(this TenantryBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<SqliteTenantDatabaseProvider>();
        return builder;
    }
}
