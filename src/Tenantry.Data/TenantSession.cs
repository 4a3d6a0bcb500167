using System.Data.Common;

namespace Tenantry.Data;

/// <summary>
/// An open connection and transaction that see only one tenant's data. Everything runs inside the
/// transaction; <see cref="CommitAsync"/> makes it durable, disposing without committing rolls
/// back. Values always go in as parameters (<c>@name</c> placeholders, on every engine).
/// </summary>
public abstract class TenantSession : IAsyncDisposable
{
    private protected TenantSession(TenantDataContext tenant) => Tenant = tenant;

    /// <summary>The tenant whose data this session sees.</summary>
    public TenantDataContext Tenant { get; }

    /// <summary>The transaction of this session, for commands built on <see cref="GetScopedConnectionAsync"/>.</summary>
    public abstract DbTransaction Transaction { get; }

    /// <summary>Runs a command; returns the rows it inserted, updated or deleted.</summary>
    public abstract Task<int> ExecuteAsync(string sql, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default);

    /// <summary>The first column of the first row, or null.</summary>
    public abstract Task<object?> ScalarAsync(string sql, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default);

    /// <summary>The rows of a query, each turned into a <typeparamref name="T"/> by <paramref name="map"/>.</summary>
    public abstract Task<List<T>> QueryAsync<T>(string sql, Func<DbDataReader, T> map, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// The connection, with the tenant scope already in force (on the PostgreSQL pool this costs a
    /// round trip when no command ran yet), for code that builds its own ADO.NET commands (set
    /// <c>command.Transaction = session.Transaction</c>).
    /// </summary>
    public abstract Task<DbConnection> GetScopedConnectionAsync(CancellationToken cancellationToken = default);

    /// <summary>Commits the transaction this session holds: what it wrote is durable.</summary>
    public Task CommitAsync(CancellationToken cancellationToken = default) => Transaction.CommitAsync(cancellationToken);

    /// <summary>Rolls back what was not committed, then gives the connection back; a second call does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Disposed)
        {
            return;
        }

        Disposed = true;
        await Transaction.DisposeAsync();
        await ReleaseConnectionAsync();
        GC.SuppressFinalize(this);
    }

    private protected bool Disposed { get; private set; }

    /// <summary>Closes the connection, or returns it to the pool it was leased from.</summary>
    private protected abstract ValueTask ReleaseConnectionAsync();
}

/// <summary>Hands out tenant-scoped sessions for every isolation model and engine.</summary>
public interface ITenantDataSource : IAsyncDisposable
{
    /// <summary>Opens a connection for <paramref name="tenant"/> and begins a transaction in which only its data is visible.</summary>
    Task<TenantSession> OpenSessionAsync(TenantDataContext tenant, CancellationToken cancellationToken = default);

    /// <summary>
    /// Opens a session for a request that only reads. On SQLite its transaction is deferred, so it takes
    /// no write lock: readers of a shared file neither wait for each other nor for a writer (WAL). A
    /// session that writes after all takes the lock at its first write. Elsewhere it is <see cref="OpenSessionAsync"/>.
    /// </summary>
    Task<TenantSession> OpenReadSessionAsync(TenantDataContext tenant, CancellationToken cancellationToken = default) =>
        OpenSessionAsync(tenant, cancellationToken);

    /// <summary>Closes the pooled connections kept for the tenant (before dropping its role or database, or after rotating its password).</summary>
    ValueTask ForgetAsync(TenantDataContext tenant);
}

/// <summary>Limits of the connection pools kept by <see cref="TenantDataSource"/>.</summary>
public sealed class TenantDataSourceOptions
{
    /// <summary>Connections to a shared pool database (all pool tenants share them); on SQLite, guarded pool-file connections kept idle for reuse.</summary>
    public int MaxPoolSize { get; set; } = 50;

    /// <summary>Connections kept per bridge or silo tenant (each has its own credentials, so its own pool).</summary>
    public int MaxPoolSizePerTenant { get; set; } = 5;

    /// <summary>An idle connection is closed after this long, so quiet tenants hold no server connections.</summary>
    public TimeSpan ConnectionIdleLifetime { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Statements used this often on a connection are prepared server-side (0 disables).</summary>
    public int MaxAutoPrepare { get; set; } = 32;

    /// <summary>The <c>application_name</c> PostgreSQL connections report (shown in <c>pg_stat_activity</c>).</summary>
    public string ApplicationName { get; set; } = "tenantry";

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPoolSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxPoolSizePerTenant, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxAutoPrepare);
        ArgumentOutOfRangeException.ThrowIfLessThan(ConnectionIdleLifetime, TimeSpan.FromSeconds(1));
    }
}
