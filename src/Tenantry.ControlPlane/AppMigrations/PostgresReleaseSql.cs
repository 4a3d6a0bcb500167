using System.Globalization;
using Npgsql;
using NpgsqlTypes;
using Tenantry.ControlPlane.Apps;
using Tenantry.Data;
using Tenantry.Data.Migrations;
using Tenantry.Data.Postgres;

namespace Tenantry.ControlPlane.AppMigrations;

/// <summary>
/// A release's migrations on PostgreSQL, over the connection provisioning uses for the target (the
/// admin role for the pool and a bridge schema, so the tables are not the app's to change; the
/// owner role for a silo database). Each migration runs in one transaction with its ledger row,
/// after <c>pg_advisory_xact_lock</c> on the target's schema, so concurrent appliers (two
/// operations, two replicas) take turns and the second finds the row. On the pool, before it
/// commits, Tenantry adds row-level security (ENABLE, FORCE, the <c>tenant_isolation</c> policy on
/// <c>app.tenant_id</c> for USING and WITH CHECK) to every table with <c>tenant_id</c>, and the
/// catalog must then keep the pool's rules (<see cref="EnforcePoolRulesAsync"/>), else the migration rolls back.
/// </summary>
internal static class PostgresReleaseSql
{
    private const string ObjectsSql = """
        SELECT c.relname,
               c.relkind::text,
               c.oid = ANY($2) AS existed,
               a.attnum IS NOT NULL AS has_tenant,
               coalesce(format_type(a.atttypid, a.atttypmod), '') AS tenant_type,
               coalesce(a.atthasdef, false) AS tenant_default,
               EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) o WHERE o.option_name = 'security_invoker' AND o.option_value::bool) AS invoker,
               c.relrowsecurity AND c.relforcerowsecurity
                   AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation') AS protected
        FROM pg_class c
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        ORDER BY c.relname
        """;

