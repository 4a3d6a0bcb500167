using System.Data.Common;
using Microsoft.Data.Sqlite;
using SQLitePCL;
using Tenantry.ControlPlane.Apps;
using Tenantry.Data;
using Tenantry.Data.Migrations;

namespace Tenantry.ControlPlane.AppMigrations;

/// <summary>
/// A release's migrations on a SQLite file: the shared pool file, or a bridge or silo tenant's own
/// file. Each migration runs in one <c>BEGIN IMMEDIATE</c> transaction with its ledger row: the
/// file's write lock is taken before the ledger is read, so two appliers (in one process or two)
/// take turns and the second finds the row. On the pool file the guard that tenant sessions go
/// through shadows every table with <c>tenant_id</c>; before a migration commits, the catalog must
/// show that every table it created has one and that no unique key lets one tenant probe another's.
/// </summary>
internal static class SqliteReleaseSql
{
    /// <summary>Applies the release's missing migrations to <paramref name="target"/>; stops at the first failure.</summary>
    /// <param name="limit">When set, every statement together must finish within it (the file is interrupted after).</param>
    public static async Task<TargetRun> ApplyAsync(MigrationTarget target, ReleaseRef release, TimeProvider time, TimeSpan? limit, CancellationToken cancellationToken)
    {
        var applied = new List<string>();
        var already = 0;
        ReleaseMigration? current = null;
        try
        {
            await using var connection = await OpenAsync(target.Connection, cancellationToken);
            using var deadline = limit is { } l ? new SqliteDeadline(connection, time, l) : null;
            await EnsureLedgersAsync(connection, target, cancellationToken);
            var recorded = new Dictionary<string, string>(StringComparer.Ordinal);
            await using (var read = Command(connection, null, $"SELECT id, checksum FROM {ReleaseLedgers.Migrations} WHERE app = @app", ("@app", release.App)))
            await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    recorded[reader.GetString(0)] = reader.GetString(1);
                }
            }

            foreach (var migration in release.Migrations)
            {
                current = migration;
                if (recorded.TryGetValue(migration.Id, out var checksum))
                {
                    EnsureSame(migration, checksum);
                    already++;
                    continue;
                }

                await using var transaction = connection.BeginTransaction(deferred: false);
                await using (var check = Command(connection, transaction, $"SELECT checksum FROM {ReleaseLedgers.Migrations} WHERE app = @app AND id = @id", ("@app", release.App), ("@id", migration.Id)))
                {
                    if (await check.ExecuteScalarAsync(cancellationToken) is string now)
                    {
                        EnsureSame(migration, now);
                        already++;
                        continue;
                    }
                }

                var pool = target.Isolation == IsolationModel.Pool;
                var before = pool ? await ObjectsAsync(connection, transaction, cancellationToken) : [];
                await using (var apply = Command(connection, transaction, migration.Sql))
                {
                    await apply.ExecuteNonQueryAsync(cancellationToken);
                }

                if (pool)
                {
                    await EnforcePoolRulesAsync(connection, transaction, before, cancellationToken);
                }

                await using (var record = Command(
                    connection, transaction,
                    $"INSERT INTO {ReleaseLedgers.Migrations} (app, id, checksum, release_version, applied_at) VALUES (@app, @id, @checksum, @version, @at)",
                    ("@app", release.App), ("@id", migration.Id), ("@checksum", migration.Checksum), ("@version", release.Version), ("@at", Timestamp(time))))
                {
                    await record.ExecuteNonQueryAsync(cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
                applied.Add(migration.Id);
            }

            return new TargetRun(applied, already, null, null);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new TargetRun(applied, already, current?.Id, ReleaseSqlFailure.From(e, current?.Sql, limit));
        }
    }

    /// <summary>Makes the ledgers the migrations and seeds are recorded in, when the file lacks them.</summary>
    public static async Task EnsureLedgersAsync(MigrationTarget target, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(target.Connection, cancellationToken);
        await EnsureLedgersAsync(connection, target, cancellationToken);
    }

