using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Tenantry.Data.Sqlite;

/// <summary>
/// Guarded connections to one shared pool file, kept for reuse. Making one costs a file open, a
/// schema read and the DDL of a view and three triggers per tenant table, far more than most
/// requests' own queries; a lease costs setting the tenant, registering the tenant function and
/// the authorizer again, and reading the schema version (a changed schema, e.g. a migration that
/// added a tenant table, retires the connection, so every tenant table always has its view).
/// A connection goes back only when its session left it clean: open, outside a transaction, and
/// with the tenant cleared; otherwise it is closed.
/// </summary>
internal sealed class SqliteGuardedPool(string connectionString, int maxIdle) : IDisposable
{
    private readonly ConcurrentQueue<Guarded> _idle = new();
    private int _idleCount;
    private int _disposed;

    /// <summary>A guarded connection showing <paramref name="tenantId"/>'s rows; give it back with <see cref="ReturnAsync"/>.</summary>
    public async Task<Guarded> RentAsync(string tenantId, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        while (_idle.TryDequeue(out var idle))
        {
            Interlocked.Decrement(ref _idleCount);
            if (Reusable(idle))
            {
                idle.Guard.Bind(idle.Connection);
                idle.Guard.Tenant = tenantId;
                return idle;
            }

            await idle.Connection.DisposeAsync();
        }

        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return new Guarded(connection, SqliteTenantGuard.InstallPool(connection, tenantId));
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Takes a connection back after its session (its transaction already ended), or closes it.</summary>
    public async ValueTask ReturnAsync(Guarded guarded)
    {
        guarded.Guard.Tenant = null;
        var clean = guarded.Connection.State == System.Data.ConnectionState.Open && raw.sqlite3_get_autocommit(guarded.Connection.Handle) != 0;
        if (clean && _disposed == 0)
        {
            if (Interlocked.Increment(ref _idleCount) <= maxIdle)
            {
                _idle.Enqueue(guarded);
                return;
            }

            Interlocked.Decrement(ref _idleCount);
        }

        await guarded.Connection.DisposeAsync();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        while (_idle.TryDequeue(out var idle))
        {
            idle.Connection.Dispose();
        }
    }

    private static bool Reusable(Guarded idle)
    {
        try
        {
            return idle.Connection.State == System.Data.ConnectionState.Open && idle.Guard.CurrentSchemaVersion(idle.Connection) == idle.Guard.SchemaVersion;
        }
        catch (SqliteException)
        {
            return false;
        }
    }

    /// <summary>A pool connection and its guard.</summary>
    public sealed record Guarded(SqliteConnection Connection, SqliteTenantGuard Guard);
}
