using System.ComponentModel.DataAnnotations;

namespace Tenantry.ControlPlane.Providers.Postgres;

/// <summary>
/// <c>Tenantry:Postgres</c>: the PostgreSQL servers tenant databases are provisioned into. With
/// no server listed, tenant data stays on the embedded SQLite default.
/// </summary>
public sealed class PostgresProviderOptions
{
    /// <summary>Registered servers. Pool tenants share <see cref="PoolDatabase"/> on <see cref="PoolServer"/>; bridge and silo tenants are placed.</summary>
    public List<PostgresServerOptions> Servers { get; set; } = [];

    /// <summary>Name of the server holding the shared pool database; the first server when unset.</summary>
    public string? PoolServer { get; set; }

    [Required]
    [RegularExpression("^[a-z_][a-z0-9_]{0,62}$")]
    public string PoolDatabase { get; set; } = "tenantry_pool";

    /// <summary>The shared database bridge tenants get a schema in, one per server.</summary>
    [Required]
    [RegularExpression("^[a-z_][a-z0-9_]{0,62}$")]
    public string BridgeDatabase { get; set; } = "tenantry_bridge";

    /// <summary>The pool's app role: logs in, <c>NOBYPASSRLS</c>, owns nothing.</summary>
    [Required]
    [RegularExpression("^[a-z_][a-z0-9_]{0,62}$")]
    public string PoolAppRole { get; set; } = "tenantry_pool_app";

    /// <summary>Tenants migrated at once by a fleet migration.</summary>
    [Range(1, 64)]
    public int MigrationParallelism { get; set; } = 4;

    public bool Enabled => Servers.Count > 0;
}

/// <summary>One PostgreSQL server Tenantry may provision into.</summary>
public sealed class PostgresServerOptions
{
    /// <summary>How resources and placement name it (<c>pg-1</c>); defaults to <c>host:port</c>.</summary>
    public string? Name { get; set; }

    /// <summary>Npgsql connection string of a role that may create databases and roles (<c>CREATEDB CREATEROLE</c>, or a superuser).</summary>
    [Required]
    public string ConnectionString { get; set; } = "";

    /// <summary>Bridge and silo tenants this server takes at most; placement prefers the emptiest server relative to it.</summary>
    [Range(1, 1_000_000)]
    public int Capacity { get; set; } = 500;
}
