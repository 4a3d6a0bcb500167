using System.Globalization;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Tenantry.AspNetCore;

/// <summary>
/// The tenant context the gateway sends an app: a compact JWS (ES256) in <see cref="Header"/>, signed
/// by a key only the gateway holds and valid for a few seconds. An app verifies it with the gateway's
/// public keys (a JWKS) and can neither forge one nor use a captured one for long.
/// </summary>
public static class TenantContextToken
{
    /// <summary>The request header that carries the token.</summary>
    public const string Header = "X-Tenant-Context";

    /// <summary>The token's <c>typ</c>: a tenant-context token is no other kind of JWT (RFC 8725 §3.11).</summary>
    public const string Type = "tenant-context+jwt";

    /// <summary>The only signing algorithm: ECDSA P-256 with SHA-256.</summary>
    public const string Algorithm = SecurityAlgorithms.EcdsaSha256;

    /// <summary>The name of the app the gateway fronts, the token's audience, until apps are registered by name.</summary>
    public const string DefaultAudience = "orders";

    /// <summary>The environment variable that hands an app the gateway's public JWKS.</summary>
    public const string JwksVariable = TenantryEnvironment.ContextJwks;

    /// <summary>The claim with the tenant's id (a UUID string).</summary>
    public const string TenantIdClaim = "tenant_id";
    /// <summary>The claim with the tenant's slug.</summary>
    public const string SlugClaim = "slug";
    /// <summary>The claim with the tenant's tier.</summary>
    public const string TierClaim = "tier";
    /// <summary>The claim with the tenant's isolation model: <c>pool</c>, <c>bridge</c> or <c>silo</c>.</summary>
    public const string IsolationClaim = "isolation";
    /// <summary>The claim with the caller: a user (<c>{tenantId}:{email}</c>) or a machine client id.</summary>
    public const string SubjectClaim = "sub";
    /// <summary>The claim with the caller's roles, a JSON array of strings.</summary>
    public const string RolesClaim = "roles";

    /// <summary>How far the gateway's and the app's clocks may differ.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromSeconds(5);
}

/// <summary>Why a tenant-context token was refused, or <see cref="Valid"/>.</summary>
public enum TenantContextVerdict
{
    /// <summary>The token is valid here; the result carries its context.</summary>
    Valid,

    /// <summary>No token, or not one token.</summary>
    Missing,

    /// <summary>Not a well-formed ES256 token of this type, or a claim is missing or malformed.</summary>
    Malformed,

    /// <summary>The signature does not verify with any of the gateway's public keys.</summary>
    BadSignature,

    /// <summary>The token's lifetime (plus the allowed clock skew) is over, or it is not valid yet.</summary>
    Expired,

    /// <summary>The token is for another app, or (on a dedicated instance) not for this instance.</summary>
    WrongAudience,

    /// <summary>On a dedicated instance: another tenant's token. On a shared instance: a silo tenant's.</summary>
    WrongTenant,
}

/// <summary>The outcome of verifying a tenant-context token.</summary>
public sealed record TenantContextResult(TenantContextVerdict Verdict, TenantContext? Context = null);

/// <summary>
/// Verifies the gateway's tenant-context token with the public JWKS of <see cref="TenantryAppOptions.ContextJwks"/>:
/// ES256 only, signed, unexpired, for this app (and on a dedicated instance for its tenant), with every claim present.
/// </summary>
public sealed class TenantContextVerifier
{
    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly TokenValidationParameters _parameters;
    private readonly Guid? _dedicatedTenant;

    /// <summary>A verifier for the keys, audience and (on a dedicated instance) tenant of <paramref name="options"/>, on the clock <paramref name="time"/>.</summary>
    public TenantContextVerifier(IOptions<TenantryAppOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        var o = options.Value;
        _dedicatedTenant = o.TenantId;
        _parameters = new TokenValidationParameters
        {
            IssuerSigningKeys = PublicKeys(o.ContextJwks ?? throw new InvalidOperationException("Tenantry:App:ContextJwks is not set.")),
            ValidAlgorithms = [TenantContextToken.Algorithm],
            ValidTypes = [TenantContextToken.Type],
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ValidateAudience = true,
            ValidAudience = o.Audience,
            ValidateIssuer = false,
            ValidateIssuerSigningKey = true,
            ClockSkew = TenantContextToken.ClockSkew,
            // The lifetime is checked on the injected clock, so a replay after expiry is testable without waiting.
            LifetimeValidator = (notBefore, expires, _, _) =>
            {
                var now = time.GetUtcNow().UtcDateTime;
                return expires is { } exp && now <= exp + TenantContextToken.ClockSkew
                    && (notBefore is not { } nbf || now >= nbf - TenantContextToken.ClockSkew);
            },
        };
    }

