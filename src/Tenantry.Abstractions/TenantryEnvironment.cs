namespace Tenantry;

/// <summary>
/// The environment Tenantry gives every app instance it starts, in any language: all an instance
/// learns of the platform. Nothing else of the host's environment is passed on.
/// </summary>
public static class TenantryEnvironment
{
    /// <summary>The port to listen on, on 127.0.0.1 only (the gateway is the instance's only client).</summary>
    public const string Port = "PORT";

    /// <summary>The app's registered name: the audience a tenant-context token for this instance names.</summary>
    public const string App = "TENANTRY_APP";

    /// <summary>The version of the app's release this instance runs.</summary>
    public const string Release = "TENANTRY_RELEASE";

    /// <summary>Set on a tenant's dedicated instance only: the id of the one tenant it serves.</summary>
    public const string TenantId = "TENANTRY_TENANT_ID";

    /// <summary>
    /// The instance's database: an Npgsql connection string, or <c>Data Source=&lt;file&gt;</c> on SQLite.
    /// A shared instance gets the pool database (as a role that row-level security binds), a dedicated
    /// instance its tenant's own database.
    /// </summary>
    public const string Database = "TENANTRY_DATABASE";

    /// <summary>The gateway's public keys (a JWKS, JSON) that verify the tenant-context token.</summary>
    public const string ContextJwks = "TENANTRY_CONTEXT_JWKS";

    /// <summary>A shared instance's data endpoint: where it asks for a pool or bridge tenant's database, with the request's own context token.</summary>
    public const string DataUrl = "TENANTRY_DATA_URL";

    /// <summary>The instance's folder on the control plane's machine; the supervisor recognises the instance's processes by it.</summary>
    public const string Instance = "TENANTRY_INSTANCE";
}
