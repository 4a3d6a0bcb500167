namespace Tenantry.Data.Migrations;

/// <summary>
/// The tenant app's database schema, once: ordered, named migrations. Rendered per target: on the
/// pool every tenant table gains a leading <c>tenant_id</c> (first in the primary key, every unique
/// key and every index) and, on PostgreSQL, forced row-level security; on bridge and silo targets
/// the same tables have no tenant column at all.
/// </summary>
public sealed class TenantSchema
{
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

    public string Name { get; }

    public IReadOnlyList<TenantMigration> Migrations { get; }
}

/// <summary>One migration: applied in its own transaction, recorded by version in the target's <c>schema_migrations</c>.</summary>
public sealed record TenantMigration
{
    public TenantMigration(int version, string name, params MigrationStep[] steps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(steps);
        Version = version;
        Name = name;
        Steps = steps;
    }

    public int Version { get; }

    public string Name { get; }

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
    public string? PostgresDefault { get; init; }

    public string? SqliteDefault { get; init; }
}

/// <summary>An index; on the pool its key is prefixed with <c>tenant_id</c>.</summary>
public sealed record IndexDefinition(string Name, IReadOnlyList<string> Columns, bool Unique = false);

/// <summary>A tenant table. Every table made through a schema is a tenant table.</summary>
public sealed record TableDefinition(string Name, IReadOnlyList<ColumnDefinition> Columns, IReadOnlyList<string> PrimaryKey)
{
    /// <summary>Natural keys: unique per tenant (on the pool, unique together with <c>tenant_id</c>).</summary>
    public IReadOnlyList<IReadOnlyList<string>> UniqueKeys { get; init; } = [];

    public IReadOnlyList<IndexDefinition> Indexes { get; init; } = [];
}

/// <summary>One change inside a migration.</summary>
public abstract record MigrationStep
{
    private protected MigrationStep()
    {
    }
}

public sealed record CreateTable(TableDefinition Table) : MigrationStep;

public sealed record AddColumn(string Table, ColumnDefinition Column) : MigrationStep;

public sealed record CreateIndex(string Table, IndexDefinition Index) : MigrationStep;

/// <summary>Hand-written SQL, one text per engine and shape (an empty text does nothing there).</summary>
public sealed record RawSql : MigrationStep
{
    public required string PostgresPool { get; init; }

    public required string PostgresDedicated { get; init; }

    public required string SqlitePool { get; init; }

    public required string SqliteDedicated { get; init; }
}
