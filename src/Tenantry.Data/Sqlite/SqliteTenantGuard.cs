using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Tenantry.Data.Sqlite;

/// <summary>
/// Row isolation for the shared SQLite pool file, which has no row-level security of its own.
/// </summary>
/// <remarks>
/// <para>
/// Why this design: tenant apps write ordinary SQL (<c>SELECT … FROM orders</c>), exactly as on the
/// PostgreSQL pool, so a query API that appends <c>WHERE tenant_id = …</c> would protect only the
/// queries written through it, and one forgotten predicate would leak. Instead each pool session
/// gets, on its own private connection:
/// </para>
/// <list type="number">
/// <item>a per-connection SQL function <c>tenantry_tenant_id()</c> that returns the tenant set for the session;</item>
/// <item>for every table with a <c>tenant_id</c> column, a TEMP view of the same name (SQLite resolves
/// unqualified names in <c>temp</c> before <c>main</c>) that shows only that tenant's rows, with
/// INSTEAD OF triggers that stamp inserts with the tenant and confine updates and deletes to its rows
/// (the analogue of RLS <c>USING</c> + <c>WITH CHECK</c>);</item>
/// <item>an authorizer (<c>sqlite3_set_authorizer</c>) that is consulted when each statement is
/// compiled and refuses anything that would go around the views: reading or writing a tenant table
/// directly (<c>main.orders</c>, a CTE over it) unless the access comes from one of the guard's own
/// views or triggers (or a trigger that the schema's migrations created), writing non-tenant tables,
/// and every DDL, PRAGMA, ATTACH and DETACH.</item>
/// </list>
/// <para>
/// With no tenant the function returns NULL: the views are empty and inserts are refused (fail
/// closed). A guarded connection is reused by later sessions (see <see cref="SqliteGuardedPool"/>):
/// the views read the tenant from the function, so a session only sets <see cref="Tenant"/>, and
/// the function and the authorizer are registered again at each lease; the tenant is cleared when
/// the session ends. Limits: UPSERT and RETURNING do not work on views; use separate statements.
/// </para>
/// </remarks>
internal sealed class SqliteTenantGuard
{
    public const string TenantFunction = "tenantry_tenant_id";

    private const int Ok = 0;
    private const int Deny = 1;

    private readonly HashSet<string> _tenantTables = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _trustedContexts = new(StringComparer.OrdinalIgnoreCase);
    private strdelegate_authorizer? _authorizer;

    private SqliteTenantGuard(bool pool) => Pool = pool;

    /// <summary>True on the shared pool file, false on a dedicated (bridge/silo) file.</summary>
    public bool Pool { get; }

    /// <summary>While false (the guard's own setup), every statement is allowed.</summary>
    public bool Enforcing { get; private set; }

    /// <summary>The tenant whose rows the views show (lowercase id text); null shows none and refuses inserts.</summary>
    public string? Tenant { get; set; }

    /// <summary>The pool file's schema version when the views were made; a later change (a migration) needs new views.</summary>
    public long SchemaVersion { get; private set; }

