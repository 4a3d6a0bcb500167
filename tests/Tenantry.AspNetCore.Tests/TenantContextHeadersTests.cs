using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Tenantry.AspNetCore.Tests;

/// <summary>
/// The tenant-context token on its own: what the gateway signs verifies; anything altered, forged, unsigned,
/// expired or for another app or instance does not; and the documented test vectors get their documented verdicts.
/// </summary>
public sealed class TenantContextHeadersTests
{
    private static readonly TenantContext Acme = new()
    {
        TenantId = Guid.CreateVersion7(), Slug = "acme", Tier = "basic", Isolation = IsolationModel.Pool, Subject = "u1", Roles = ["member"],
    };

    private static readonly DateTimeOffset Now = new(2026, 1, 1, 0, 0, 10, TimeSpan.Zero);

    [Fact]
    public async Task A_signed_context_reads_back_and_any_changed_field_is_refused()
    {
        using var key = TestContextKey.FromPem(File.ReadAllText(Resource("tenant-context-test-key.pem")));
        using var other = TestContextKey.FromPem(File.ReadAllText(Resource("tenant-context-other-key.pem")));
        var shared = Verifier(key.Jwks, Now);
        var token = key.Sign(Acme, at: Now);
        var read = await shared.VerifyAsync(token);
        Assert.Equal(TenantContextVerdict.Valid, read.Verdict);
        Assert.Equal(Acme.TenantId, read.Context!.TenantId);
        Assert.Equal(["member"], read.Context.Roles);
        Assert.Equal(Acme.Subject, read.Context.Subject);

        var parts = token.Split('.');
        foreach (var (claim, value) in new (string, JsonNode)[]
        {
            ("tenant_id", Guid.CreateVersion7().ToString()), ("slug", "mega"), ("tier", "premium"), ("isolation", "bridge"),
            ("roles", new JsonArray("admin")), ("sub", "someone-else"), ("exp", Now.AddDays(1).ToUnixTimeSeconds()), ("aud", "billing"),
        })
        {
            var payload = JsonNode.Parse(Base64UrlEncoder.Decode(parts[1]))!.AsObject();
            payload[claim] = value;
            Assert.Equal(TenantContextVerdict.BadSignature, (await shared.VerifyAsync($"{parts[0]}.{Encode(payload)}.{parts[2]}")).Verdict);
        }

        // Another key, even one that claims the real key's kid; no signature; a MAC keyed with the public JWKS.
        var hs = new JsonObject { ["alg"] = "HS256", ["kid"] = key.KeyId, ["typ"] = TenantContextToken.Type };
        var hsInput = $"{Encode(hs)}.{parts[1]}";
        var none = new JsonObject { ["alg"] = "none", ["typ"] = TenantContextToken.Type };
        foreach (var attack in new[]
        {
            other.Sign(Acme, at: Now),
            other.Sign(Acme, at: Now, kid: key.KeyId),
            $"{Encode(none)}.{parts[1]}.",
            $"{hsInput}.{Base64UrlEncoder.Encode(HMACSHA256.HashData(Encoding.UTF8.GetBytes(key.Jwks), Encoding.ASCII.GetBytes(hsInput)))}",
            "", "not a token", $"{parts[0]}.{parts[1]}",
        })
        {
            Assert.NotEqual(TenantContextVerdict.Valid, (await shared.VerifyAsync(attack)).Verdict);
        }

        // Replayed once its few seconds are over (and the clock skew), at the same app; or meant for another app.
        Assert.Equal(TenantContextVerdict.Expired, (await Verifier(key.Jwks, Now.AddSeconds(36)).VerifyAsync(token)).Verdict);
        Assert.Equal(TenantContextVerdict.WrongAudience, (await shared.VerifyAsync(key.Sign(Acme, at: Now, audiences: ["billing"]))).Verdict);

        // A dedicated instance takes its own tenant's tokens minted for it, and nothing else; the shared one no silo tenant.
        var mega = Acme with { TenantId = Guid.CreateVersion7(), Slug = "mega", Isolation = IsolationModel.Silo };
        var dedicated = Verifier(key.Jwks, Now, mega.TenantId);
        Assert.Equal(TenantContextVerdict.Valid, (await dedicated.VerifyAsync(key.Sign(mega, dedicated: true, at: Now))).Verdict);
        Assert.Equal(TenantContextVerdict.WrongTenant, (await dedicated.VerifyAsync(key.Sign(Acme, dedicated: true, at: Now))).Verdict);
        Assert.Equal(TenantContextVerdict.WrongTenant, (await dedicated.VerifyAsync(key.Sign(Acme, at: Now, audiences: ["orders", mega.TenantId.ToString()]))).Verdict);
        Assert.Equal(TenantContextVerdict.WrongAudience, (await dedicated.VerifyAsync(key.Sign(mega, at: Now))).Verdict);
        Assert.Equal(TenantContextVerdict.WrongTenant, (await shared.VerifyAsync(key.Sign(mega, at: Now))).Verdict);

        // The same verifier, used from many threads at once, still agrees.
        await Parallel.ForAsync(0, 64, async (_, _) => Assert.Equal(TenantContextVerdict.Valid, (await shared.VerifyAsync(token)).Verdict));
    }