    /// <summary>Applies the release's missing migrations to <paramref name="target"/>; stops at the first failure.</summary>
    public static async Task<TargetRun> ApplyAsync(MigrationTarget target, ReleaseRef release, CancellationToken cancellationToken)
    {
        var applied = new List<string>();
        var already = 0;
        ReleaseMigration? current = null;
        try
        {
            await using var connection = await OpenAsync(target.Connection, cancellationToken);
            await EnsureLedgersAsync(connection, target, cancellationToken);
            var recorded = await RecordedAsync(connection, target.Schema, release.App, cancellationToken);
            foreach (var migration in release.Migrations)
            {
                current = migration;
                if (recorded.TryGetValue(migration.Id, out var checksum))
                {
                    EnsureSame(migration, checksum);
                    already++;
                    continue;
                }

                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await LockAsync(connection, target.Schema, cancellationToken);
                if (await RecordedChecksumAsync(connection, target.Schema, release.App, migration.Id, cancellationToken) is { } now)
                {
                    // Another applier took the lock first and applied it.
                    EnsureSame(migration, now);
                    already++;
                    continue;
                }

                await ApplyOneAsync(connection, target, migration, target.GrantTo, cancellationToken);
                await using (var record = Command(
                    connection,
                    $"INSERT INTO {Ledger(target.Schema)} (app, id, checksum, release_version) VALUES ($1, $2, $3, $4)",
                    release.App, migration.Id, migration.Checksum, release.Version))
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
            return new TargetRun(applied, already, current?.Id, ReleaseSqlFailure.From(e, current?.Sql));
        }
    }

    /// <summary>Makes the ledgers the migrations and seeds are recorded in, when the target lacks them.</summary>
    public static async Task EnsureLedgersAsync(MigrationTarget target, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(target.Connection, cancellationToken);
        await EnsureLedgersAsync(connection, target, cancellationToken);
    }

    /// <summary>
    /// Tries <paramref name="migrations"/> then <paramref name="seed"/> in <paramref name="scratch"/>'s
    /// new schema, inside one transaction that is always rolled back, each statement and the whole
    /// within <paramref name="limit"/>. Null when all ran and the pool's rules hold.
    /// </summary>
    public static async Task<ScratchFailure?> TryAsync(MigrationTarget scratch, IReadOnlyList<ReleaseMigration> migrations, ReleaseSeed? seed, TimeSpan limit, CancellationToken cancellationToken)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(limit + TimeSpan.FromSeconds(5));
        var token = bounded.Token;
        ReleaseMigration? current = null;
        var inSeed = false;
        try
        {
            await using var connection = await OpenAsync(scratch.Connection, token);
            await using var transaction = await connection.BeginTransactionAsync(token);
            var ms = ((long)limit.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
            await ExecuteAsync(connection, $"SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}; CREATE SCHEMA {Q(scratch.Schema)}", token);
            await CreateLedgersAsync(connection, scratch, grant: false, token);
            foreach (var migration in migrations)
            {
                current = migration;
                await ApplyOneAsync(connection, scratch, migration, grantTo: null, token);
            }

            current = null;
            if (seed is not null)
            {
                inSeed = true;
                var tenant = Guid.NewGuid();
                await using (var set = Command(connection, "SELECT set_config('app.tenant_id', $1, true)", tenant.ToString()))
                {
                    await set.ExecuteNonQueryAsync(token);
                }

                await using var run = new NpgsqlCommand(seed.Sql, connection);
                run.Parameters.Add(new NpgsqlParameter("tenant_id", NpgsqlDbType.Uuid) { Value = tenant });
                await run.ExecuteNonQueryAsync(token);
            }

            // Nothing of the check is kept: disposing the transaction rolls the schema and all in it back.
            return null;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new ScratchFailure(current?.Id, inSeed, new ReleaseSqlFailure(ReleaseSqlFailure.TimedOut, $"did not finish within {limit.TotalSeconds:0} s", false));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return new ScratchFailure(current?.Id, inSeed, ReleaseSqlFailure.From(e, inSeed ? seed?.Sql : current?.Sql, limit));
        }
    }

    private static async Task ApplyOneAsync(NpgsqlConnection connection, MigrationTarget target, ReleaseMigration migration, string? grantTo, CancellationToken cancellationToken)
    {
        var pool = target.Isolation == IsolationModel.Pool;
        await ExecuteAsync(connection, $"SET LOCAL search_path TO {Q(target.Schema)}", cancellationToken);
        var before = pool ? await SnapshotAsync(connection, target.Schema, cancellationToken) : [];
        await ExecuteAsync(connection, migration.Sql, cancellationToken);
        if (pool)
        {
            await EnforcePoolRulesAsync(connection, target.Schema, before, grantTo, cancellationToken);
        }

        if (grantTo is not null)
        {
            await ExecuteAsync(connection, PostgresTenantDdl.GrantDml(target.Schema, grantTo), cancellationToken);
        }
    }

    /// <summary>
    /// The pool's rules, read from the catalog inside the migration's transaction:
    /// <list type="bullet">
    /// <item>a table the migration created has <c>tenant_id</c>, of type uuid (the type of <c>app.tenant_id</c>);</item>
    /// <item>no materialized view or foreign table (row-level security does not reach them);</item>
    /// <item>every view is <c>security_invoker</c>, no function is <c>SECURITY DEFINER</c> (both would read with the owner's rights, which may bypass RLS);</item>
    /// <item>then Tenantry adds the <c>tenant_id</c> default and the policy where they are missing, and <see cref="PoolGuardRails"/> must find nothing.</item>
    /// </list>
    /// </summary>
    private static async Task EnforcePoolRulesAsync(NpgsqlConnection connection, string schema, uint[] before, string? appRole, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var missingDefault = new List<string>();
        var unprotected = new List<string>();
        await using (var objects = new NpgsqlCommand(ObjectsSql, connection))
        {
            objects.Parameters.Add(new NpgsqlParameter { Value = schema });
            objects.Parameters.Add(new NpgsqlParameter { Value = before, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Oid });
            await using var reader = await objects.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var (name, kind, existed, hasTenant, tenantType) = (reader.GetString(0), reader.GetString(1), reader.GetBoolean(2), reader.GetBoolean(3), reader.GetString(4));
                switch (kind)
                {
                    case "r" or "p" when !hasTenant:
                        if (!existed)
                        {
                            problems.Add($"table {name} has no {PoolTableCheck.TenantColumn} column (pooled tenants share tables, so every table carries one)");
                        }

                        break;
                    case "r" or "p" when tenantType != "uuid":
                        problems.Add($"{name}.{PoolTableCheck.TenantColumn} is {tenantType}, not uuid (row-level security compares it with app.tenant_id as a uuid)");
                        break;
                    case "r" or "p":
                        if (!reader.GetBoolean(5))
                        {
                            missingDefault.Add(name);
                        }

                        if (!reader.GetBoolean(7))
                        {
                            unprotected.Add(name);
                        }

                        break;
                    case "m":
                        problems.Add($"materialized view {name}: row-level security does not reach it, so every pooled tenant would read all of it");
                        break;
                    case "f":
                        problems.Add($"foreign table {name}: row-level security does not reach it");
                        break;
                    case "v" when !reader.GetBoolean(6):
                        problems.Add($"view {name} reads with its owner's rights, which can bypass row-level security; create it WITH (security_invoker = true)");
                        break;
                }
            }
        }

        await using (var definers = Command(connection, "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND p.prosecdef ORDER BY 1", schema))
        await using (var reader = await definers.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                problems.Add($"function {reader.GetString(0)} is SECURITY DEFINER: it runs with its owner's rights, which can bypass row-level security");
            }
        }

        if (problems.Count > 0)
        {
            throw new PoolRulesException(problems);
        }

        var fixes = string.Concat(
            missingDefault.Select(t => $"ALTER TABLE {Q(schema)}.{TenantDatabaseNames.Quote(t)} ALTER COLUMN {PoolTableCheck.TenantColumn} SET DEFAULT {PostgresTenantDdl.TenantDefault};\n")
                .Concat(unprotected.Select(t => PostgresTenantDdl.CreatePoolPolicies(t, schema) + "\n")));
        if (fixes.Length > 0)
        {
            await ExecuteAsync(connection, fixes, cancellationToken);
        }

