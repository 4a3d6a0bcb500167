using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using Tenantry.AspNetCore;

namespace Tenantry.Gateway;

/// <summary>Gateway settings, under <c>Tenantry:Gateway</c>.</summary>
public sealed class GatewayOptions
{
    public const string Section = "Tenantry:Gateway";

    /// <summary>The token issuer (the control plane): its discovery document names the JWKS that signs tenant tokens.</summary>
    [Required]
    public Uri? Authority { get; set; }

    /// <summary>
    /// The shared app instance that serves pool and bridge tenants, for a route source without
    /// registered apps; with registered apps each app's shared instances come from the routing table.
    /// </summary>
    public Uri? SharedUpstream { get; set; }

    /// <summary>When set, <c>{slug}.{Domain}</c> host names name a tenant, and must name the token's tenant.</summary>
    public string? Domain { get; set; }

    /// <summary>When true, an <c>X-Tenant-Id</c> request header (id or slug) names a tenant, and must name the token's tenant.</summary>
    public bool AllowTenantHeader { get; set; } = true;

    /// <summary>How often the routing table is reloaded from the control plane.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A routing table older than this (the control plane has not answered) is not trusted: requests get 503.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan MaxStaleness { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long the gateway waits on an app instance that sends nothing (no response headers, no body
    /// bytes) before it gives up on the request and answers 503 with <c>Retry-After</c>.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan UpstreamTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// After a tenant's dedicated instance has timed out, its requests get 503 at once, with this as
    /// <c>Retry-After</c>, for this long (meanwhile its supervisor restarts it if it hung); then the
    /// gateway tries it again.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan UpstreamRetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A Redis configuration string (<c>host:port,…</c>). When set, rate-limit and quota counters live
    /// in Redis, shared by every gateway replica; the daily quota is then per UTC calendar day.
    /// </summary>
    public string? Redis { get; set; }

    /// <summary>
    /// The gateway's private EC P-256 key (PKCS#8 PEM, mode 0600, created on first use) that signs the
    /// tenant-context token sent to apps. Gateway processes only: apps get the public JWKS.
    /// </summary>
    [Required]
    public string? ContextSigningKeyFile { get; set; }

    /// <summary>The app's name, the tenant-context token's audience (a dedicated instance's token also names its tenant).</summary>
    [Required]
    public string ContextAudience { get; set; } = TenantContextToken.DefaultAudience;

    /// <summary>How long a tenant-context token is valid: long enough to reach the app, too short to be worth capturing.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan ContextLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Limits per tier, for routes that carry no plan limits of their own (the control plane's routes
    /// carry the limits of the tenant's plan from the plan catalog); a tier not listed gets <see cref="DefaultLimits"/>.
    /// </summary>
    public Dictionary<string, PlanLimits> Plans { get; set; } = new(StringComparer.Ordinal)
    {
        ["basic"] = new() { RequestsPerSecond = 50, DailyQuota = 1_000_000 },
        ["standard"] = new() { RequestsPerSecond = 100, DailyQuota = 5_000_000 },
        ["premium"] = new() { RequestsPerSecond = 300, DailyQuota = 20_000_000 },
    };

    public PlanLimits DefaultLimits { get; set; } = new() { RequestsPerSecond = 50, DailyQuota = 1_000_000 };

    public PlanLimits LimitsFor(string tier) => Plans.TryGetValue(tier, out var limits) ? limits : DefaultLimits;

    /// <summary>The route's own limits (its plan's), else its tier's.</summary>
    public PlanLimits LimitsFor(GatewayRoute route)
    {
        ArgumentNullException.ThrowIfNull(route);
        return route.Limits ?? LimitsFor(route.Tier);
    }
}

/// <summary>A plan's traffic limits.</summary>
public sealed record PlanLimits
{
    /// <summary>Sustained rate (token-bucket refill).</summary>
    public int RequestsPerSecond { get; set; } = 50;

    /// <summary>Bucket size: requests allowed at once after a quiet spell; 0 means one second's worth.</summary>
    public int Burst { get; set; }

    /// <summary>Requests per rolling day (window starting at the tenant's first request); 0 means no quota.</summary>
    public long DailyQuota { get; set; }

    public int EffectiveBurst => Burst > 0 ? Burst : RequestsPerSecond;
}

internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        var errors = new List<string>();
        foreach (var (tier, limits) in options.Plans.Append(new("(default)", options.DefaultLimits)))
        {
            if (limits.RequestsPerSecond is < 1 or > 1_000_000)
            {
                errors.Add($"Tenantry:Gateway:Plans:{tier}:RequestsPerSecond must be 1-1000000.");
            }

            if (limits.Burst is < 0 or > 10_000_000 || limits.DailyQuota < 0 || limits.DailyQuota > int.MaxValue)
            {
                errors.Add($"Tenantry:Gateway:Plans:{tier}: Burst must be 0-10000000 and DailyQuota 0-{int.MaxValue}.");
            }
        }

        if (options.Domain is { Length: > 0 } domain && (domain.StartsWith('.') || domain.Contains('/', StringComparison.Ordinal)))
        {
            errors.Add("Tenantry:Gateway:Domain is a host name such as tenants.example.com.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
