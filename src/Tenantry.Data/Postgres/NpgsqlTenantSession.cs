using System.Data;
using System.Data.Common;
using Npgsql;

namespace Tenantry.Data.Postgres;

/// <summary>
/// A session on PostgreSQL. For a pool tenant the first command travels in one batch behind
/// <c>SELECT set_config('app.tenant_id', $1, true)</c>: the setting is transaction-local, so it
/// ends with the transaction and can never leak to the next user of the pooled connection, and
/// it costs no extra round trip (Npgsql also sends the deferred BEGIN in the same write).
/// Bridge and silo sessions connect as the tenant's own role and need no setting.
/// </summary>
internal sealed class NpgsqlTenantSession : TenantSession
{
    internal const string SetTenantSql = "SELECT set_config('app.tenant_id', $1, true)";

    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;
    private readonly string? _poolTenant;
    private bool _scoped;

    private NpgsqlTenantSession(TenantDataContext tenant, NpgsqlConnection connection, NpgsqlTransaction transaction, bool pool)
        : base(tenant)
    {
        _connection = connection;
        _transaction = transaction;
        _poolTenant = pool ? tenant.TenantId.ToString() : null;
        _scoped = !pool;
    }

    public override DbTransaction Transaction => _transaction;

    public static async Task<NpgsqlTenantSession> OpenAsync(NpgsqlDataSource source, TenantDataContext tenant, bool pool, CancellationToken cancellationToken)
    {
        var connection = await source.OpenConnectionAsync(cancellationToken);
        try
        {
            // Npgsql defers BEGIN to the first command, so opening costs no round trip.
            var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);
            return new NpgsqlTenantSession(tenant, connection, transaction, pool);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public override async Task<int> ExecuteAsync(string sql, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default)
    {
        await using var batch = Batch(sql, parameters, out var command);
        await batch.ExecuteNonQueryAsync(cancellationToken);
        _scoped = true;
        return command.RecordsAffected;
    }

    public override async Task<object?> ScalarAsync(string sql, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default)
    {
        var skip = !_scoped;
        await using var batch = Batch(sql, parameters, out _);
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        // Skip set_config's result; a statement that returns no rows leaves no result set behind it.
        var hasRows = !skip || await reader.NextResultAsync(cancellationToken);
        var value = hasRows && await reader.ReadAsync(cancellationToken) ? reader.GetValue(0) : null;
        _scoped = true;
        return value is DBNull ? null : value;
    }

    public override async Task<List<T>> QueryAsync<T>(string sql, Func<DbDataReader, T> map, IReadOnlyList<(string Name, object? Value)>? parameters = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(map);
        var skip = !_scoped;
        await using var batch = Batch(sql, parameters, out _);
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
        var hasRows = !skip || await reader.NextResultAsync(cancellationToken);
        var rows = new List<T>();
        while (hasRows && await reader.ReadAsync(cancellationToken))
        {
            rows.Add(map(reader));
        }

        _scoped = true;
        return rows;
    }

    public override async Task<DbConnection> GetScopedConnectionAsync(CancellationToken cancellationToken = default)
    {
        if (!_scoped)
        {
            await using var command = new NpgsqlCommand(SetTenantSql, _connection, _transaction);
            command.Parameters.Add(new NpgsqlParameter { Value = _poolTenant });
            await command.ExecuteNonQueryAsync(cancellationToken);
            _scoped = true;
        }

        return _connection;
    }

    private protected override ValueTask ReleaseConnectionAsync() => _connection.DisposeAsync();

    private NpgsqlBatch Batch(string sql, IReadOnlyList<(string Name, object? Value)>? parameters, out NpgsqlBatchCommand command)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sql);
        ObjectDisposedException.ThrowIf(Disposed, this);
        var batch = new NpgsqlBatch(_connection, _transaction);
        if (!_scoped)
        {
            var set = new NpgsqlBatchCommand(SetTenantSql);
            set.Parameters.Add(new NpgsqlParameter { Value = _poolTenant });
            batch.BatchCommands.Add(set);
        }

        command = new NpgsqlBatchCommand(sql);
        if (parameters is not null)
        {
            foreach (var (name, value) in parameters)
            {
                command.Parameters.Add(new NpgsqlParameter(name, value ?? DBNull.Value));
            }
        }

        batch.BatchCommands.Add(command);
        return batch;
    }
}