    /// <summary>The keys of a JWKS, which must be public EC P-256 keys only.</summary>
    public static IList<SecurityKey> PublicKeys(string jwks)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(jwks);
        JsonWebKeySet set;
        try
        {
            set = new JsonWebKeySet(jwks);
        }
        catch (Exception e) when (e is not ArgumentNullException and (ArgumentException or System.Text.Json.JsonException or FormatException))
        {
            throw new ArgumentException("The tenant-context JWKS is not a JSON Web Key Set.", nameof(jwks), e);
        }

        if (set.Keys.Count == 0)
        {
            throw new ArgumentException("The tenant-context JWKS holds no keys.", nameof(jwks));
        }

        foreach (var key in set.Keys)
        {
            if (key.Kty != JsonWebAlgorithmsKeyTypes.EllipticCurve || key.Crv != JsonWebKeyECTypes.P256)
            {
                throw new ArgumentException("The tenant-context JWKS holds a key that is not EC P-256.", nameof(jwks));
            }

            if (key.HasPrivateKey || !string.IsNullOrEmpty(key.D))
            {
                throw new ArgumentException("The tenant-context JWKS holds a private key; an app gets public keys only.", nameof(jwks));
            }
        }

        return set.GetSigningKeys();
    }

    /// <summary>Verifies <paramref name="token"/>; the context when it is valid here.</summary>
    public async Task<TenantContextResult> VerifyAsync(string? token)
    {
        if (string.IsNullOrEmpty(token))
        {
            return new(TenantContextVerdict.Missing);
        }

        var result = await _handler.ValidateTokenAsync(token, _parameters);
        if (!result.IsValid)
        {
            return new(result.Exception switch
            {
                SecurityTokenExpiredException or SecurityTokenInvalidLifetimeException => TenantContextVerdict.Expired,
                SecurityTokenInvalidAudienceException => TenantContextVerdict.WrongAudience,
                SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => TenantContextVerdict.BadSignature,
                _ => TenantContextVerdict.Malformed,
            });
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        if (!jwt.TryGetPayloadValue<string>(TenantContextToken.TenantIdClaim, out var id) || !Guid.TryParse(id, CultureInfo.InvariantCulture, out var tenantId)
            || !jwt.TryGetPayloadValue<string>(TenantContextToken.SlugClaim, out var slug) || string.IsNullOrEmpty(slug)
            || !jwt.TryGetPayloadValue<string>(TenantContextToken.TierClaim, out var tier) || tier is null
            || !jwt.TryGetPayloadValue<string>(TenantContextToken.IsolationClaim, out var isolation) || !WireNames.TryParseIsolation(isolation, out var model)
            || !jwt.TryGetPayloadValue<string>(TenantContextToken.SubjectClaim, out var subject) || subject is null
            || !jwt.TryGetPayloadValue<List<string>>(TenantContextToken.RolesClaim, out var roles) || roles is null)
        {
            return new(TenantContextVerdict.Malformed);
        }

        if (_dedicatedTenant is { } only)
        {
            // The instance's own tenant, and a token minted for this instance: a shared-instance token of the same tenant is not.
            if (tenantId != only)
            {
                return new(TenantContextVerdict.WrongTenant);
            }

            if (!jwt.Audiences.Contains(only.ToString(), StringComparer.OrdinalIgnoreCase))
            {
                return new(TenantContextVerdict.WrongAudience);
            }
        }
        else if (model == IsolationModel.Silo)
        {
            // Silo tenants are served by their dedicated instances only.
            return new(TenantContextVerdict.WrongTenant);
        }

        return new(TenantContextVerdict.Valid, new TenantContext
        {
            TenantId = tenantId,
            Slug = slug,
            Tier = tier,
            Isolation = model,
            Subject = subject,
            Roles = roles,
        });
    }
}
