using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace Tenantry.Data.Postgres;

/// <summary>
/// One SQL statement with positional (<c>$1</c>) parameters. <see cref="OutsideTransaction"/> marks
/// statements PostgreSQL refuses inside a transaction block (<c>CREATE DATABASE</c>, <c>DROP DATABASE</c>).
/// </summary>
public sealed record SqlStatement(string Text, IReadOnlyList<object?> Parameters, bool OutsideTransaction = false)
{
    /// <summary>A statement without parameters, run inside the transaction.</summary>
    public SqlStatement(string text)
        : this(text, [])
    {
    }
}

/// <summary>
/// The DDL that provisioning runs for each isolation model, produced from a validated slug. Every
/// identifier is quoted; every value (role names inside dynamic SQL, password verifiers, tenant
/// ids) travels as a parameter. Where PostgreSQL takes no parameters (utility statements such as
/// <c>CREATE ROLE … PASSWORD</c>), the values are passed with <c>set_config(…, $n, true)</c> and
/// read back by a <c>DO</c> block that formats them with <c>%I</c>/<c>%L</c>. Passwords never reach
/// the server in clear: a SCRAM-SHA-256 verifier is computed here (as psql's <c>\password</c> does).
/// All statements are idempotent, so a retried provisioning step finds its earlier work.
/// </summary>
public static class PostgresTenantDdl
{
    /// <summary>The setting the pool's row-level security policies read.</summary>
    public const string TenantSetting = "app.tenant_id";

    /// <summary>The name of the policy the pool helpers create.</summary>
    public const string PolicyName = "tenant_isolation";

    /// <summary>The tenant predicate: NULL (so no row matches) when no tenant is set — fail closed.</summary>
    public const string TenantPredicate = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid";

    /// <summary>The default of a pool table's <c>tenant_id</c> column: the tenant set for the session.</summary>
    public const string TenantDefault = "NULLIF(current_setting('app.tenant_id', true), '')::uuid";

    // INHERIT: a silo role uses its database's pg_database_owner rights (CREATE on public) through it.
    private const string RoleOptions = "LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";

    // ---- pool -------------------------------------------------------------------------------

    /// <summary>
    /// The pool's app role: logs in, cannot bypass RLS, owns nothing. Tables stay owned by the
    /// migrating role, so FORCE'd policies apply to the app role without exception.
    /// </summary>
    public static IReadOnlyList<SqlStatement> CreatePoolAppRole(string role, string password, string schema = "public") =>
    [
        .. UpsertRole(TenantDatabaseNames.ValidateIdentifier(role), password),
        new(Dynamic("GRANT CONNECT ON DATABASE %I TO %I", "current_database()", "current_setting('tenantry.ddl_role')")),
        new($"GRANT USAGE ON SCHEMA {Q(schema)} TO {Q(role)}"),
    ];

    /// <summary>
    /// RLS enabled and forced on <paramref name="table"/>, with one policy whose USING and WITH CHECK
    /// both require the tenant set for the session. The table may be any name the catalog holds (an
    /// app's migrations name their own tables); it is quoted, never validated into a slug.
    /// </summary>
    public static string CreatePoolPolicies(string table, string schema = "public")
    {
        var t = $"{Q(schema)}.{TenantDatabaseNames.Quote(table)}";
        return $"""
            ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
            ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
            DROP POLICY IF EXISTS {Q(PolicyName)} ON {t};
            CREATE POLICY {Q(PolicyName)} ON {t} AS PERMISSIVE FOR ALL TO PUBLIC
                USING ({TenantPredicate})
                WITH CHECK ({TenantPredicate});
            """;
    }

    /// <summary>Removes the policy and turns RLS off (for a table leaving the pool, never for one that stays).</summary>
    public static string DropPoolPolicies(string table, string schema = "public")
    {
        var t = Qualified(schema, table);
        return $"""
            DROP POLICY IF EXISTS {Q(PolicyName)} ON {t};
            ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY;
            ALTER TABLE {t} DISABLE ROW LEVEL SECURITY;
            """;
    }

