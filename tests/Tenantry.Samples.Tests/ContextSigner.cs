using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Tenantry.Samples.Tests;

/// <summary>A tenant as the gateway describes it in the context token.</summary>
internal sealed record TenantClaims(Guid TenantId, string Slug, string Isolation, string Tier = "basic")
{
    public static TenantClaims Pool(string slug) => new(Guid.CreateVersion7(), slug, "pool");

    public static TenantClaims Bridge(string slug) => new(Guid.CreateVersion7(), slug, "bridge", "standard");

    public static TenantClaims Silo(string slug) => new(Guid.CreateVersion7(), slug, "silo", "premium");

    public string Id => TenantId.ToString();
}

/// <summary>
/// Signs tenant-context tokens the way docs/tenant-context.md describes them (compact JWS, ES256,
/// raw r||s signature, kid = RFC 7638 thumbprint), built here from the bytes up so that a test can
/// also make the tokens the gateway never would (another typ, alg or kid, claims missing).
/// </summary>
internal sealed class ContextSigner : IDisposable
{
    private readonly ECDsa _key;

    private ContextSigner(ECDsa key)
    {
        _key = key;
        var p = key.ExportParameters(includePrivateParameters: false);
        var x = Base64Url.EncodeToString(p.Q.X);
        var y = Base64Url.EncodeToString(p.Q.Y);
        KeyId = Base64Url.EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes($$"""{"crv":"P-256","kty":"EC","x":"{{x}}","y":"{{y}}"}""")));
        Jwks = new JsonObject
        {
            ["keys"] = new JsonArray(new JsonObject { ["kty"] = "EC", ["crv"] = "P-256", ["x"] = x, ["y"] = y, ["kid"] = KeyId, ["use"] = "sig", ["alg"] = "ES256" }),
        }.ToJsonString();
    }

    /// <summary>The key's id: what the gateway puts in <c>kid</c>.</summary>
    public string KeyId { get; }

    /// <summary>The public JWKS an app gets in TENANTRY_CONTEXT_JWKS.</summary>
    public string Jwks { get; }

    /// <summary>The fixed test key of docs/tenant-context.md (<c>tenant-context-test-key.pem</c>), or the "wrong key".</summary>
    public static ContextSigner FromResource(string pem)
    {
        var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(NotesSample.ContextResource(pem)));
        return new ContextSigner(key);
    }

    /// <summary>
    /// A token for <paramref name="tenant"/> with <paramref name="audiences"/> (one is written as a string, as the
    /// gateway does), issued at <paramref name="issuedAt"/> (default now) for <paramref name="lifetimeSeconds"/>.
    /// <paramref name="edit"/> changes the header and claims before signing; <paramref name="kid"/> names another key.
    /// </summary>
    public string Sign(
        TenantClaims tenant,
        IReadOnlyList<string> audiences,
        DateTimeOffset? issuedAt = null,
        int lifetimeSeconds = 30,
        string? kid = null,
        Action<JsonObject, JsonObject>? edit = null)
    {
        var iat = (issuedAt ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds();
        var header = new JsonObject { ["alg"] = "ES256", ["kid"] = kid ?? KeyId, ["typ"] = "tenant-context+jwt" };
        var claims = new JsonObject
        {
            ["tenant_id"] = tenant.Id,
            ["slug"] = tenant.Slug,
            ["tier"] = tenant.Tier,
            ["isolation"] = tenant.Isolation,
            ["sub"] = $"{tenant.Id}:ada@{tenant.Slug}.example",
            ["roles"] = new JsonArray("admin"),
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["aud"] = audiences.Count == 1 ? audiences[0] : new JsonArray([.. audiences.Select(a => (JsonNode)a)]),
            ["iat"] = iat,
            ["nbf"] = iat,
            ["exp"] = iat + lifetimeSeconds,
        };
        edit?.Invoke(header, claims);
        var signed = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        // IEEE P1363: r and s as two 32-byte big-endian numbers, the JWS form of an ES256 signature.
        var signature = _key.SignData(Encoding.ASCII.GetBytes(signed), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return signed + "." + Base64Url.EncodeToString(signature);
    }

    public void Dispose() => _key.Dispose();
}
