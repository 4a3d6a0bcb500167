using System.Collections.Concurrent;
using Npgsql;
using Tenantry.Data.Postgres;
using Tenantry.Data.Sqlite;

namespace Tenantry.Data;

/// <summary>Creates the default <see cref="ITenantDataSource"/> (PostgreSQL and SQLite targets).</summary>
public static class TenantDataSource
{
    /// <summary>A data source for every target kind, with the pool limits of <paramref name="options"/> (the defaults when null).</summary>
    public static ITenantDataSource Create(TenantDataSourceOptions? options = null)
    {
        options ??= new TenantDataSourceOptions();
        options.Validate();
        return new DefaultTenantDataSource(options);
    }
}

/// <summary>
/// Keeps one Npgsql data source (connection pool) per distinct target: one for a shared pool
/// database, one per bridge or silo tenant (each logs in with its own role). A pool data source
/// refuses to serve a role that would bypass row-level security.
/// </summary>
internal sealed class DefaultTenantDataSource(TenantDataSourceOptions options) : ITenantDataSource
{
    // Keyed by the target record (value equality), so a session does not rebuild a connection string.
    private readonly ConcurrentDictionary<TenantDataTarget, Lazy<PoolEntry>> _sources = new();

    // Guarded connections to each shared SQLite pool file, reused across sessions.
    private readonly ConcurrentDictionary<string, SqliteGuardedPool> _sqlitePools = new(StringComparer.Ordinal);
    private int _disposed;

    public Task<TenantSession> OpenSessionAsync(TenantDataContext tenant, CancellationToken cancellationToken = default) =>
        OpenAsync(tenant, readOnly: false, cancellationToken);

    public Task<TenantSession> OpenReadSessionAsync(TenantDataContext tenant, CancellationToken cancellationToken = default) =>
        OpenAsync(tenant, readOnly: true, cancellationToken);

    private async Task<TenantSession> OpenAsync(TenantDataContext tenant, bool readOnly, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        tenant.Validate();
        switch (tenant.Target)
        {
            case SqlitePoolTarget or SqliteFileTarget:
                return await SqliteTenantSession.OpenAsync(tenant, deferred: readOnly, SqlitePool, cancellationToken);
            default:
                var entry = Entry(tenant.Target);
                if (entry.Pool)
                {
                    await entry.EnsureSafeAsync(cancellationToken);
                }

                return await NpgsqlTenantSession.OpenAsync(entry.Source, tenant, entry.Pool, cancellationToken);
        }
    }

    public async ValueTask ForgetAsync(TenantDataContext tenant)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        if (tenant.Target is SqlitePoolTarget or SqliteFileTarget)
        {
            return;
        }

        if (_sources.TryRemove(tenant.Target, out var entry) && entry.IsValueCreated)
        {
            await entry.Value.Source.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (var pool in _sqlitePools.Values)
        {
            pool.Dispose();
        }

        foreach (var key in _sources.Keys)
        {
            if (_sources.TryRemove(key, out var entry) && entry.IsValueCreated)
            {
                await entry.Value.Source.DisposeAsync();
            }
        }
    }

    private SqliteGuardedPool SqlitePool(string path) =>
        _sqlitePools.GetOrAdd(path, p => new SqliteGuardedPool(SqliteTenantSession.ConnectionString(p, pooling: false), options.MaxPoolSize));

    private PoolEntry Entry(TenantDataTarget target) =>
        _sources.GetOrAdd(
            target,
            t => new Lazy<PoolEntry>(() => new PoolEntry(NpgsqlDataSource.Create(ConnectionString(t)), t is PostgresPoolTarget))).Value;

    private string ConnectionString(TenantDataTarget target)
    {
        var builder = target switch
        {
            PostgresPoolTarget p => new NpgsqlConnectionStringBuilder(p.ConnectionString) { MaxPoolSize = options.MaxPoolSize },
            PostgresBridgeTarget b => Dedicated(b.Server.Builder(b.Database, b.Role, b.Password), b.Schema),
            PostgresSiloTarget s => Dedicated(s.Server.Builder(s.Database, s.Role, s.Password), null),
            _ => throw new ArgumentException($"Unsupported target {target.GetType().Name}.", nameof(target)),
        };
        builder.ApplicationName ??= options.ApplicationName;
        builder.ConnectionIdleLifetime = (int)options.ConnectionIdleLifetime.TotalSeconds;
        builder.MaxAutoPrepare = options.MaxAutoPrepare;
        builder.AutoPrepareMinUsages = 2;
        // Error details can quote another row's key values; they stay in the server log.
        builder.IncludeErrorDetail = false;
        return builder.ConnectionString;
    }

    private NpgsqlConnectionStringBuilder Dedicated(NpgsqlConnectionStringBuilder builder, string? schema)
    {
        builder.MaxPoolSize = options.MaxPoolSizePerTenant;
        builder.MinPoolSize = 0;
        if (schema is not null)
        {
            // The role's own search_path already points here; saying it again costs nothing (a startup parameter).
            builder.SearchPath = TenantDatabaseNames.Quote(TenantDatabaseNames.ValidateIdentifier(schema));
        }

        return builder;
    }

    private sealed class PoolEntry(NpgsqlDataSource source, bool pool)
    {
        private Task? _verified;

        public NpgsqlDataSource Source { get; } = source;

        public bool Pool { get; } = pool;

        public Task EnsureSafeAsync(CancellationToken cancellationToken)
        {
            var verified = _verified ??= VerifyAsync();
            if (verified.IsFaulted)
            {
                // Let a later call try again (the server may have been down), but never hand out a connection meanwhile.
                _verified = null;
            }

            return verified.WaitAsync(cancellationToken);
        }

        private async Task VerifyAsync()
        {
            await using var connection = await Source.OpenConnectionAsync();
            await using var command = new NpgsqlCommand(
                "SELECT r.rolsuper, r.rolbypassrls, current_setting('row_security') FROM pg_roles r WHERE r.rolname = current_user", connection);
            await using var reader = await command.ExecuteReaderAsync();
            if (!await reader.ReadAsync() || reader.GetBoolean(0) || reader.GetBoolean(1))
            {
                throw new InvalidOperationException(
                    "The pool connection logs in as a role that bypasses row-level security (SUPERUSER or BYPASSRLS). Use the pool's app role.");
            }
        }
    }
}
