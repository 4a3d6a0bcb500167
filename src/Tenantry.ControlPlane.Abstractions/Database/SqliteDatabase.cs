using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Tenantry.ControlPlane.Database;

/// <summary>
/// One SQLite file with WAL and full sync, so an acknowledged commit survives a crash.
/// Writers are serialised in process: the data dir is locked to one host, and queuing on a
/// semaphore is cheaper and fairer than SQLite's busy-retry.
/// </summary>
public sealed class SqliteDatabase : IControlPlaneDatabase, IDisposable
{
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly string _connectionString;

    /// <param name="path">The database file; created 0600 when missing.</param>
    /// <param name="schema">Statements that create what is missing (<c>CREATE … IF NOT EXISTS</c>).</param>
    /// <param name="addedColumns">Columns added to existing tables since they were first created; added to a file made before them.</param>
    public SqliteDatabase(string path, string schema, IReadOnlyList<(string Table, string Column, string Definition)>? addedColumns = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        OwnerOnlyFile.Ensure(path);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();

        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode=WAL;" + schema;
        command.ExecuteNonQuery();
        foreach (var (table, column, definition) in addedColumns ?? [])
        {
            using var exists = connection.CreateCommand();
            exists.CommandText = "SELECT count(*) FROM pragma_table_info(@table) WHERE name = @column";
            exists.Parameters.AddWithValue("@table", table);
            exists.Parameters.AddWithValue("@column", column);
            if (Convert.ToInt64(exists.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 0)
            {
                // Names and definitions are the schema's own constants, never input.
                using var add = connection.CreateCommand();
                add.CommandText = $"ALTER TABLE \"{table}\" ADD COLUMN \"{column}\" {definition}";
                add.ExecuteNonQuery();
            }
        }
    }

    public string Path { get; }

    public string Engine => "sqlite";

    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=30000;";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    public async Task<T> ReadAsync<T>(Func<DbConnection, Task<T>> read, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return await read(connection);
    }

    /// <summary>Runs <paramref name="write"/> in one immediate transaction; commits when it returns.</summary>
    public async Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken = default)
    {
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            await using var connection = await OpenAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var result = await write(connection, transaction);
            await transaction.CommitAsync(CancellationToken.None);
            return result;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    public Task WriteAsync(Func<DbConnection, DbTransaction, Task> write, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>(async (c, t) => { await write(c, t); return true; }, cancellationToken);

    public Task<T> WriteSharedAsync<T>(Func<DbConnection, DbTransaction, Task<T>> write, CancellationToken cancellationToken = default) =>
        WriteAsync(write, cancellationToken);

    public void Dispose() => _writeGate.Dispose();
}

public static class SqliteStoreExtensions
{
    /// <summary>The control-plane store engine on one SQLite file (the embedded default).</summary>
    public static TenantryBuilder AddSqliteStore(
        this TenantryBuilder builder, Func<IServiceProvider, string> path, string schema, IReadOnlyList<(string Table, string Column, string Definition)>? addedColumns = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(path);
        builder.Services.TryAddSingleton(sp => new SqliteDatabase(path(sp), schema, addedColumns));
        return builder;
    }
}
