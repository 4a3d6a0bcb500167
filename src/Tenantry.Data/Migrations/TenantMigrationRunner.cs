using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Tenantry.Data.Postgres;

namespace Tenantry.Data.Migrations;

/// <summary>How a <see cref="TenantMigrationRunner"/> fans out.</summary>
public sealed class MigrationRunnerOptions
{
    /// <summary>Targets migrated at once.</summary>
    public int MaxParallelism { get; set; } = 4;

    /// <summary>After migrating a PostgreSQL pool, check it with <see cref="PoolGuardRails"/> and fail the target on any violation.</summary>
    public bool CheckPoolGuardRails { get; set; } = true;
}

/// <summary>
/// Applies a <see cref="TenantSchema"/> to many targets with bounded parallelism. Resumable: each
/// target's <c>schema_migrations</c> table records the versions applied, each migration runs in its
/// own transaction together with its ledger row, under an advisory lock (PostgreSQL) or a write
/// lock (SQLite), so a crash or a second runner never applies a version twice. A failing target
/// stops at its failed version and is reported; the other targets go on.
/// </summary>
public sealed partial class TenantMigrationRunner
{
    private const string Ledger = "schema_migrations";
    private readonly TenantSchema _schema;
    private readonly MigrationRunnerOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>A runner of <paramref name="schema"/>; logs to <paramref name="logger"/> when given, times with <paramref name="time"/> (the system clock by default).</summary>
    public TenantMigrationRunner(TenantSchema schema, MigrationRunnerOptions? options = null, ILogger<TenantMigrationRunner>? logger = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(schema);
        _schema = schema;
        _options = options ?? new MigrationRunnerOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxParallelism, 1);
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Brings every target of <paramref name="targets"/> to the schema's last version; a failed target is reported, never thrown.</summary>
    public async Task<MigrationReport> RunAsync(IEnumerable<MigrationTarget> targets, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(targets);
        var list = targets.ToList();
        var results = new MigrationTargetResult[list.Count];
        var sources = new ConcurrentDictionary<string, Lazy<NpgsqlDataSource>>(StringComparer.Ordinal);
        var started = _time.GetTimestamp();
        try
        {
            await Parallel.ForEachAsync(
                Enumerable.Range(0, list.Count),
                new ParallelOptions { MaxDegreeOfParallelism = _options.MaxParallelism, CancellationToken = cancellationToken },
                async (i, token) => results[i] = await RunTargetAsync(list[i], sources, token));
        }
        finally
        {
            foreach (var source in sources.Values.Where(s => s.IsValueCreated))
            {
                await source.Value.DisposeAsync();
            }
        }

        return new MigrationReport(results, _time.GetElapsedTime(started));
    }

    private async Task<MigrationTargetResult> RunTargetAsync(MigrationTarget target, ConcurrentDictionary<string, Lazy<NpgsqlDataSource>> sources, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var progress = new Progress();
        string? error = null;
        try
        {
            if (target.Engine == DatabaseEngine.Postgres)
            {
                var source = sources.GetOrAdd(target.Connection, cs => new Lazy<NpgsqlDataSource>(() =>
                    NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(cs) { MaxPoolSize = _options.MaxParallelism + 1, IncludeErrorDetail = false }.ConnectionString))).Value;
                await MigratePostgresAsync(target, source, progress, cancellationToken);
            }
            else
            {
                await MigrateSqliteAsync(target, progress, cancellationToken);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            error = e.Message;
            Log.TargetFailed(_logger, target.Name, target.TenantId, progress.Current, e);
        }

        return new MigrationTargetResult
        {
            Target = target.Name,
            Isolation = target.Isolation,
            Applied = progress.Applied,
            AlreadyApplied = progress.AlreadyApplied,
            FailedVersion = error is null ? null : progress.Current,
            Error = error,
            Duration = _time.GetElapsedTime(started),
        };
    }

    /// <summary>
    /// The ledger keys migrations by version; a version applied under another name means the target
    /// was migrated with a different schema, which must stop here rather than be skipped silently.
    /// </summary>
    private static void EnsureSameMigration(MigrationTarget target, TenantMigration migration, string appliedName)
    {
        if (!string.Equals(appliedName, migration.Name, StringComparison.Ordinal))
        {
            throw new InvalidOperationException(
                $"{target.Name}: version {migration.Version} was applied as '{appliedName}', not '{migration.Name}'; this database was migrated with another schema.");
        }
    }

    private async Task MigratePostgresAsync(MigrationTarget target, NpgsqlDataSource source, Progress progress, CancellationToken cancellationToken)
    {
        var schema = TenantDatabaseNames.Quote(TenantDatabaseNames.ValidateIdentifier(target.Schema));
        var ledger = $"{schema}.{TenantDatabaseNames.Quote(Ledger)}";
        var lockKey = "tenantry.migrations:" + target.Schema;
        await using var connection = await source.OpenConnectionAsync(cancellationToken);

        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            await using var batch = new NpgsqlBatch(connection, transaction)
            {
                BatchCommands =
                {
                    Command("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lockKey),
                    Command($"CREATE TABLE IF NOT EXISTS {ledger} (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"),
                },
            };
            await batch.ExecuteNonQueryAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        var applied = new Dictionary<int, string>();
        await using (var command = new NpgsqlCommand($"SELECT version, name FROM {ledger}", connection))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                applied[reader.GetInt32(0)] = reader.GetString(1);
            }
        }

