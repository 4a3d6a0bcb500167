using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Tenantry.AspNetCore.Tests;

/// <summary>An EC P-256 key that signs tenant-context tokens as the gateway does, and its public JWKS.</summary>
internal sealed class TestContextKey : IDisposable
{
    private readonly ECDsa _ecdsa;

    public TestContextKey(ECDsa ecdsa)
    {
        _ecdsa = ecdsa;
        using var publicOnly = ECDsa.Create(ecdsa.ExportParameters(includePrivateParameters: false));
        var jwk = JsonWebKeyConverter.ConvertFromECDsaSecurityKey(new ECDsaSecurityKey(publicOnly));
        KeyId = Base64UrlEncoder.Encode(jwk.ComputeJwkThumbprint());
        Jwks = JsonSerializer.Serialize(new { keys = new[] { new { kty = jwk.Kty, crv = jwk.Crv, x = jwk.X, y = jwk.Y, kid = KeyId, use = "sig", alg = "ES256" } } });
        Credentials = Credential(KeyId);
    }

    public string KeyId { get; }

    public string Jwks { get; }

    public SigningCredentials Credentials { get; }

    public static TestContextKey Create() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256));

    public static TestContextKey FromPem(string pem)
    {
        var ecdsa = ECDsa.Create();
        ecdsa.ImportFromPem(pem);
        return new TestContextKey(ecdsa);
    }

    /// <summary>
    /// A token for <paramref name="context"/> signed at <paramref name="at"/> (default now) for 30 s; its audience is
    /// <paramref name="audiences"/>, by default <c>orders</c> (and the tenant id when <paramref name="dedicated"/>).
    /// </summary>
    public string Sign(TenantContext context, bool dedicated = false, DateTimeOffset? at = null, IEnumerable<string>? audiences = null, string? kid = null)
    {
        var now = (at ?? DateTimeOffset.UtcNow).UtcDateTime;
        var credentials = kid is null ? Credentials : Credential(kid);
        var descriptor = new SecurityTokenDescriptor
        {
            TokenType = TenantContextToken.Type,
            SigningCredentials = credentials,
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddSeconds(30),
            Claims = new Dictionary<string, object>(StringComparer.Ordinal)
            {
                ["tenant_id"] = context.TenantId.ToString(),
                ["slug"] = context.Slug,
                ["tier"] = context.Tier,
                ["isolation"] = context.Isolation.ToWire(),
                ["sub"] = context.Subject,
                ["roles"] = context.Roles.ToArray(),
                ["jti"] = Guid.NewGuid().ToString("N"),
            },
        };
        foreach (var audience in audiences ?? (dedicated ? [TenantContextToken.DefaultAudience, context.TenantId.ToString()] : [TenantContextToken.DefaultAudience]))
        {
            descriptor.Audiences.Add(audience);
        }

        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    public void Dispose() => _ecdsa.Dispose();

    // No shared provider cache: it is keyed by the key's thumbprint, and another instance of the same key would get this one's disposed ECDsa.
    private SigningCredentials Credential(string kid) => new(
        new ECDsaSecurityKey(_ecdsa) { KeyId = kid, CryptoProviderFactory = new CryptoProviderFactory { CacheSignatureProviders = false } },
        SecurityAlgorithms.EcdsaSha256);
}

/// <summary>A clock that stands still.</summary>
internal sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