    [Fact]
    public void A_jwks_with_a_private_key_or_a_key_of_another_kind_is_refused()
    {
        using var key = TestContextKey.FromPem(File.ReadAllText(Resource("tenant-context-test-key.pem")));
        using var ecdsa = ECDsa.Create();
        ecdsa.ImportFromPem(File.ReadAllText(Resource("tenant-context-test-key.pem")));
        var full = JsonWebKeyConverter.ConvertFromECDsaSecurityKey(new ECDsaSecurityKey(ecdsa));
        using var rsa = RSA.Create(2048);
        var rsaJwk = JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(rsa.ExportParameters(false)));
        foreach (var jwks in new[]
        {
            JsonSerializer.Serialize(new { keys = new[] { new { kty = "EC", crv = "P-256", x = full.X, y = full.Y, d = full.D } } }),
            JsonSerializer.Serialize(new { keys = new[] { new { kty = "RSA", n = rsaJwk.N, e = rsaJwk.E } } }),
            JsonSerializer.Serialize(new { keys = Array.Empty<object>() }),
        })
        {
            Assert.Throws<ArgumentException>(() => TenantContextVerifier.PublicKeys(jwks));
        }

        Assert.Single(TenantContextVerifier.PublicKeys(key.Jwks));
    }

    /// <summary>The test vectors of docs/tenant-context.md: each gets its documented verdict, and the document shows the same ones.</summary>
    [Fact]
    public async Task The_verifier_gives_each_documented_test_vector_its_verdict()
    {
        var vectors = JsonNode.Parse(File.ReadAllText(Resource("tenant-context-vectors.json")))!;
        var at = DateTimeOffset.Parse(vectors["at"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        var jwks = vectors["jwks"]!.ToJsonString();
        using var key = TestContextKey.FromPem(File.ReadAllText(Resource("tenant-context-test-key.pem")));
        Assert.Equal(key.KeyId, vectors["jwks"]!["keys"]![0]!["kid"]!.GetValue<string>());
        Assert.Equal(JsonNode.Parse(key.Jwks)!.ToJsonString(), jwks);

        var doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "docs", "tenant-context.md"));
        Assert.Contains(vectors["jwks"]!["keys"]![0]!["x"]!.GetValue<string>(), doc, StringComparison.Ordinal);
        foreach (var vector in vectors["vectors"]!.AsArray())
        {
            var name = vector!["name"]!.GetValue<string>();
            var instance = vector["instance_tenant"]?.GetValue<string>() is { } id ? Guid.Parse(id) : (Guid?)null;
            var token = vector["token"]!.GetValue<string>();
            var expected = vector["verdict"]!.GetValue<string>();
            var verdict = Wire((await Verifier(jwks, at, instance).VerifyAsync(token)).Verdict);
            Assert.True(expected == verdict, $"{name}: expected {expected}, got {verdict}");
            Assert.True(doc.Contains(token, StringComparison.Ordinal), $"docs/tenant-context.md lacks the vector '{name}'.");
        }
    }

    private static string Wire(TenantContextVerdict verdict) => verdict switch
    {
        TenantContextVerdict.Valid => "valid",
        TenantContextVerdict.Expired => "expired",
        TenantContextVerdict.WrongAudience => "wrong-audience",
        TenantContextVerdict.BadSignature => "bad-signature",
        TenantContextVerdict.WrongTenant => "wrong-tenant",
        TenantContextVerdict.Missing => "missing",
        _ => "malformed",
    };

    private static TenantContextVerifier Verifier(string jwks, DateTimeOffset now, Guid? dedicatedTenant = null) =>
        new(Options.Create(new TenantryAppOptions { ContextJwks = jwks, TenantId = dedicatedTenant }), new FixedTime(now));

    private static string Resource(string name) => Path.Combine(AppContext.BaseDirectory, "Resources", name);

    private static string Encode(JsonNode node) => Base64UrlEncoder.Encode(node.ToJsonString());

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Tenantry.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (Tenantry.slnx) is not above " + AppContext.BaseDirectory);
    }
}