    /// <summary>The ledgers migration runners keep in a target schema; an app role may neither read nor change them.</summary>
    public static IReadOnlyList<string> Ledgers { get; } = ["schema_migrations", "tenantry_app_migrations"];

    /// <summary>
    /// Gives <paramref name="role"/> DML on every table and sequence of the schema (not DDL), then
    /// takes back every migrations ledger that exists there, so granting "all tables" never hands a
    /// role the record of what ran.
    /// </summary>
    public static string GrantDml(string schema, string role)
    {
        // Both names are validated identifiers ([a-z_][a-z0-9_]*), so they sit in the literals as they are.
        var s = TenantDatabaseNames.ValidateIdentifier(schema);
        var r = TenantDatabaseNames.ValidateIdentifier(role);
        return $"""
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {Q(s)} TO {Q(r)};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {Q(s)} TO {Q(r)};
            DO $tenantry$
            DECLARE
                ledger text;
            BEGIN
                FOREACH ledger IN ARRAY ARRAY['{string.Join("', '", Ledgers)}'] LOOP
                    IF to_regclass(format('%I.%I', '{s}', ledger)) IS NOT NULL THEN
                        EXECUTE format('REVOKE ALL ON TABLE %I.%I FROM %I', '{s}', ledger, '{r}');
                    END IF;
                END LOOP;
            END
            $tenantry$;
            """;
    }

    // ---- bridge -----------------------------------------------------------------------------

    /// <summary>
    /// Once per bridge database: PUBLIC loses CONNECT, TEMP and the <c>public</c> schema, so a
    /// tenant role reaches nothing it was not granted. Run before the first bridge tenant.
    /// </summary>
    public static IReadOnlyList<SqlStatement> PrepareBridgeDatabase() =>
    [
        new(Dynamic("REVOKE ALL ON DATABASE %I FROM PUBLIC", "current_database()")),
        new("REVOKE ALL ON SCHEMA public FROM PUBLIC"),
    ];

    /// <summary>
    /// The bridge tenant's schema (owned by the provisioning role) and login role: search_path is
    /// its schema, USAGE on that schema only, DML on the tables migrations create there.
    /// </summary>
    public static IReadOnlyList<SqlStatement> CreateBridgeTenant(string slug, string password)
    {
        var schema = TenantDatabaseNames.BridgeSchema(slug);
        var role = TenantDatabaseNames.BridgeRole(slug);
        return
        [
            .. UpsertRole(role, password),
            new(Dynamic("GRANT CONNECT ON DATABASE %I TO %I", "current_database()", "current_setting('tenantry.ddl_role')")),
            new($"CREATE SCHEMA IF NOT EXISTS {Q(schema)}"),
            new($"REVOKE ALL ON SCHEMA {Q(schema)} FROM PUBLIC"),
            new($"GRANT USAGE ON SCHEMA {Q(schema)} TO {Q(role)}"),
            new($"ALTER ROLE {Q(role)} SET search_path TO {Q(schema)}"),
            new($"ALTER DEFAULT PRIVILEGES IN SCHEMA {Q(schema)} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {Q(role)}"),
            new($"ALTER DEFAULT PRIVILEGES IN SCHEMA {Q(schema)} GRANT USAGE, SELECT ON SEQUENCES TO {Q(role)}"),
        ];
    }

    /// <summary>Drops the bridge tenant: its role can no longer log in, its sessions end, then schema and role go.</summary>
    public static IReadOnlyList<SqlStatement> DropBridgeTenant(string slug)
    {
        var schema = TenantDatabaseNames.BridgeSchema(slug);
        var role = TenantDatabaseNames.BridgeRole(slug);
        return
        [
            .. DisableAndTerminate(role, database: null),
            new($"DROP SCHEMA IF EXISTS {Q(schema)} CASCADE"),
            .. DropRole(role),
        ];
    }