    /// <summary>Shadows the pool file's tenant tables with views of <paramref name="tenantId"/>'s rows and turns the authorizer on.</summary>
    public static SqliteTenantGuard InstallPool(SqliteConnection connection, string? tenantId)
    {
        var guard = new SqliteTenantGuard(pool: true) { Tenant = tenantId };
        guard.Bind(connection);
        guard.SchemaVersion = ReadSchemaVersion(connection);

        var tables = new List<(string Name, List<(string Column, string? Default, int Pk)> Columns)>();
        using (var command = connection.CreateCommand())
        {
            command.CommandText = """
                SELECT m.name, c.name, c.dflt_value, c.pk
                FROM main.sqlite_master AS m JOIN pragma_table_info(m.name, 'main') AS c
                WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite%'
                  AND EXISTS (SELECT 1 FROM pragma_table_info(m.name, 'main') WHERE lower(name) = 'tenant_id')
                ORDER BY m.name, c.cid
                """;
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                var table = reader.GetString(0);
                if (tables.Count == 0 || tables[^1].Name != table)
                {
                    tables.Add((table, []));
                }

                tables[^1].Columns.Add((reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetInt32(3)));
            }
        }

        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT name FROM main.sqlite_master WHERE type = 'trigger'";
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                guard._trustedContexts.Add(reader.GetString(0));
            }
        }

        var script = new StringBuilder();
        foreach (var (table, columns) in tables)
        {
            guard._tenantTables.Add(table);
            AppendShadow(script, table, columns, guard._trustedContexts);
        }

        if (script.Length > 0)
        {
            using var command = connection.CreateCommand();
            command.CommandText = script.ToString();
            command.ExecuteNonQuery();
        }

        guard.Enforcing = true;
        return guard;
    }

    /// <summary>
    /// (Re)registers the tenant function and the authorizer on the connection: done at install and
    /// again at each lease of a reused connection, so nothing a previous session did to them lasts.
    /// </summary>
    public void Bind(SqliteConnection connection)
    {
        // Deterministic: constant within a statement (the tenant only changes between sessions).
        connection.CreateFunction(TenantFunction, this, static guard => guard.Tenant, isDeterministic: true);
        SetAuthorizer(connection);
    }

    /// <summary>The file's schema version (it changes with any CREATE, DROP or ALTER), read as the guard's own statement.</summary>
    public long CurrentSchemaVersion(SqliteConnection connection)
    {
        var enforcing = Enforcing;
        Enforcing = false;
        try
        {
            return ReadSchemaVersion(connection);
        }
        finally
        {
            Enforcing = enforcing;
        }
    }

    private static long ReadSchemaVersion(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA main.schema_version";
        return (long)command.ExecuteScalar()!;
    }

    /// <summary>A dedicated (bridge/silo) file holds one tenant only; the guard just stops it reaching other files.</summary>
    public static SqliteTenantGuard InstallDedicated(SqliteConnection connection)
    {
        var guard = new SqliteTenantGuard(pool: false);
        guard.SetAuthorizer(connection);
        guard.Enforcing = true;
        return guard;
    }

    private void SetAuthorizer(SqliteConnection connection)
    {
        _authorizer = Authorize;
        var rc = raw.sqlite3_set_authorizer(connection.Handle, _authorizer, null);
        if (rc != raw.SQLITE_OK)
        {
            throw new InvalidOperationException($"Could not install the SQLite authorizer (error {rc}).");
        }
    }

    private int Authorize(object userData, int action, string param0, string param1, string dbName, string innerMost)
    {
        if (!Enforcing)
        {
            return Ok;
        }

        switch (action)
        {
            case raw.SQLITE_SELECT or raw.SQLITE_TRANSACTION or raw.SQLITE_SAVEPOINT or raw.SQLITE_FUNCTION or raw.SQLITE_RECURSIVE:
                return Ok;
            case raw.SQLITE_ATTACH or raw.SQLITE_DETACH:
                return Deny;
        }

        if (!Pool)
        {
            return Ok;
        }

        var isMain = string.Equals(dbName, "main", StringComparison.OrdinalIgnoreCase);
        switch (action)
        {
            case raw.SQLITE_READ:
                return isMain && _tenantTables.Contains(param0) && !Trusted(innerMost) ? Deny : Ok;
            case raw.SQLITE_INSERT or raw.SQLITE_UPDATE or raw.SQLITE_DELETE:
                if (string.Equals(dbName, "temp", StringComparison.OrdinalIgnoreCase))
                {
                    // Only the guard's views live in temp (creating temp objects is refused below).
                    return _tenantTables.Contains(param0) ? Ok : Deny;
                }

                return isMain && _tenantTables.Contains(param0) && Trusted(innerMost) ? Ok : Deny;
            default:
                // DDL, PRAGMA, REINDEX, ANALYZE, virtual tables: never from a tenant session.
                return Deny;
        }
    }

    private bool Trusted(string? innerMost) => innerMost is not null && _trustedContexts.Contains(innerMost);

    private static void AppendShadow(StringBuilder sql, string table, List<(string Column, string? Default, int Pk)> columns, HashSet<string> trusted)
    {
        var t = TenantDatabaseNames.Quote(table);
        var tenant = $"{TenantFunction}()";
        var names = columns.Select(c => TenantDatabaseNames.Quote(c.Column)).ToList();
        // SQLite column names ignore case: TENANT_ID is the tenant column too.
        static bool IsTenant(string column) => string.Equals(column, "tenant_id", StringComparison.OrdinalIgnoreCase);
        var values = columns.Select(c => IsTenant(c.Column)
            ? tenant
            : c.Default is null ? $"NEW.{TenantDatabaseNames.Quote(c.Column)}" : $"coalesce(NEW.{TenantDatabaseNames.Quote(c.Column)}, {c.Default})").ToList();
        var keyColumns = columns.Where(c => c.Pk > 0).OrderBy(c => c.Pk).Select(c => c.Column).ToList();
        if (keyColumns.Count == 0)
        {
            keyColumns = columns.Select(c => c.Column).ToList();
        }

        var match = string.Join(" AND ", keyColumns.Select(c => $"{TenantDatabaseNames.Quote(c)} IS OLD.{TenantDatabaseNames.Quote(c)}"));
        var sets = string.Join(", ", columns.Where(c => !IsTenant(c.Column)).Select(c => $"{TenantDatabaseNames.Quote(c.Column)} = NEW.{TenantDatabaseNames.Quote(c.Column)}"));
        string Trigger(string kind)
        {
            var name = $"tenantry_{table}_{kind}";
            trusted.Add(name);
            return TenantDatabaseNames.Quote(name);
        }

        trusted.Add(table);
        sql.Append(System.Globalization.CultureInfo.InvariantCulture, $"""
            CREATE TEMP VIEW {t} AS SELECT * FROM main.{t} WHERE "tenant_id" = {tenant};
            CREATE TEMP TRIGGER {Trigger("insert")} INSTEAD OF INSERT ON {t} BEGIN
              SELECT RAISE(ABORT, 'new row violates the tenant policy') WHERE {tenant} IS NULL OR (NEW."tenant_id" IS NOT NULL AND NEW."tenant_id" IS NOT {tenant});
              INSERT INTO main.{t} ({string.Join(", ", names)}) VALUES ({string.Join(", ", values)});
            END;
            CREATE TEMP TRIGGER {Trigger("delete")} INSTEAD OF DELETE ON {t} BEGIN
              DELETE FROM main.{t} WHERE "tenant_id" = {tenant} AND {match};
            END;

            """);
        if (sets.Length > 0)
        {
            sql.Append(System.Globalization.CultureInfo.InvariantCulture, $"""
                CREATE TEMP TRIGGER {Trigger("update")} INSTEAD OF UPDATE ON {t} BEGIN
                  SELECT RAISE(ABORT, 'new row violates the tenant policy') WHERE NEW."tenant_id" IS NOT OLD."tenant_id";
                  UPDATE main.{t} SET {sets} WHERE "tenant_id" = {tenant} AND {match};
                END;

                """);
        }
    }
}
