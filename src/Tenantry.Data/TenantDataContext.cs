using Npgsql;

namespace Tenantry.Data;

/// <summary>
/// Who the tenant is and where its data lives: everything <see cref="ITenantDataSource"/> needs to
/// hand out a connection that sees only this tenant's data. Built by the control plane from the
/// tenant registry (and, later, by the runtime's tenant resolution).
/// </summary>
public sealed record TenantDataContext
{
    private readonly string _slug = "";

    /// <summary>The tenant's id; on the pool, the <c>tenant_id</c> its rows carry.</summary>
    public required Guid TenantId { get; init; }

    /// <summary>The tenant's slug (validated: 3-40 of a-z, 0-9 and single inner hyphens).</summary>
    public required string Slug
    {
        get => _slug;
        init => _slug = TenantDatabaseNames.ValidateSlug(value);
    }

    /// <summary>The tenant's isolation model; it must fit <see cref="Target"/>.</summary>
    public required IsolationModel Isolation { get; init; }

    /// <summary>Where the tenant's data lives.</summary>
    public required TenantDataTarget Target { get; init; }

    /// <summary>Throws when the target cannot serve the isolation model (a pool tenant pointed at a dedicated file, say).</summary>
    public void Validate()
    {
        if (TenantId == Guid.Empty)
        {
            throw new ArgumentException("The tenant id is empty.");
        }

        var fits = (Isolation, Target) switch
        {
            (IsolationModel.Pool, PostgresPoolTarget or SqlitePoolTarget) => true,
            (IsolationModel.Bridge, PostgresBridgeTarget or SqliteFileTarget) => true,
            (IsolationModel.Silo, PostgresSiloTarget or SqliteFileTarget) => true,
            _ => false,
        };
        if (!fits)
        {
            throw new ArgumentException($"A {Isolation.ToWire()} tenant cannot use a {Target.GetType().Name}.");
        }
    }
}

/// <summary>Where a tenant's data lives. Passwords never appear in <c>ToString()</c>.</summary>
public abstract record TenantDataTarget
{
    private protected TenantDataTarget()
    {
    }
}

/// <summary>A PostgreSQL server (loopback, a private address, a managed endpoint…).</summary>
public sealed record PostgresEndpoint(string Host, int Port = 5432)
{
    /// <summary>Extra Npgsql settings (SSL mode, timeouts) applied to every tenant connection to this server.</summary>
    public string? ExtraSettings { get; init; }

    /// <summary>The server as <c>host:port</c>.</summary>
    public override string ToString() => $"{Host}:{Port}";

    /// <summary>The server a connection string names: its host, port and other settings (SSL, timeouts), without database or credentials.</summary>
    public static PostgresEndpoint FromConnectionString(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (string.IsNullOrEmpty(builder.Host))
        {
            throw new ArgumentException("The connection string names no Host.", nameof(connectionString));
        }

        var extra = new NpgsqlConnectionStringBuilder(connectionString);
        foreach (var key in new[] { "Host", "Port", "Database", "Username", "Password", "Passfile" })
        {
            extra.Remove(key);
        }

        return new(builder.Host, builder.Port) { ExtraSettings = extra.ConnectionString.Length == 0 ? null : extra.ConnectionString };
    }

    internal NpgsqlConnectionStringBuilder Builder(string database, string user, string password) =>
        new(ExtraSettings ?? "")
        {
            Host = Host,
            Port = Port,
            Database = database,
            Username = user,
            Password = password,
        };
}

/// <summary>
/// Pool: the shared database, reached as the app role (<c>NOSUPERUSER NOBYPASSRLS</c>, not the
/// table owner). Row-level security keyed on <c>app.tenant_id</c> keeps tenants apart.
/// </summary>
public sealed record PostgresPoolTarget(string ConnectionString) : TenantDataTarget
{
    /// <summary>The target with host, port, database and user; never the password.</summary>
    public override string ToString() => $"PostgresPoolTarget {{ {Redacted(ConnectionString)} }}";