    // ---- silo -------------------------------------------------------------------------------

    /// <summary>The silo tenant's login role (it will own its database).</summary>
    public static IReadOnlyList<SqlStatement> CreateSiloRole(string slug, string password) => UpsertRole(TenantDatabaseNames.SiloRole(slug), password);

    /// <summary>Whether the silo database exists yet (<c>CREATE DATABASE</c> has no IF NOT EXISTS).</summary>
    public static SqlStatement SiloDatabaseExists(string slug) =>
        new("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", [TenantDatabaseNames.SiloDatabase(slug)]);

    /// <summary>The silo database, owned by the silo role; nobody else may connect.</summary>
    public static IReadOnlyList<SqlStatement> CreateSiloDatabase(string slug)
    {
        var database = TenantDatabaseNames.SiloDatabase(slug);
        var role = TenantDatabaseNames.SiloRole(slug);
        return
        [
            new($"CREATE DATABASE {Q(database)} OWNER {Q(role)} TEMPLATE template1 ENCODING 'UTF8'", [], OutsideTransaction: true),
            new($"REVOKE ALL ON DATABASE {Q(database)} FROM PUBLIC"),
            new($"GRANT CONNECT, TEMPORARY ON DATABASE {Q(database)} TO {Q(role)}"),
        ];
    }

    /// <summary>Drops the silo tenant: no more logins, its sessions end, then database and role go.</summary>
    public static IReadOnlyList<SqlStatement> DropSiloTenant(string slug)
    {
        var database = TenantDatabaseNames.SiloDatabase(slug);
        var role = TenantDatabaseNames.SiloRole(slug);
        return
        [
            .. DisableAndTerminate(role, database),
            new($"DROP DATABASE IF EXISTS {Q(database)} WITH (FORCE)", [], OutsideTransaction: true),
            .. DropRole(role),
        ];
    }

    // ---- running them -----------------------------------------------------------------------

    /// <summary>
    /// Runs <paramref name="statements"/> in order on an admin connection: consecutive ordinary
    /// statements share one transaction; <see cref="SqlStatement.OutsideTransaction"/> ones run alone.
    /// </summary>
    public static async Task ExecuteAsync(NpgsqlConnection connection, IEnumerable<SqlStatement> statements, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(statements);
        NpgsqlTransaction? transaction = null;
        try
        {
            foreach (var statement in statements)
            {
                if (statement.OutsideTransaction && transaction is not null)
                {
                    await transaction.CommitAsync(cancellationToken);
                    await transaction.DisposeAsync();
                    transaction = null;
                }
                else if (!statement.OutsideTransaction && transaction is null)
                {
                    transaction = await connection.BeginTransactionAsync(cancellationToken);
                }

                await using var command = new NpgsqlCommand(statement.Text, connection, transaction);
                foreach (var value in statement.Parameters)
                {
                    command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
                }

                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            if (transaction is not null)
            {
                await transaction.CommitAsync(cancellationToken);
            }
        }
        finally
        {
            if (transaction is not null)
            {
                await transaction.DisposeAsync();
            }
        }
    }

    /// <summary>Creates (or re-keys) the silo role, then its database unless it exists; safe to run again.</summary>
    public static async Task CreateSiloTenantAsync(NpgsqlConnection connection, string slug, string password, CancellationToken cancellationToken = default)
    {
        await ExecuteAsync(connection, CreateSiloRole(slug, password), cancellationToken);
        var exists = SiloDatabaseExists(slug);
        await using (var command = new NpgsqlCommand(exists.Text, connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = exists.Parameters[0] });
            if (await command.ExecuteScalarAsync(cancellationToken) is true)
            {
                await ExecuteAsync(connection, CreateSiloDatabase(slug).Where(s => !s.OutsideTransaction), cancellationToken);
                return;
            }
        }

        await ExecuteAsync(connection, CreateSiloDatabase(slug), cancellationToken);
    }

