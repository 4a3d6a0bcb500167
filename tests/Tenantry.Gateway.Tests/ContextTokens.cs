using Microsoft.Extensions.Options;
using Tenantry.AspNetCore;

namespace Tenantry.Gateway.Tests;

/// <summary>Tenant-context tokens as a test needs them: signed with the host's own gateway key (a request in flight, or a stolen key), or another.</summary>
internal static class ContextTokens
{
    public static string KeyFile(string dataDir) => Path.Combine(dataDir, "keys", "tenant-context-es256.pem");

    /// <summary>A token signed with the host's gateway key, as the gateway would send it at <paramref name="at"/> (default now).</summary>
    public static string Sign(string dataDir, TenantContext context, bool dedicated = false, DateTimeOffset? at = null)
    {
        using var key = TenantContextSigningKey.LoadOrCreate(KeyFile(dataDir));
        return Sign(key, context, dedicated, at);
    }

    public static string Sign(TenantContextSigningKey key, TenantContext context, bool dedicated = false, DateTimeOffset? at = null, string audience = TenantContextToken.DefaultAudience) =>
        new TenantContextSigner(key, Options.Create(new GatewayOptions { ContextAudience = audience }), at is { } t ? new FixedTime(t) : TimeProvider.System)
            .Sign(context, dedicated);
}

/// <summary>A clock that stands still.</summary>
internal sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
