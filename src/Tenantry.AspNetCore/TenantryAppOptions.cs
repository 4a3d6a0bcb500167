using System.ComponentModel.DataAnnotations;

namespace Tenantry.AspNetCore;

/// <summary>
/// Settings of an app behind the gateway, under <c>Tenantry:App</c>. A dedicated (silo) instance
/// is started by the local compute provider with these set in its environment.
/// </summary>
public sealed class TenantryAppOptions
{
    /// <summary>The configuration section of these settings.</summary>
    public const string Section = "Tenantry:App";

    /// <summary>The Tenantry data directory (tenant databases and storage folders).</summary>
    [Required]
    public string DataDir { get; set; } = ".tenantry";

    /// <summary>
    /// The gateway's public keys (a JWKS, JSON) that verify the tenant-context token; the host passes
    /// them as <c>TENANTRY_CONTEXT_JWKS</c>, which is read when this is unset. Public keys only: a key
    /// with private members is refused at start.
    /// </summary>
    [Required]
    public string? ContextJwks { get; set; }

    /// <summary>
    /// This app's name: the audience a tenant-context token must name. When unset, the name Tenantry
    /// registered the app under (<c>TENANTRY_APP</c>), else <c>orders</c>.
    /// </summary>
    [Required]
    public string Audience { get; set; } = TenantContextToken.DefaultAudience;

    /// <summary>
    /// Set on a dedicated instance: the only tenant it serves. Requests for any other tenant get 403.
    /// When unset, <c>TENANTRY_TENANT_ID</c>, which Tenantry sets on dedicated instances only.
    /// </summary>
    public Guid? TenantId { get; set; }

    /// <summary>The dedicated tenant's slug.</summary>
    public string? Slug { get; set; }

    /// <summary>
    /// The instance's database (<c>TENANTRY_DATABASE</c>, read when this is unset): a dedicated
    /// instance's tenant database, a shared instance's pool; <c>Data Source=</c> a SQLite file or an
    /// Npgsql connection string. Unset: the embedded SQLite files under <see cref="DataDir"/>.
    /// </summary>
    public string? Database { get; set; }

    /// <summary>A shared instance's data endpoint (<c>TENANTRY_DATA_URL</c>, read when this is unset): where it asks for a pool or bridge tenant's database.</summary>
    public Uri? DataUrl { get; set; }

    /// <summary>Paths served without a tenant (health probes).</summary>
    public IList<string> AnonymousPaths { get; } = ["/healthz"];

    /// <see cref="DataDir"/> as an absolute path.
    public string DataPath => Path.GetFullPath(DataDir);
}