    /// <summary>The time the ledgers record, as the control plane writes times on SQLite.</summary>
    public static string Timestamp(TimeProvider time) =>
        time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static async Task EnsureLedgersAsync(SqliteConnection connection, MigrationTarget target, CancellationToken cancellationToken)
    {
        // On the pool the seeds ledger carries tenant_id, so the guard shadows it like any tenant table.
        var seeds = target.Isolation == IsolationModel.Pool
            ? $"CREATE TABLE IF NOT EXISTS {ReleaseLedgers.Seeds} (tenant_id TEXT NOT NULL, app TEXT NOT NULL, release_version TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (tenant_id, app));"
            : $"CREATE TABLE IF NOT EXISTS {ReleaseLedgers.Seeds} (app TEXT PRIMARY KEY, release_version TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL);";
        await using var transaction = connection.BeginTransaction(deferred: false);
        await using (var create = Command(connection, transaction, $"""
            CREATE TABLE IF NOT EXISTS {ReleaseLedgers.Migrations} (
                app TEXT NOT NULL,
                id TEXT NOT NULL,
                checksum TEXT NOT NULL,
                release_version TEXT NOT NULL,
                applied_at TEXT NOT NULL,
                PRIMARY KEY (app, id)
            );
            {seeds}
            """))
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// The pool file's rules, read from the catalog inside the migration's transaction, for what the
    /// migration made: every table it created has <c>tenant_id</c> (the guard shadows only those;
    /// any other would be shared by every pooled tenant); on a tenant table, each unique index it
    /// made leads with <c>tenant_id</c>, and a table it made has no lone <c>INTEGER PRIMARY KEY</c>
    /// (a conflict on either would tell one tenant that another holds a key).
    /// </summary>
    private static async Task EnforcePoolRulesAsync(SqliteConnection connection, SqliteTransaction transaction, HashSet<string> before, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var tables = new List<(string Name, bool Tenant, bool WithoutRowid)>();
        await using (var read = Command(connection, transaction, """
            SELECT m.name,
                   EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE lower(name) = 'tenant_id'),
                   coalesce(m.sql, '') LIKE '%WITHOUT ROWID%'
            FROM main.sqlite_master m
            WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\'
            ORDER BY m.name
            """))
        await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                tables.Add((reader.GetString(0), reader.GetInt64(1) != 0, reader.GetInt64(2) != 0));
            }
        }

        foreach (var (table, tenant, withoutRowid) in tables)
        {
            if (!tenant)
            {
                if (!before.Contains(table))
                {
                    problems.Add($"table {table} has no {PoolTableCheck.TenantColumn} column (pooled tenants share tables, so every table carries one)");
                }

                continue;
            }

            await using (var unique = Command(connection, transaction, """
                SELECT il.name, coalesce((SELECT ii.name FROM pragma_index_info(il.name) ii WHERE ii.seqno = 0), '')
                FROM pragma_index_list(@table) il WHERE il."unique" = 1 ORDER BY il.name
                """, ("@table", table)))
            await using (var reader = await unique.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    var index = reader.GetString(0);
                    if (!before.Contains(index) && !reader.GetString(1).Equals(PoolTableCheck.TenantColumn, StringComparison.OrdinalIgnoreCase))
                    {
                        var what = index.StartsWith("sqlite_autoindex_", StringComparison.Ordinal) ? "a primary key or UNIQUE constraint" : $"unique index {index}";
                        problems.Add($"{table}: {what} does not lead with {PoolTableCheck.TenantColumn}, so a conflict would reveal another tenant's key");
                    }
                }
            }

            if (!withoutRowid && !before.Contains(table))
            {
                await using var key = Command(connection, transaction, "SELECT name, upper(type) FROM pragma_table_info(@table) WHERE pk > 0", ("@table", table));
                await using var reader = await key.ExecuteReaderAsync(cancellationToken);
                var columns = new List<(string Name, string Type)>();
                while (await reader.ReadAsync(cancellationToken))
                {
                    columns.Add((reader.GetString(0), reader.GetString(1)));
                }

                if (columns is [var only] && only.Type == "INTEGER" && !only.Name.Equals(PoolTableCheck.TenantColumn, StringComparison.OrdinalIgnoreCase))
                {
                    problems.Add($"{table}: INTEGER PRIMARY KEY {only.Name} is unique across every pooled tenant; make the key ({PoolTableCheck.TenantColumn}, {only.Name})");
                }
            }
        }

        if (problems.Count > 0)
        {
            throw new PoolRulesException(problems);
        }
    }

    /// <summary>The names of the file's tables and indexes (SQLite keeps them in one namespace).</summary>
    private static async Task<HashSet<string>> ObjectsAsync(SqliteConnection connection, SqliteTransaction transaction, CancellationToken cancellationToken)
    {
        var tables = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        await using var read = Command(connection, transaction, "SELECT name FROM main.sqlite_master WHERE type IN ('table', 'index')");
        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }

    private static void EnsureSame(ReleaseMigration migration, string appliedChecksum)
    {
        if (!string.Equals(appliedChecksum, migration.Checksum, StringComparison.Ordinal))
        {
            throw ReleaseLedgers.Changed(migration, appliedChecksum);
        }
    }

    private static async Task<SqliteConnection> OpenAsync(string path, CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWrite,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString());
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }
}

/// <summary>
/// Bounds the time statements on one SQLite connection may take: a progress handler interrupts
/// the running statement once the limit has passed (SQLite error 9, interrupted), so a runaway
/// statement (a recursive CTE that never ends) cannot hold the caller, or the file's lock, for good.
/// </summary>
internal sealed class SqliteDeadline : IDisposable
{
    private readonly DbConnection _connection;
    private readonly delegate_progress _check;

    public SqliteDeadline(SqliteConnection connection, TimeProvider time, TimeSpan limit)
    {
        _connection = connection;
        var started = time.GetTimestamp();
        _check = _ => time.GetElapsedTime(started) > limit ? 1 : 0;
        raw.sqlite3_progress_handler(connection.Handle, 1000, _check, null);
    }

    public void Dispose()
    {
        if (_connection is SqliteConnection { Handle: { } handle })
        {
            raw.sqlite3_progress_handler(handle, 0, null, null);
        }

        GC.KeepAlive(_check);
    }
}
