namespace Tenantry.Data.Migrations;

/// <summary>
/// The tenant app's database schema, once: ordered, named migrations. Rendered per target: on the
/// pool every tenant table gains a leading <c>tenant_id</c> (first in the primary key, every unique
/// key and every index) and, on PostgreSQL, forced row-level security; on bridge and silo targets
/// the same tables have no tenant column at all.
/// </summary>
public sealed class TenantSchema
{
    /// <summary>A schema named <paramref name="name"/> of <paramref name="migrations"/>, whose versions must be positive and strictly increasing.</summary>
    public TenantSchema(string name, IEnumerable<TenantMigration> migrations)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(migrations);
        Name = name;
        Migrations = [.. migrations];
        var previous = 0;
        foreach (var migration in Migrations)
        {
            if (migration.Version <= previous)
            {
                throw new ArgumentException($"Migration versions must be positive and strictly increasing ({migration.Version} after {previous}).", nameof(migrations));
            }

            previous = migration.Version;
        }
    }

    /// <summary>The schema's name, for logs.</summary>
    public string Name { get; }

    /// <summary>The migrations, oldest first.</summary>
    public IReadOnlyList<TenantMigration> Migrations { get; }
}

/// <summary>One migration: applied in its own transaction, recorded by version in the target's <c>schema_migrations</c>.</summary>
public sealed record TenantMigration
{
    /// <summary>Migration <paramref name="version"/> (1 or more), named <paramref name="name"/>, of <paramref name="steps"/> applied in order.</summary>
    public TenantMigration(int version, string name, params MigrationStep[] steps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(steps);
        Version = version;
        Name = name;
        Steps = steps;
    }

    /// <summary>The version recorded in <c>schema_migrations</c> once applied.</summary>
    public int Version { get; }

    /// <summary>The migration's name, for logs and the ledger.</summary>
    public string Name { get; }

    /// <summary>The changes, applied in order in one transaction.</summary>
    public IReadOnlyList<MigrationStep> Steps { get; }
}

/// <summary>Engine-neutral column types.</summary>
public enum ColumnType
{
    /// <summary>uuid / TEXT.</summary>
    Uuid,

    /// <summary>text / TEXT.</summary>
    Text,

    /// <summary>integer / INTEGER.</summary>
    Integer32,

    /// <summary>bigint / INTEGER.</summary>
    Integer64,

    /// <summary>numeric / NUMERIC.</summary>
    Numeric,

    /// <summary>boolean / INTEGER (0, 1).</summary>
    Boolean,

    /// <summary>timestamptz / TEXT (ISO 8601, UTC).</summary>
    Timestamp,

    /// <summary>jsonb / TEXT.</summary>
    Json,
}

/// <summary>A column. Defaults are SQL expressions per engine (trusted schema code, never user input).</summary>
public sealed record ColumnDefinition(string Name, ColumnType Type, bool Nullable = false)
{
    /// <summary>The column's default on PostgreSQL, an SQL expression (none when null).</summary>
    public string? PostgresDefault { get; init; }

    /// <summary>The column's default on SQLite, an SQL expression (none when null).</summary>
    public string? SqliteDefault { get; init; }
}

/// <summary>An index; on the pool its key is prefixed with <c>tenant_id</c>.</summary>
public sealed record IndexDefinition(string Name, IReadOnlyList<string> Columns, bool Unique = false);

/// <summary>A tenant table. Every table made through a schema is a tenant table.</summary>
public sealed record TableDefinition(string Name, IReadOnlyList<ColumnDefinition> Columns, IReadOnlyList<string> PrimaryKey)
{
    /// <summary>Natural keys: unique per tenant (on the pool, unique together with <c>tenant_id</c>).</summary>
    public IReadOnlyList<IReadOnlyList<string>> UniqueKeys { get; init; } = [];

    /// <summary>Secondary indexes (on the pool, prefixed with <c>tenant_id</c>).</summary>
    public IReadOnlyList<IndexDefinition> Indexes { get; init; } = [];
}

/// <summary>One change inside a migration.</summary>
public abstract record MigrationStep
{
    private protected MigrationStep()
    {
    }
}

/// <summary>Creates <paramref name="Table"/> (on the pool with <c>tenant_id</c> and, on PostgreSQL, forced row-level security).</summary>
/// <param name="Table">The table to create.</param>
public sealed record CreateTable(TableDefinition Table) : MigrationStep;

/// <summary>Adds <paramref name="Column"/> to the tenant table <paramref name="Table"/>.</summary>
/// <param name="Table">The table's name.</param>
/// <param name="Column">The column to add.</param>
public sealed record AddColumn(string Table, ColumnDefinition Column) : MigrationStep;

/// <summary>Creates <paramref name="Index"/> on the tenant table <paramref name="Table"/> (on the pool, prefixed with <c>tenant_id</c>).</summary>
/// <param name="Table">The table's name.</param>
/// <param name="Index">The index to create.</param>
public sealed record CreateIndex(string Table, IndexDefinition Index) : MigrationStep;

/// <summary>Hand-written SQL, one text per engine and shape (an empty text does nothing there).</summary>
public sealed record RawSql : MigrationStep
{
    /// <summary>The SQL on the PostgreSQL pool database.</summary>
    public required string PostgresPool { get; init; }

    /// <summary>The SQL in a PostgreSQL bridge schema or silo database.</summary>
    public required string PostgresDedicated { get; init; }

    /// <summary>The SQL on the shared SQLite pool file.</summary>
    public required string SqlitePool { get; init; }

    /// <summary>The SQL on a tenant's own SQLite file.</summary>
    public required string SqliteDedicated { get; init; }
}
