using Npgsql;
using Tenantry.Data;

namespace Tenantry.ControlPlane.Providers.Postgres;

/// <summary>One registered server: its name, capacity and how to reach a database on it as the provisioning role.</summary>
internal sealed record PostgresServerInfo(string Name, int Capacity, string AdminConnectionString)
{
    private readonly NpgsqlConnectionStringBuilder _admin = new(AdminConnectionString);

    public string Host => _admin.Host!;

    /// <summary>Never the connection string: it carries the admin password.</summary>
    public override string ToString() => $"{Name} ({Host}:{Port})";

    public int Port => _admin.Port;

    /// <summary>The admin connection string pointed at <paramref name="database"/>.</summary>
    public string AdminConnectionStringFor(string database) =>
        new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = database, IncludeErrorDetail = false }.ConnectionString;

    public async Task<NpgsqlConnection> OpenAdminAsync(string database, CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(AdminConnectionStringFor(database));
        await connection.OpenAsync(cancellationToken);
        return connection;
    }

    /// <summary>Where tenants connect: the admin string's host, port and settings (SSL, timeouts), without its credentials.</summary>
    public PostgresEndpoint Endpoint() => PostgresEndpoint.FromConnectionString(AdminConnectionString);
}

/// <summary>The servers of <c>Tenantry:Postgres:Servers</c>, by name.</summary>
internal sealed class PostgresServers
{
    private readonly Dictionary<string, PostgresServerInfo> _byName = new(StringComparer.Ordinal);

    public PostgresServers(PostgresProviderOptions options)
    {
        foreach (var server in options.Servers)
        {
            var info = new PostgresServerInfo(NameOf(server), server.Capacity, server.ConnectionString);
            _byName.Add(info.Name, info);
            All.Add(info);
        }

        Pool = options.PoolServer is { Length: > 0 } name ? _byName[name] : All[0];
    }

    /// <summary>In configuration order (placement breaks ties by it).</summary>
    public List<PostgresServerInfo> All { get; } = [];

    public PostgresServerInfo Pool { get; }

    public PostgresServerInfo? Find(string name) => _byName.GetValueOrDefault(name);

    public static string NameOf(PostgresServerOptions server)
    {
        if (!string.IsNullOrWhiteSpace(server.Name))
        {
            return server.Name;
        }

        var builder = new NpgsqlConnectionStringBuilder(server.ConnectionString);
        return $"{builder.Host}:{builder.Port}";
    }
}