        foreach (var migration in _schema.Migrations)
        {
            if (applied.TryGetValue(migration.Version, out var appliedName))
            {
                progress.Current = migration.Version;
                EnsureSameMigration(target, migration, appliedName);
                progress.AlreadyApplied++;
                continue;
            }

            progress.Current = migration.Version;
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await using (var check = new NpgsqlBatch(connection, transaction)
            {
                BatchCommands =
                {
                    Command("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", lockKey),
                    Command($"SET LOCAL search_path TO {schema}"),
                    Command($"SELECT EXISTS (SELECT 1 FROM {ledger} WHERE version = $1)", migration.Version),
                },
            })
            {
                var exists = false;
                await using var reader = await check.ExecuteReaderAsync(cancellationToken);
                do
                {
                    if (await reader.ReadAsync(cancellationToken) && reader.GetFieldType(0) == typeof(bool))
                    {
                        exists = reader.GetBoolean(0);
                    }
                }
                while (await reader.NextResultAsync(cancellationToken));

                if (exists)
                {
                    // Another runner applied it since we read the ledger.
                    progress.AlreadyApplied++;
                    continue;
                }
            }

            var sql = MigrationSql.Render(migration, DatabaseEngine.Postgres, target.Isolation);
            if (target.GrantTo is not null)
            {
                sql += PostgresTenantDdl.GrantDml(target.Schema, target.GrantTo);
            }

            if (!string.IsNullOrWhiteSpace(sql))
            {
                // One command for the whole script: Npgsql sends its statements in one round trip, inside the transaction.
                await using var apply = new NpgsqlCommand(sql, connection, transaction);
                await apply.ExecuteNonQueryAsync(cancellationToken);
            }

            await using (var record = new NpgsqlCommand($"INSERT INTO {ledger} (version, name) VALUES ($1, $2)", connection, transaction))
            {
                record.Parameters.Add(new NpgsqlParameter { Value = migration.Version });
                record.Parameters.Add(new NpgsqlParameter { Value = migration.Name });
                await record.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            progress.Applied.Add(migration.Version);
            Log.Applied(_logger, target.Name, target.TenantId, migration.Version, migration.Name);
        }

        progress.Current = null;
        if (target.Isolation == IsolationModel.Pool && _options.CheckPoolGuardRails)
        {
            var violations = await PoolGuardRails.CheckAsync(connection, target.Schema, target.GrantTo, cancellationToken);
            if (violations.Count > 0)
            {
                throw new InvalidOperationException("Pool guard rails violated: " + string.Join("; ", violations));
            }
        }
    }

    private async Task MigrateSqliteAsync(MigrationTarget target, Progress progress, CancellationToken cancellationToken)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = target.Connection,
            Mode = SqliteOpenMode.ReadWrite,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString());
        await connection.OpenAsync(cancellationToken);
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = $"CREATE TABLE IF NOT EXISTS {Ledger} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        foreach (var migration in _schema.Migrations)
        {
            progress.Current = migration.Version;
            // BEGIN IMMEDIATE: the write lock is taken before the ledger is read, so two runners cannot both apply a version.
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken);
            await using (var check = connection.CreateCommand())
            {
                check.Transaction = transaction;
                check.CommandText = $"SELECT name FROM {Ledger} WHERE version = @v";
                check.Parameters.AddWithValue("@v", migration.Version);
                if (await check.ExecuteScalarAsync(cancellationToken) is string appliedName)
                {
                    EnsureSameMigration(target, migration, appliedName);
                    progress.AlreadyApplied++;
                    continue;
                }
            }

            await using (var apply = connection.CreateCommand())
            {
                apply.Transaction = transaction;
                apply.CommandText = MigrationSql.Render(migration, DatabaseEngine.Sqlite, target.Isolation) +
                    $"INSERT INTO {Ledger} (version, name, applied_at) VALUES (@v, @n, @t);";
                apply.Parameters.AddWithValue("@v", migration.Version);
                apply.Parameters.AddWithValue("@n", migration.Name);
                apply.Parameters.AddWithValue("@t", _time.GetUtcNow().UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
                await apply.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            progress.Applied.Add(migration.Version);
            Log.Applied(_logger, target.Name, target.TenantId, migration.Version, migration.Name);
        }

        progress.Current = null;
    }

    private static NpgsqlBatchCommand Command(string sql, params object[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return command;
    }

    private sealed class Progress
    {
        public List<int> Applied { get; } = [];

        public int AlreadyApplied { get; set; }

        public int? Current { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Applied migration {Version} {Name} to {Target} (tenant {TenantId})")]
        public static partial void Applied(ILogger logger, string target, Guid? tenantId, int version, string name);

        [LoggerMessage(2, LogLevel.Error, "Migrating {Target} (tenant {TenantId}) failed at version {Version}")]
        public static partial void TargetFailed(ILogger logger, string target, Guid? tenantId, int? version, Exception exception);
    }
}
