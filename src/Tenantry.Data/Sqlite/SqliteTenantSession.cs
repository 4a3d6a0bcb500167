using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Tenantry.Data.Sqlite;

/// <summary>
/// A session on SQLite: the shared pool file behind a <see cref="SqliteTenantGuard"/>, or a bridge
/// or silo tenant's own file. Guids bind as lowercase text, as the control plane stores them.
/// </summary>
internal sealed class SqliteTenantSession : TenantSession
{
    private readonly SqliteConnection _connection;
    private readonly SqliteTransaction _transaction;
    private readonly SqliteTenantGuard _guard;
    private readonly (SqliteGuardedPool Pool, SqliteGuardedPool.Guarded Lease)? _lease;

    private SqliteTenantSession(
        TenantDataContext tenant, SqliteConnection connection, SqliteTransaction transaction, SqliteTenantGuard guard, (SqliteGuardedPool, SqliteGuardedPool.Guarded)? lease = null)
        : base(tenant)
    {
        _connection = connection;
        _transaction = transaction;
        _guard = guard;
        _lease = lease;
    }

    public override DbTransaction Transaction => _transaction;

    /// <summary>Opens a session for <paramref name="tenant"/> on its SQLite target.</summary>
    /// <param name="tenant">The tenant and its pool or dedicated file.</param>
    /// <param name="deferred">
    /// Begin a deferred transaction (no lock until the first statement; readers never block each other)
    /// instead of an immediate one (the write lock at once, so a read-then-write cannot fail on a stale snapshot).
    /// </param>
    /// <param name="pools">The guarded connections of a pool file, by its path (made on first use).</param>
    /// <param name="cancellationToken">Cancels opening.</param>
    public static async Task<SqliteTenantSession> OpenAsync(
        TenantDataContext tenant, bool deferred, Func<string, SqliteGuardedPool> pools, CancellationToken cancellationToken)
    {
        var (path, pool) = tenant.Target switch
        {
            SqlitePoolTarget p => (p.FilePath, true),
            SqliteFileTarget f => (f.FilePath, false),
            _ => throw new ArgumentException("Not a SQLite target.", nameof(tenant)),
        };
        if (pool)
        {
            var guardedPool = pools(path);
            var lease = await guardedPool.RentAsync(tenant.TenantId.ToString(), cancellationToken);
            try
            {
                var transaction = lease.Connection.BeginTransaction(deferred);
                return new SqliteTenantSession(tenant, lease.Connection, transaction, lease.Guard, (guardedPool, lease));
            }
            catch
            {
                await guardedPool.ReturnAsync(lease);
                throw;
            }
        }

        var connection = new SqliteConnection(ConnectionString(path, pooling: true));
        try
        {
            await connection.OpenAsync(cancellationToken);
            var guard = SqliteTenantGuard.InstallDedicated(connection);
            var transaction = connection.BeginTransaction(deferred);
            return new SqliteTenantSession(tenant, connection, transaction, guard);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    internal static string ConnectionString(string path, bool pooling) => new SqliteConnectionStringBuilder
    {
        DataSource = path,
        Mode = SqliteOpenMode.ReadWrite,
        Pooling = pooling,
        ForeignKeys = true,
        DefaultTimeout = 30,
    }.ToString();

    public override async Task<int> ExecuteAsync(string sql, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default)
    {
        await using var command = Command(sql, parameters);
        if (!_guard.Pool)
        {
            return await command.ExecuteNonQueryAsync(cancellationToken);
        }

        // Writes through the guard's views happen in INSTEAD OF triggers, which sqlite3_changes() does not count.
        var before = raw.sqlite3_total_changes(_connection.Handle);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return raw.sqlite3_total_changes(_connection.Handle) - before;
    }

    public override async Task<object?> ScalarAsync(string sql, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default)
    {
        await using var command = Command(sql, parameters);
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DBNull ? null : value;
    }

    public override async Task<List<T>> QueryAsync<T>(string sql, Func<DbDataReader, T> map, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(map);
        await using var command = Command(sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<T>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(map(reader));
        }

        return rows;
    }

    public override Task<DbConnection> GetScopedConnectionAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Disposed, this);
        return Task.FromResult<DbConnection>(_connection);
    }

    private protected override async ValueTask ReleaseConnectionAsync()
    {
        if (_lease is { } lease)
        {
            await lease.Pool.ReturnAsync(lease.Lease);
        }
        else
        {
            await _connection.DisposeAsync();
        }

        GC.KeepAlive(_guard);
    }

    private SqliteCommand Command(string sql, IReadOnlyList<(string Name, object? Value)>? parameters)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sql);
        ObjectDisposedException.ThrowIf(Disposed, this);
        var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = _transaction;
        if (parameters is not null)
        {
            foreach (var (name, value) in parameters)
            {
                command.Parameters.AddWithValue(name, value switch
                {
                    null => DBNull.Value,
                    Guid g => g.ToString(),
                    DateTimeOffset d => d.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture),
                    _ => value,
                });
            }
        }

        return command;
    }
}
