using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Tenantry.AspNetCore;

namespace Tenantry.Gateway;

/// <summary>
/// The gateway's tenant-context signing key: EC P-256, kept as PKCS#8 PEM in a file only the
/// gateway's processes read (mode 0600), created once. Its <c>kid</c> is the RFC 7638 thumbprint of
/// the public key. <see cref="PublicJwks"/> is all an app ever gets.
/// </summary>
public sealed class TenantContextSigningKey : IDisposable
{
    private volatile Signer _signer;
    private volatile string _publicJwks;

    private TenantContextSigningKey(ECDsa ecdsa)
    {
        _signer = new Signer(ecdsa);
        _publicJwks = Jwks([_signer.PublicJwk]);
    }

    /// <summary>The id of the key that signs now.</summary>
    public string KeyId => _signer.KeyId;

    /// <summary>The public keys as a JWKS (JSON): what apps verify the tenant context with. After a rotation it also holds the next and the retiring keys.</summary>
    public string PublicJwks => _publicJwks;

    internal SigningCredentials Credentials => _signer.Credentials;

    /// <summary>
    /// Signs with <paramref name="pem"/> from now on (a key rotation) and publishes the public halves of
    /// <paramref name="publishedPems"/> (the next and retiring keys beside it) to the app instances started from now on.
    /// The key replaced is left to the collector: a token being signed with it may still be in flight.
    /// </summary>
    public void Use(string pem, IEnumerable<string> publishedPems)
    {
        ArgumentException.ThrowIfNullOrEmpty(pem);
        ArgumentNullException.ThrowIfNull(publishedPems);
        var signer = pem == _signer.Pem ? _signer : new Signer(Import(pem));
        var published = new List<JsonWebKey> { signer.PublicJwk };
        foreach (var other in publishedPems.Where(p => p != pem).Distinct(StringComparer.Ordinal))
        {
            using var ecdsa = Import(other);
            published.Add(Signer.PublicJwkOf(ecdsa));
        }

        _publicJwks = Jwks(published);
        _signer = signer;
    }

    private static string Jwks(IEnumerable<JsonWebKey> keys) => JsonSerializer.Serialize(new
    {
        keys = keys.Select(k => new { kty = k.Kty, crv = k.Crv, x = k.X, y = k.Y, kid = k.Kid, use = "sig", alg = TenantContextToken.Algorithm }).ToArray(),
    });

    /// <summary>Reads the key file, creating it (a new P-256 key, mode 0600) when it does not exist.</summary>
    public static TenantContextSigningKey LoadOrCreate(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var created = ECDsa.Create(ECCurve.NamedCurves.nistP256))
            using (var stream = new FileStream(temp, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(created.ExportPkcs8PrivateKeyPem());
            }

            try
            {
                File.Move(temp, path, overwrite: false);
            }
            catch (IOException)
            {
                // Another gateway process made it first; use theirs.
                File.Delete(temp);
            }
        }

        return FromPem(File.ReadAllText(path));
    }

    /// <summary>A key from its PKCS#8 PEM, which must be EC P-256.</summary>
    public static TenantContextSigningKey FromPem(string pem) => new(Import(pem));

    public void Dispose() => _signer.Dispose();

    private static ECDsa Import(string pem)
    {
        ArgumentException.ThrowIfNullOrEmpty(pem);
        var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportFromPem(pem);
            if (ecdsa.KeySize != 256 || ecdsa.ExportParameters(false).Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
            {
                throw new CryptographicException("The tenant-context signing key must be an EC P-256 key.");
            }

            return ecdsa;
        }
        catch
        {
            ecdsa.Dispose();
            throw;
        }
    }

    /// <summary>One private key with its credentials and public JWK.</summary>
    private sealed class Signer : IDisposable
    {
        private readonly ECDsa _ecdsa;

        // The key's own signature-provider cache: the process-wide default one is keyed by the key's thumbprint and
        // would hand a later instance of the same key (a host started again in this process) a provider of this
        // instance's ECDsa once it is disposed.
        private readonly InMemoryCryptoProviderCache _providers = new();

        public Signer(ECDsa ecdsa)
        {
            _ecdsa = ecdsa;
            Pem = ecdsa.ExportPkcs8PrivateKeyPem();
            PublicJwk = PublicJwkOf(ecdsa);
            KeyId = PublicJwk.Kid;
            var key = new ECDsaSecurityKey(ecdsa) { CryptoProviderFactory = new CryptoProviderFactory(_providers), KeyId = KeyId };
            Credentials = new SigningCredentials(key, TenantContextToken.Algorithm);
        }

        public string Pem { get; }

        public string KeyId { get; }

        public JsonWebKey PublicJwk { get; }

        public SigningCredentials Credentials { get; }

        /// <summary>The public JWK of <paramref name="ecdsa"/>, its <c>kid</c> the RFC 7638 thumbprint.</summary>
        public static JsonWebKey PublicJwkOf(ECDsa ecdsa)
        {
            var jwk = JsonWebKeyConverter.ConvertFromECDsaSecurityKey(new ECDsaSecurityKey(ECDsa.Create(ecdsa.ExportParameters(includePrivateParameters: false))));
            jwk.Kid = Base64UrlEncoder.Encode(jwk.ComputeJwkThumbprint());
            return jwk;
        }

        public void Dispose()
        {
            _providers.Dispose();
            _ecdsa.Dispose();
        }
    }
}

/// <summary>Signs the tenant context of a request for its upstream: one short-lived ES256 token per request.</summary>
public sealed class TenantContextSigner(TenantContextSigningKey key, IOptions<GatewayOptions> options, TimeProvider time)
{
    // SetDefaultTimesOnTokenCreation off: the times come from the injected clock.
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };
    private readonly string _audience = options.Value.ContextAudience;
    private readonly TimeSpan _lifetime = options.Value.ContextLifetime;

    /// <summary>
    /// The token for <paramref name="context"/>; <paramref name="dedicated"/> when it goes to the tenant's dedicated
    /// instance, whose id then joins the audience (a token for the shared instance is not good there).
    /// </summary>
    public string Sign(TenantContext context, bool dedicated) => Sign(context, dedicated, _audience);

    /// <summary>The token for <paramref name="context"/> to an instance of the app <paramref name="audience"/>.</summary>
    public string Sign(TenantContext context, bool dedicated, string audience)
    {
        ArgumentNullException.ThrowIfNull(context);
        var now = time.GetUtcNow().UtcDateTime;
        var descriptor = new SecurityTokenDescriptor
        {
            TokenType = TenantContextToken.Type,
            SigningCredentials = key.Credentials,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + _lifetime,
            Claims = new Dictionary<string, object>(StringComparer.Ordinal)
            {
                [TenantContextToken.TenantIdClaim] = context.TenantId.ToString(),
                [TenantContextToken.SlugClaim] = context.Slug,
                [TenantContextToken.TierClaim] = context.Tier,
                [TenantContextToken.IsolationClaim] = context.Isolation.ToWire(),
                [TenantContextToken.SubjectClaim] = context.Subject,
                [TenantContextToken.RolesClaim] = context.Roles.ToArray(),
                [JwtRegisteredClaimNames.Jti] = Guid.NewGuid().ToString("N"),
            },
        };
        descriptor.Audiences.Add(audience);
        if (dedicated)
        {
            descriptor.Audiences.Add(context.TenantId.ToString());
        }

        return _handler.CreateToken(descriptor);
    }
}