        var violations = await PoolGuardRails.CheckAsync(connection, schema, appRole, cancellationToken);
        if (violations.Count > 0)
        {
            throw new PoolRulesException([.. violations.Select(v => v.ToString())]);
        }
    }

    private static async Task<uint[]> SnapshotAsync(NpgsqlConnection connection, string schema, CancellationToken cancellationToken)
    {
        await using var command = Command(
            connection, "SELECT coalesce(array_agg(c.oid), '{}'::oid[]) FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)", schema);
        return (uint[])(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private static async Task EnsureLedgersAsync(NpgsqlConnection connection, MigrationTarget target, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockAsync(connection, target.Schema, cancellationToken);
        await CreateLedgersAsync(connection, target, grant: true, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>
    /// The ledgers, in the target's schema. On the pool the seeds ledger is a tenant table like any
    /// other (its rows are each tenant's own, written through the tenant's session), so it gets the
    /// policy; the migrations ledger is the platform's, taken back from the app role by <see cref="PostgresTenantDdl.GrantDml"/>.
    /// </summary>
    private static async Task CreateLedgersAsync(NpgsqlConnection connection, MigrationTarget target, bool grant, CancellationToken cancellationToken)
    {
        var s = target.Schema;
        bool existed;
        await using (var check = Command(connection, "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL", $"{Q(s)}.{Q(ReleaseLedgers.Migrations)}", $"{Q(s)}.{Q(ReleaseLedgers.Seeds)}"))
        {
            existed = (bool)(await check.ExecuteScalarAsync(cancellationToken))!;
        }

        if (existed)
        {
            return;
        }

        var pool = target.Isolation == IsolationModel.Pool;
        var seeds = pool
            ? $"""
                CREATE TABLE IF NOT EXISTS {Q(s)}.{Q(ReleaseLedgers.Seeds)} (
                    tenant_id uuid NOT NULL DEFAULT {PostgresTenantDdl.TenantDefault},
                    app text NOT NULL,
                    release_version text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL,
                    PRIMARY KEY (tenant_id, app)
                );
                {PostgresTenantDdl.CreatePoolPolicies(ReleaseLedgers.Seeds, s)}
                """
            : $"""
                CREATE TABLE IF NOT EXISTS {Q(s)}.{Q(ReleaseLedgers.Seeds)} (
                    app text PRIMARY KEY,
                    release_version text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL
                );
                """;
        await ExecuteAsync(connection, $"""
            CREATE TABLE IF NOT EXISTS {Ledger(s)} (
                app text NOT NULL,
                id text NOT NULL,
                checksum text NOT NULL,
                release_version text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (app, id)
            );
            {seeds}
            """, cancellationToken);
        if (grant && target.GrantTo is not null)
        {
            await ExecuteAsync(connection, PostgresTenantDdl.GrantDml(s, target.GrantTo), cancellationToken);
        }
    }

    private static async Task<Dictionary<string, string>> RecordedAsync(NpgsqlConnection connection, string schema, string app, CancellationToken cancellationToken)
    {
        var recorded = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var command = Command(connection, $"SELECT id, checksum FROM {Ledger(schema)} WHERE app = $1", app);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            recorded[reader.GetString(0)] = reader.GetString(1);
        }

        return recorded;
    }

    private static async Task<string?> RecordedChecksumAsync(NpgsqlConnection connection, string schema, string app, string id, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, $"SELECT checksum FROM {Ledger(schema)} WHERE app = $1 AND id = $2", app, id);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    private static void EnsureSame(ReleaseMigration migration, string appliedChecksum)
    {
        if (!string.Equals(appliedChecksum, migration.Checksum, StringComparison.Ordinal))
        {
            throw ReleaseLedgers.Changed(migration, appliedChecksum);
        }
    }

    private static async Task LockAsync(NpgsqlConnection connection, string schema, CancellationToken cancellationToken)
    {
        // Advisory locks are per database; the schema tells the bridge tenants of one database apart.
        await using var command = Command(connection, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "tenantry.app-migrations:" + schema);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<NpgsqlConnection> OpenAsync(string connectionString, CancellationToken cancellationToken)
    {
        // One connection per target and run, not pooled: a fleet run must not leave an idle connection per silo database behind.
        // No command timeout: a migration may rightly take long; the caller's token ends it.
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, IncludeErrorDetail = false, CommandTimeout = 0 }.ConnectionString);
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

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, params object[] values)
    {
        var command = new NpgsqlCommand(sql, connection);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return command;
    }

    private static string Ledger(string schema) => $"{Q(schema)}.{Q(ReleaseLedgers.Migrations)}";

    private static string Q(string identifier) => TenantDatabaseNames.Quote(TenantDatabaseNames.ValidateIdentifier(identifier));
}
