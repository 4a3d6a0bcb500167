using System.Data.Common;
using Npgsql;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Tenantry.ControlPlane.Database;

/// <summary>
/// The control-plane store on PostgreSQL, shared by several host replicas. Each write takes a
/// transaction-scoped advisory lock, so checks and writes are serialised across replicas just as
/// the SQLite store serialises them in process, and the lock ends with the transaction.
/// <see cref="WriteSharedAsync"/> takes the same lock shared: such writes run beside each other,
/// never beside an ordinary one. A write whose client pauses mid-transaction loses its session after
/// <see cref="IdleWriteTimeoutMilliseconds"/>, so it cannot hold the lock for long.
/// </summary>
public sealed class PostgresDatabase : IControlPlaneDatabase, IAsyncDisposable, IDisposable
{
    private const long WriteLockKey = 0x54656e616e747279; // "Tenantry"

    /// <summary>
    /// How long a write transaction may sit idle (its client sending nothing) before the server ends its session,
    /// and with it the write lock: a replica that pauses mid-write (SIGSTOP, a stalled VM, a long GC) must not stop
    /// every other replica's writes. Shorter than the default operation lease (15 s), so the lock is free before
    /// another replica needs it to take the paused one's operations over; the paused replica's write is rolled back.
    /// </summary>
    public const int IdleWriteTimeoutMilliseconds = 10_000;
    private readonly NpgsqlDataSource _source;

    private PostgresDatabase(NpgsqlDataSource source) => _source = source;

    public string Engine => "postgresql";

    public static PostgresDatabase Open(string connectionString, string schema)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionString);
        var source = NpgsqlDataSource.Create(connectionString);
        using (var connection = source.OpenConnection())
        using (var transaction = connection.BeginTransaction())
        using (var command = connection.CreateCommand())
        {
            // Two replicas starting together must not both create the tables.
            command.Transaction = transaction;
            command.CommandText = $"SELECT pg_advisory_xact_lock({WriteLockKey});" + schema;
            command.ExecuteNonQuery();
            transaction.Commit();
        }

        return new PostgresDatabase(source);
    }

    public async Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> read, CancellationToken cancellationToken = default)
    {
        await using var connection = await _source.OpenConnectionAsync(cancellationToken);
        return await read(connection);
    }

    public Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken = default) =>
        WriteLockedAsync($"SELECT pg_advisory_xact_lock({WriteLockKey})", write, cancellationToken);

    public Task<T> WriteSharedAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken = default) =>
        WriteLockedAsync($"SELECT pg_advisory_xact_lock_shared({WriteLockKey})", write, cancellationToken);

    private async Task<T> WriteLockedAsync<T>(string takeLock, Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken)
    {
        await using var connection = await _source.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand($"SET LOCAL idle_in_transaction_session_timeout = {IdleWriteTimeoutMilliseconds}; {takeLock}", connection, transaction))
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        var result = await write(connection, transaction);
        await transaction.CommitAsync(CancellationToken.None);
        return result;
    }

    public Task WriteAsync(Func<DbConnection, DbTransaction, Task> write, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>(async (c, t) => { await write(c, t); return true; }, cancellationToken);

    public ValueTask DisposeAsync() => _source.DisposeAsync();

    public void Dispose() => _source.Dispose();
}

public static class PostgresStoreExtensions
{
    /// <summary>The control-plane store engine on a PostgreSQL database.</summary>
    public static TenantryBuilder AddPostgresStore(this TenantryBuilder builder, Func<IServiceProvider, string> connectionString, string schema)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connectionString);
        builder.Services.TryAddSingleton(sp => PostgresDatabase.Open(connectionString(sp), schema));
        return builder;
    }
}
