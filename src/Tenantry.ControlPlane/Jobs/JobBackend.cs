using System.Data.Common;
using Microsoft.Extensions.Logging;
using Npgsql;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>
/// Where the queues' rows live and how their transactions run: the control-plane store's engine.
/// On SQLite a job transaction is an ordinary store write (one at a time in process); on
/// PostgreSQL it runs on its own connection without the store's write lock, so lessees on every
/// replica work beside each other and <c>FOR UPDATE SKIP LOCKED</c> keeps them off each other's rows.
/// </summary>
internal abstract class JobBackend
{
    public abstract string Engine { get; }

    /// <summary>Appended to a SELECT of due jobs: rows another lessee holds are passed over, not waited for.</summary>
    public abstract string SkipLocked { get; }

    /// <summary>Appended to a SELECT of a queue row: lessees of one tenant count its leases one at a time.</summary>
    public abstract string LockRow { get; }

    public abstract Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken);

    /// <summary>A condition that <c>id</c> is one of the ids <paramref name="subquery"/> selects, in the form the engine reaches by the id index.</summary>
    public virtual string IdIn(string subquery) => $"id IN ({subquery})";

    public abstract Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> read, CancellationToken cancellationToken);

    /// <summary>Wakes long-polling lessees (of every replica) once the transaction commits.</summary>
    public virtual Task NotifyAsync(DbConnection connection, DbTransaction transaction) => Task.CompletedTask;

    /// <summary>
    /// Makes this transaction the tenant's only lessee until it ends, so its count of leases holds
    /// (the concurrency cap). Lessees take tenants in id order, so two never wait on each other in a
    /// circle; enqueues and acks do not take it, so they never wait for a lease.
    /// </summary>
    public virtual Task LeaseTenantAsync(DbConnection connection, DbTransaction transaction, Guid tenantId) => Task.CompletedTask;
}

internal sealed class SqliteJobBackend(SqliteDatabase db) : JobBackend
{
    public override string Engine => "sqlite";

    public override string SkipLocked => "";

    public override string LockRow => "";

    public override Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken) => db.WriteAsync(write, cancellationToken);

    public override Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> read, CancellationToken cancellationToken) => db.ReadAsync(read, cancellationToken);
}

internal sealed class PostgresJobBackend : JobBackend, IAsyncDisposable
{
    public const string Channel = "tenantry_jobs";

    private readonly NpgsqlDataSource _source;

    /// <param name="connectionString">The control-plane store's connection (its tables exist: the store made them at start).</param>
    public PostgresJobBackend(string connectionString)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        _source = NpgsqlDataSource.Create(connectionString);
    }

    public override string Engine => "postgresql";

    public override string SkipLocked => " FOR UPDATE SKIP LOCKED";

    public override string LockRow => " FOR UPDATE";

    /// <summary>The ids as an array computed once: the planner then takes each row by the id index, never a scan of the table for a semi-join.</summary>
    public override string IdIn(string subquery) => $"id = ANY(ARRAY({subquery}))";

    public NpgsqlDataSource Source => _source;

    public override async Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken)
    {
        await using var connection = await _source.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var result = await write(connection, transaction);
        await transaction.CommitAsync(CancellationToken.None);
        return result;
    }

    public override async Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> read, CancellationToken cancellationToken)
    {
        await using var connection = await _source.OpenConnectionAsync(cancellationToken);
        return await read(connection);
    }

    public override Task NotifyAsync(DbConnection connection, DbTransaction transaction) =>
        connection.ExecuteAsync($"SELECT pg_notify('{Channel}', '')", transaction);

    /// <summary>A transaction-scoped advisory lock in the jobs' key space (two tenants sharing a hash only take turns).</summary>
    public override Task LeaseTenantAsync(DbConnection connection, DbTransaction transaction, Guid tenantId) =>
        connection.ExecuteAsync("SELECT pg_advisory_xact_lock(@space, @key)", transaction, ("@space", LockSpace), ("@key", BitConverter.ToInt32(tenantId.ToByteArray(), 0) ^ BitConverter.ToInt32(tenantId.ToByteArray(), 12)));

    /// <summary>"jobs" in ASCII: the advisory lock space of tenant leases.</summary>
    private const int LockSpace = 0x6A6F6273;

    public ValueTask DisposeAsync() => _source.DisposeAsync();
}

/// <summary>Wakes lessees that wait for work: an enqueue in this process, or (PostgreSQL) a NOTIFY from any replica.</summary>
internal sealed class JobSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Next => Volatile.Read(ref _next).Task;

    public void Pulse() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
}

/// <summary>On PostgreSQL: pulses the signal for each notification on the jobs channel.</summary>
internal sealed class PostgresJobListener(JobBackend backend, JobSignal signal, ILogger<PostgresJobListener> logger)
    : StoreChannelListener(PostgresJobBackend.Channel, logger)
{
    protected override NpgsqlDataSource? Source => (backend as PostgresJobBackend)?.Source;

    protected override void OnNotification(string payload) => signal.Pulse();

    // Work may have come in while no one listened.
    protected override void OnListening() => signal.Pulse();
}