    /// <summary>
    /// A SCRAM-SHA-256 verifier for <paramref name="password"/>, the form PostgreSQL stores; the
    /// server accepts it in place of the password, so the clear text never leaves this process.
    /// </summary>
    public static string ScramVerifier(string password, int iterations = 4096)
    {
        ValidatePassword(password);
        var salt = RandomNumberGenerator.GetBytes(16);
        var salted = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, 32);
        var clientKey = HMACSHA256.HashData(salted, "Client Key"u8);
        var storedKey = SHA256.HashData(clientKey);
        var serverKey = HMACSHA256.HashData(salted, "Server Key"u8);
        return $"SCRAM-SHA-256${iterations}:{Convert.ToBase64String(salt)}${Convert.ToBase64String(storedKey)}:{Convert.ToBase64String(serverKey)}";
    }

    /// <summary>A random password for a tenant role (URL-safe, 32 characters).</summary>
    public static string NewPassword() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).Replace('+', '-').Replace('/', '_');

    private static IReadOnlyList<SqlStatement> UpsertRole(string role, string password) =>
    [
        // Values in; the DO block reads them back. Utility statements cannot take $n parameters.
        new("SELECT set_config('tenantry.ddl_role', $1, true), set_config('tenantry.ddl_secret', $2, true)", [role, ScramVerifier(password)]),
        new($"""
            DO $tenantry$
            DECLARE
                r text := current_setting('tenantry.ddl_role');
                s text := current_setting('tenantry.ddl_secret');
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                    EXECUTE format('ALTER ROLE %I {RoleOptions} PASSWORD %L', r, s);
                ELSE
                    EXECUTE format('CREATE ROLE %I {RoleOptions} PASSWORD %L', r, s);
                END IF;
                PERFORM set_config('tenantry.ddl_secret', '', true);
            END
            $tenantry$
            """),
    ];

    private static IReadOnlyList<SqlStatement> DisableAndTerminate(string role, string? database) =>
    [
        new("SELECT set_config('tenantry.ddl_role', $1, true)", [role]),
        new("""
            DO $tenantry$
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_setting('tenantry.ddl_role')) THEN
                    EXECUTE format('ALTER ROLE %I NOLOGIN', current_setting('tenantry.ddl_role'));
                END IF;
            END
            $tenantry$
            """),
        database is null
            ? new("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", [role])
            : new("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE (usename = $1 OR datname = $2) AND pid <> pg_backend_pid()", [role, database]),
    ];

    private static IReadOnlyList<SqlStatement> DropRole(string role) =>
    [
        new("SELECT set_config('tenantry.ddl_role', $1, true)", [role]),
        new("""
            DO $tenantry$
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_setting('tenantry.ddl_role')) THEN
                    -- Grants and default privileges held in this database go first; then the role.
                    EXECUTE format('DROP OWNED BY %I', current_setting('tenantry.ddl_role'));
                    EXECUTE format('DROP ROLE %I', current_setting('tenantry.ddl_role'));
                END IF;
            END
            $tenantry$
            """),
    ];

    /// <summary>A DO block running <c>format(<paramref name="template"/>, args…)</c>; the args are SQL expressions reading settings, never literals.</summary>
    private static string Dynamic(string template, params string[] args) => $"""
        DO $tenantry$ BEGIN EXECUTE format('{template}', {string.Join(", ", args)}); END $tenantry$
        """;

    private static void ValidatePassword(string password)
    {
        ArgumentException.ThrowIfNullOrEmpty(password);
        if (password.Length < 12 || password.Any(c => c is < '!' or > '~'))
        {
            // Printable ASCII only: SASLprep is then the identity, so client and server derive the same key.
            throw new ArgumentException("A role password is at least 12 printable ASCII characters without spaces.", nameof(password));
        }
    }

    private static string Q(string identifier) => TenantDatabaseNames.Quote(TenantDatabaseNames.ValidateIdentifier(identifier));

    private static string Qualified(string schema, string table) => $"{Q(schema)}.{Q(table)}";
}