    internal static string Redacted(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        return $"Host = {b.Host}, Port = {b.Port}, Database = {b.Database}, Username = {b.Username}";
    }
}

/// <summary>Bridge: a schema per tenant in a shared database, reached through the tenant's own role.</summary>
public sealed record PostgresBridgeTarget(PostgresEndpoint Server, string Database, string Schema, string Role, string Password) : TenantDataTarget
{
    /// <summary>The target for <paramref name="slug"/> with the names provisioning gives it.</summary>
    public static PostgresBridgeTarget For(PostgresEndpoint server, string database, string slug, string password) =>
        new(server, database, TenantDatabaseNames.BridgeSchema(slug), TenantDatabaseNames.BridgeRole(slug), password);

    /// <summary>The Npgsql connection string of the tenant's own role, its search path on its schema; it carries the password.</summary>
    public string ToConnectionString()
    {
        var builder = Server.Builder(Database, Role, Password);
        builder.SearchPath = Schema;
        return builder.ConnectionString;
    }

    /// <summary>The target without its password.</summary>
    public override string ToString() => $"PostgresBridgeTarget {{ Server = {Server}, Database = {Database}, Schema = {Schema}, Role = {Role} }}";
}

/// <summary>Silo: a database per tenant (possibly on its own server), with its own credentials.</summary>
public sealed record PostgresSiloTarget(PostgresEndpoint Server, string Database, string Role, string Password) : TenantDataTarget
{
    /// <summary>The target for <paramref name="slug"/> with the names provisioning gives it.</summary>
    public static PostgresSiloTarget For(PostgresEndpoint server, string slug, string password) =>
        new(server, TenantDatabaseNames.SiloDatabase(slug), TenantDatabaseNames.SiloRole(slug), password);

    /// <summary>
    /// The target an Npgsql connection string names (host, port, database, user and password
    /// required; other settings such as SSL mode are kept), as a silo tenant's dedicated instance receives it.
    /// </summary>
    public static PostgresSiloTarget FromConnectionString(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (string.IsNullOrEmpty(builder.Host) || string.IsNullOrEmpty(builder.Database) || string.IsNullOrEmpty(builder.Username) || string.IsNullOrEmpty(builder.Password))
        {
            throw new ArgumentException("A silo connection string names Host, Database, Username and Password.", nameof(connectionString));
        }

        return new(PostgresEndpoint.FromConnectionString(connectionString), builder.Database, builder.Username, builder.Password);
    }

    /// <summary>The Npgsql connection string of the tenant's own role; it carries the password, so it goes only to the tenant's own processes.</summary>
    public string ToConnectionString() => Server.Builder(Database, Role, Password).ConnectionString;

    /// <summary>The target without its password.</summary>
    public override string ToString() => $"PostgresSiloTarget {{ Server = {Server}, Database = {Database}, Role = {Role} }}";
}

/// <summary>Embedded pool: the shared SQLite file (<c>&lt;DataDir&gt;/databases/pool.db</c>) with an enforced tenant filter.</summary>
public sealed record SqlitePoolTarget(string FilePath) : TenantDataTarget;

/// <summary>Embedded bridge or silo: the tenant's own SQLite file (<c>&lt;DataDir&gt;/databases/{bridge,silo}/{slug}.db</c>).</summary>
public sealed record SqliteFileTarget(string FilePath) : TenantDataTarget
{
    /// <summary>The file the embedded control plane makes for this tenant.</summary>
    public static SqliteFileTarget ForEmbedded(string dataDirectory, IsolationModel isolation, string slug)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        if (isolation == IsolationModel.Pool)
        {
            throw new ArgumentException("Pool tenants share pool.db: use SqlitePoolTarget.", nameof(isolation));
        }

        return new(Path.Combine(dataDirectory, "databases", isolation.ToWire(), TenantDatabaseNames.ValidateSlug(slug) + ".db"));
    }
}
