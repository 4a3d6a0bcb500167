using System.Globalization;
using System.Text;
using Tenantry.Data.Postgres;

namespace Tenantry.Data.Migrations;

/// <summary>The database engines a migration renders for.</summary>
public enum DatabaseEngine
{
    /// <summary>PostgreSQL.</summary>
    Postgres,
    /// <summary>SQLite (the embedded store).</summary>
    Sqlite,
}

/// <summary>Renders a <see cref="TenantMigration"/> into SQL for one engine and isolation shape.</summary>
public static class MigrationSql
{
    /// <summary>The column that names a row's tenant on the pool.</summary>
    public const string TenantColumn = "tenant_id";

    /// <summary>The SQL of <paramref name="migration"/> for <paramref name="engine"/>; on the pool (<paramref name="isolation"/>) with <c>tenant_id</c> and row-level security.</summary>
    public static string Render(TenantMigration migration, DatabaseEngine engine, IsolationModel isolation)
    {
        ArgumentNullException.ThrowIfNull(migration);
        var pool = isolation == IsolationModel.Pool;
        var sql = new StringBuilder();
        foreach (var step in migration.Steps)
        {
            switch (step)
            {
                case CreateTable s:
                    CreateTableSql(sql, s.Table, engine, pool);
                    break;
                case AddColumn s:
                    sql.Append("ALTER TABLE ").Append(Q(s.Table)).Append(" ADD COLUMN ").Append(ColumnSql(s.Column, engine)).AppendLine(";");
                    break;
                case CreateIndex s:
                    IndexSql(sql, s.Table, s.Index, pool);
                    break;
                case RawSql s:
                    var text = (engine, pool) switch
                    {
                        (DatabaseEngine.Postgres, true) => s.PostgresPool,
                        (DatabaseEngine.Postgres, false) => s.PostgresDedicated,
                        (DatabaseEngine.Sqlite, true) => s.SqlitePool,
                        _ => s.SqliteDedicated,
                    };
                    if (!string.IsNullOrWhiteSpace(text))
                    {
                        sql.AppendLine(text.TrimEnd().TrimEnd(';') + ";");
                    }

                    break;
                default:
                    throw new NotSupportedException($"Unknown migration step {step.GetType().Name}.");
            }
        }

        return sql.ToString();
    }

    private static void CreateTableSql(StringBuilder sql, TableDefinition table, DatabaseEngine engine, bool pool)
    {
        if (table.Columns.Any(c => c.Name == TenantColumn))
        {
            throw new ArgumentException($"Table {table.Name}: '{TenantColumn}' is added by Tenantry on the pool; do not declare it.");
        }

        var lines = new List<string>();
        if (pool)
        {
            lines.Add(engine == DatabaseEngine.Postgres
                ? $"{Q(TenantColumn)} uuid NOT NULL DEFAULT {PostgresTenantDdl.TenantDefault}"
                : $"{Q(TenantColumn)} TEXT NOT NULL");
        }

        lines.AddRange(table.Columns.Select(c => ColumnSql(c, engine)));
        lines.Add($"CONSTRAINT {Q(table.Name + "_pkey")} PRIMARY KEY ({Columns(table.PrimaryKey, pool)})");
        foreach (var key in table.UniqueKeys)
        {
            lines.Add($"CONSTRAINT {Q(table.Name + "_" + string.Join("_", key) + "_key")} UNIQUE ({Columns(key, pool)})");
        }

        sql.Append("CREATE TABLE ").Append(Q(table.Name)).AppendLine(" (")
            .AppendJoin(",\n", lines.Select(l => "    " + l)).AppendLine().AppendLine(");");
        foreach (var index in table.Indexes)
        {
            IndexSql(sql, table.Name, index, pool);
        }

        if (pool && engine == DatabaseEngine.Postgres)
        {
            // Unqualified on purpose: the runner sets search_path to the target's schema.
            var t = Q(table.Name);
            sql.AppendLine(CultureInfo.InvariantCulture, $"""
                ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;
                ALTER TABLE {t} FORCE ROW LEVEL SECURITY;
                CREATE POLICY {Q(PostgresTenantDdl.PolicyName)} ON {t} AS PERMISSIVE FOR ALL TO PUBLIC
                    USING ({PostgresTenantDdl.TenantPredicate})
                    WITH CHECK ({PostgresTenantDdl.TenantPredicate});
                """);
        }
    }

    private static void IndexSql(StringBuilder sql, string table, IndexDefinition index, bool pool) =>
        sql.Append(index.Unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ").Append(Q(index.Name))
            .Append(" ON ").Append(Q(table)).Append(" (").Append(Columns(index.Columns, pool)).AppendLine(");");

    private static string ColumnSql(ColumnDefinition column, DatabaseEngine engine)
    {
        var type = (engine, column.Type) switch
        {
            (DatabaseEngine.Postgres, ColumnType.Uuid) => "uuid",
            (DatabaseEngine.Postgres, ColumnType.Text) => "text",
            (DatabaseEngine.Postgres, ColumnType.Integer32) => "integer",
            (DatabaseEngine.Postgres, ColumnType.Integer64) => "bigint",
            (DatabaseEngine.Postgres, ColumnType.Numeric) => "numeric",
            (DatabaseEngine.Postgres, ColumnType.Boolean) => "boolean",
            (DatabaseEngine.Postgres, ColumnType.Timestamp) => "timestamptz",
            (DatabaseEngine.Postgres, ColumnType.Json) => "jsonb",
            (_, ColumnType.Integer32 or ColumnType.Integer64 or ColumnType.Boolean) => "INTEGER",
            (_, ColumnType.Numeric) => "NUMERIC",
            _ => "TEXT",
        };
        var defaultSql = engine == DatabaseEngine.Postgres ? column.PostgresDefault : column.SqliteDefault;
        return $"{Q(column.Name)} {type}{(column.Nullable ? "" : " NOT NULL")}{(defaultSql is null ? "" : " DEFAULT " + defaultSql)}";
    }

    private static string Columns(IReadOnlyList<string> columns, bool pool) =>
        string.Join(", ", (pool ? columns.Prepend(TenantColumn) : columns).Select(Q));

    private static string Q(string identifier) => TenantDatabaseNames.Quote(TenantDatabaseNames.ValidateIdentifier(identifier));
}
