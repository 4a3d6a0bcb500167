using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Tenantry.Data;

/// <summary>
/// The database Tenantry gives an app instance (<c>TENANTRY_DATABASE</c>), and each tenant's place in
/// it as a <see cref="TenantDataContext"/> for <see cref="ITenantDataSource"/>. A shared instance gets
/// the pool database: it serves pool tenants only, each through the tenant filter (row-level security
/// on PostgreSQL, the guard on SQLite). A dedicated instance (<c>TENANTRY_TENANT_ID</c> set) gets its
/// tenant's own database and serves that tenant only. Pass the tenant of the verified tenant context,
/// never one read from the request.
/// </summary>
public sealed class TenantDatabase
{
    /// <summary>The setting that names the database when set; else <see cref="TenantryEnvironment.Database"/>.</summary>
    public const string DatabaseSetting = "Tenantry:App:Database";

    /// <summary>The setting that names a dedicated instance's tenant when set; else <see cref="TenantryEnvironment.TenantId"/>.</summary>
    public const string TenantIdSetting = "Tenantry:App:TenantId";

    private readonly string _connectionString;
    private readonly string? _sqliteFile;

    /// <summary>
    /// The database of <paramref name="connectionString"/>: <c>Data Source=&lt;file&gt;</c> (SQLite; the file
    /// must exist when a session opens) or an Npgsql connection string naming a <c>Host</c>.
    /// </summary>
    /// <param name="connectionString">The instance's database.</param>
    /// <param name="dedicatedTenantId">The tenant of a dedicated instance; null for a shared instance.</param>
    public TenantDatabase(string connectionString, Guid? dedicatedTenantId = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        if (dedicatedTenantId == Guid.Empty)
        {
            throw new ArgumentException("The dedicated tenant id is empty.", nameof(dedicatedTenantId));
        }

        DbConnectionStringBuilder parsed;
        try
        {
            parsed = new DbConnectionStringBuilder { ConnectionString = connectionString };
        }
        catch (ArgumentException e)
        {
            // The message says where the format breaks; it never repeats the string, which may hold a password.
            throw new ArgumentException($"The database is not a connection string: {e.Message}", nameof(connectionString));
        }

        if (parsed.ContainsKey("Data Source") || parsed.ContainsKey("DataSource") || parsed.ContainsKey("Filename"))
        {
            var file = new SqliteConnectionStringBuilder(connectionString).DataSource;
            if (string.IsNullOrWhiteSpace(file) || file.Equals(":memory:", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException("A SQLite database is a file: Data Source=<path>.", nameof(connectionString));
            }

            _sqliteFile = Path.GetFullPath(file);
        }
        else
        {
            NpgsqlConnectionStringBuilder npgsql;
            try
            {
                npgsql = new NpgsqlConnectionStringBuilder(connectionString);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"The database is neither Data Source=<file> (SQLite) nor an Npgsql connection string: {e.Message}", nameof(connectionString));
            }

            if (string.IsNullOrEmpty(npgsql.Host))
            {
                throw new ArgumentException("The database is neither Data Source=<file> (SQLite) nor an Npgsql connection string with a Host.", nameof(connectionString));
            }
        }

        _connectionString = connectionString;
        DedicatedTenantId = dedicatedTenantId;
    }

    /// <summary>The tenant this instance is dedicated to; null on a shared instance.</summary>
    public Guid? DedicatedTenantId { get; }

    /// <summary>True when the database is a SQLite file; false on PostgreSQL.</summary>
    public bool IsSqlite => _sqliteFile is not null;

    /// <summary>
    /// The instance's database from <paramref name="configuration"/>: <c>Tenantry:App:Database</c> or
    /// <c>TENANTRY_DATABASE</c>, and <c>Tenantry:App:TenantId</c> or <c>TENANTRY_TENANT_ID</c> on a dedicated instance.
    /// </summary>
    /// <exception cref="InvalidOperationException">The database is not set, or a setting is malformed.</exception>
    public static TenantDatabase FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var database = First(configuration, DatabaseSetting, TenantryEnvironment.Database)
            ?? throw new InvalidOperationException($"{TenantryEnvironment.Database} is not set: Tenantry sets it for every app instance it starts (or set {DatabaseSetting}).");
        Guid? tenant = null;
        if (First(configuration, TenantIdSetting, TenantryEnvironment.TenantId) is { } id)
        {
            tenant = Guid.TryParse(id, CultureInfo.InvariantCulture, out var parsed) && parsed != Guid.Empty
                ? parsed
                : throw new InvalidOperationException($"{TenantryEnvironment.TenantId}: '{id}' is not a tenant id (a UUID).");
        }

        try
        {
            return new TenantDatabase(database, tenant);
        }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException($"{TenantryEnvironment.Database}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Where the tenant's data lives in this instance's database. On a shared instance: pool tenants
    /// only, in the pool behind the tenant filter. On a dedicated instance: its own tenant only, in its database.
    /// </summary>
    /// <exception cref="InvalidOperationException">This instance's database does not hold the tenant's data.</exception>
    public TenantDataContext For(Guid tenantId, string slug, IsolationModel isolation)
    {
        if (DedicatedTenantId is { } own)
        {
            if (tenantId != own)
            {
                throw new InvalidOperationException($"This instance is dedicated to tenant {own}; tenant {tenantId}'s data is not in its database.");
            }

            if (isolation != IsolationModel.Silo)
            {
                throw new InvalidOperationException($"A dedicated instance's database holds a silo tenant's data, not a {isolation.ToWire()} tenant's.");
            }

            return Context(tenantId, slug, isolation, IsSqlite ? new SqliteFileTarget(_sqliteFile!) : PostgresSiloTarget.FromConnectionString(_connectionString));
        }

        if (isolation != IsolationModel.Pool)
        {
            // Without the tenant filter the pool database would show this tenant every pool tenant's rows.
            throw new InvalidOperationException($"A shared instance's database is the pool; a {isolation.ToWire()} tenant's data is not in it.");
        }

        return Context(tenantId, slug, isolation, IsSqlite ? new SqlitePoolTarget(_sqliteFile!) : new PostgresPoolTarget(_connectionString));
    }

    /// <summary>The database without credentials, for logs.</summary>
    public override string ToString() =>
        (IsSqlite ? $"SQLite {_sqliteFile}" : PostgresPoolTarget.Redacted(_connectionString)) + (DedicatedTenantId is { } id ? $", dedicated to {id}" : ", shared");

    private static TenantDataContext Context(Guid tenantId, string slug, IsolationModel isolation, TenantDataTarget target)
    {
        var context = new TenantDataContext { TenantId = tenantId, Slug = slug, Isolation = isolation, Target = target };
        context.Validate();
        return context;
    }

    private static string? First(IConfiguration configuration, string setting, string variable) =>
        configuration[setting] is { } value && !string.IsNullOrWhiteSpace(value) ? value
        : configuration[variable] is { } fallback && !string.IsNullOrWhiteSpace(fallback) ? fallback
        : null;
}
