namespace Tenantry.Data.Migrations;

/// <summary>
/// One place the tenant schema is applied: the pool database, a bridge schema, a silo database, or
/// an embedded SQLite file. The connection must be allowed to run DDL there (the pool and bridge
/// schemas are owned by the provisioning role; a silo database by its own role).
/// </summary>
public sealed record MigrationTarget
{
    /// <summary>How the report names it: <c>pool</c>, or the tenant's slug.</summary>
    public required string Name { get; init; }

    /// <summary>The isolation model whose shape the schema takes here.</summary>
    public required IsolationModel Isolation { get; init; }

    /// <summary>The engine the SQL is rendered for.</summary>
    public required DatabaseEngine Engine { get; init; }

    /// <summary>Npgsql connection string, or the SQLite file path.</summary>
    public required string Connection { get; init; }

    /// <summary>PostgreSQL schema that holds the tables and <c>schema_migrations</c> (the bridge schema; <c>public</c> otherwise).</summary>
    public string Schema { get; init; } = "public";

    /// <summary>The tenant, for logs (none for the pool).</summary>
    public Guid? TenantId { get; init; }

    /// <summary>PostgreSQL role given DML on the tables after each migration (the pool app role, the bridge tenant role).</summary>
    public string? GrantTo { get; init; }

    /// <summary>The shared pool database, migrated over the provisioning (admin) connection; <paramref name="appRole"/> gets DML on its tables.</summary>
    public static MigrationTarget PostgresPool(string adminConnectionString, string appRole, string schema = "public") => new()
    {
        Name = "pool",
        Isolation = IsolationModel.Pool,
        Engine = DatabaseEngine.Postgres,
        Connection = adminConnectionString,
        Schema = TenantDatabaseNames.ValidateIdentifier(schema),
        GrantTo = TenantDatabaseNames.ValidateIdentifier(appRole),
    };

    /// <summary>A bridge tenant's schema, migrated over the provisioning (admin) connection to the shared database.</summary>
    public static MigrationTarget PostgresBridge(string adminConnectionString, string slug) => new()
    {
        Name = TenantDatabaseNames.ValidateSlug(slug),
        Isolation = IsolationModel.Bridge,
        Engine = DatabaseEngine.Postgres,
        Connection = adminConnectionString,
        Schema = TenantDatabaseNames.BridgeSchema(slug),
        GrantTo = TenantDatabaseNames.BridgeRole(slug),
    };

    /// <summary>A silo tenant's database, migrated as its owner role.</summary>
    public static MigrationTarget PostgresSilo(string slug, string ownerConnectionString) => new()
    {
        Name = TenantDatabaseNames.ValidateSlug(slug),
        Isolation = IsolationModel.Silo,
        Engine = DatabaseEngine.Postgres,
        Connection = ownerConnectionString,
    };

    /// <summary>A silo tenant's database from its data target (the owner's own credentials).</summary>
    public static MigrationTarget PostgresSilo(string slug, PostgresSiloTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        return PostgresSilo(slug, target.ToConnectionString());
    }

    /// <summary>The shared SQLite pool file at <paramref name="path"/>.</summary>
    public static MigrationTarget SqlitePool(string path) => new()
    {
        Name = "pool",
        Isolation = IsolationModel.Pool,
        Engine = DatabaseEngine.Sqlite,
        Connection = path,
    };

    /// <summary>A bridge or silo tenant's own SQLite file at <paramref name="path"/>.</summary>
    public static MigrationTarget SqliteDedicated(string slug, IsolationModel isolation, string path) => new()
    {
        Name = TenantDatabaseNames.ValidateSlug(slug),
        Isolation = isolation == IsolationModel.Pool ? throw new ArgumentException("Pool tenants share the pool file.", nameof(isolation)) : isolation,
        Engine = DatabaseEngine.Sqlite,
        Connection = path,
    };

    /// <summary>The target's name, model and place; never a password.</summary>
    public override string ToString() =>
        $"{Name} ({Isolation.ToWire()}, {(Engine == DatabaseEngine.Postgres ? PostgresPoolTarget.Redacted(Connection) + ", schema " + Schema : Connection)})";
}

/// <summary>What happened on one target.</summary>
public sealed record MigrationTargetResult
{
    /// <summary>The target's name (<c>pool</c>, or the tenant's slug).</summary>
    public required string Target { get; init; }

    /// <summary>The target's isolation model.</summary>
    public required IsolationModel Isolation { get; init; }

    /// <summary>Versions applied by this run, in order.</summary>
    public required IReadOnlyList<int> Applied { get; init; }

    /// <summary>Versions found already applied (by an earlier or concurrent run).</summary>
    public required int AlreadyApplied { get; init; }

    /// <summary>The version that failed, when one did; later versions were not tried.</summary>
    public int? FailedVersion { get; init; }

    /// <summary>Why the target failed; null when it succeeded.</summary>
    public string? Error { get; init; }

    /// <summary>How long the target took.</summary>
    public required TimeSpan Duration { get; init; }

    /// <summary>True when every migration is applied on the target.</summary>
    public bool Succeeded => Error is null;
}

/// <summary>The outcome of one fan-out: one result per target, in the order given.</summary>
public sealed record MigrationReport(IReadOnlyList<MigrationTargetResult> Targets, TimeSpan Duration)
{
    /// <summary>The targets that failed.</summary>
    public IEnumerable<MigrationTargetResult> Failed => Targets.Where(t => !t.Succeeded);

    /// <summary>True when every target succeeded.</summary>
    public bool Succeeded => Targets.All(t => t.Succeeded);

    /// <summary>The migrations applied by this run, over all targets.</summary>
    public int AppliedCount => Targets.Sum(t => t.Applied.Count);

    /// <summary>A one-line summary: targets, failures, migrations applied, time.</summary>
    public override string ToString() =>
        $"{Targets.Count} targets, {Targets.Count(t => t.Succeeded)} succeeded, {Targets.Count(t => !t.Succeeded)} failed, {AppliedCount} migrations applied in {Duration.TotalSeconds:0.00} s";
}

