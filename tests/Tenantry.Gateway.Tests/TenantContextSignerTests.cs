using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Tenantry.AspNetCore;

namespace Tenantry.Gateway.Tests;

/// <summary>The gateway's side of the tenant context: its key file and the tokens it signs, as an app verifies them.</summary>
public sealed class TenantContextSignerTests
{
    private static readonly DateTimeOffset Now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly TenantContext Mega = new()
    {
        TenantId = Guid.CreateVersion7(), Slug = "mega", Tier = "premium", Isolation = IsolationModel.Silo, Subject = "u1", Roles = ["admin", "member"],
    };

    [Fact]
    public async Task The_signing_key_is_made_once_owner_only_and_tokens_carry_the_documented_header_and_claims()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tenantry-context-key-tests", Guid.NewGuid().ToString("N"));
        try
        {
            var path = ContextTokens.KeyFile(dir);
            using var key = TenantContextSigningKey.LoadOrCreate(path);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            using (var again = TenantContextSigningKey.LoadOrCreate(path))
            {
                Assert.Equal(key.KeyId, again.KeyId);
                Assert.Equal(key.PublicJwks, again.PublicJwks);
            }

            var jwk = JsonNode.Parse(key.PublicJwks)!["keys"]![0]!.AsObject();
            Assert.Equal(["kty", "crv", "x", "y", "kid", "use", "alg"], jwk.Select(m => m.Key));

            var signer = new TenantContextSigner(key, Options.Create(new GatewayOptions { ContextLifetime = TimeSpan.FromSeconds(7) }), new FixedTime(Now));
            var token = signer.Sign(Mega, dedicated: true);
            var header = JsonNode.Parse(Base64UrlEncoder.Decode(token.Split('.')[0]))!;
            var claims = JsonNode.Parse(Base64UrlEncoder.Decode(token.Split('.')[1]))!;
            Assert.Equal("ES256", header["alg"]!.GetValue<string>());
            Assert.Equal(TenantContextToken.Type, header["typ"]!.GetValue<string>());
            Assert.Equal(key.KeyId, header["kid"]!.GetValue<string>());
            Assert.Equal(["orders", Mega.TenantId.ToString()], claims["aud"]!.AsArray().Select(a => a!.GetValue<string>()));
            Assert.Equal(Now.ToUnixTimeSeconds() + 7, claims["exp"]!.GetValue<long>());
            Assert.Equal(Now.ToUnixTimeSeconds(), claims["iat"]!.GetValue<long>());
            Assert.NotEqual(claims["jti"]!.GetValue<string>(), JsonNode.Parse(Base64UrlEncoder.Decode(signer.Sign(Mega, dedicated: true).Split('.')[1]))!["jti"]!.GetValue<string>());

            // What the gateway signs, the app's verifier (public JWKS only) reads back, at this instance and no other.
            var dedicated = new TenantContextVerifier(Options.Create(new TenantryAppOptions { ContextJwks = key.PublicJwks, TenantId = Mega.TenantId }), new FixedTime(Now.AddSeconds(1)));
            var read = await dedicated.VerifyAsync(token);
            Assert.Equal(TenantContextVerdict.Valid, read.Verdict);
            Assert.Equal(Mega, read.Context! with { Roles = Mega.Roles });
            Assert.Equal(Mega.Roles, read.Context!.Roles);
            Assert.Equal(TenantContextVerdict.WrongAudience, (await dedicated.VerifyAsync(signer.Sign(Mega, dedicated: false))).Verdict);
            var later = new TenantContextVerifier(Options.Create(new TenantryAppOptions { ContextJwks = key.PublicJwks, TenantId = Mega.TenantId }), new FixedTime(Now.AddSeconds(13)));
            Assert.Equal(TenantContextVerdict.Expired, (await later.VerifyAsync(token)).Verdict);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_key_loaded_again_after_an_earlier_instance_was_disposed_still_signs()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tenantry-context-key-tests", Guid.NewGuid().ToString("N"));
        try
        {
            // A host started again in the same process loads the same key file after the first host disposed its key.
            for (var i = 0; i < 3; i++)
            {
                using var key = TenantContextSigningKey.LoadOrCreate(ContextTokens.KeyFile(dir));
                Assert.NotEmpty(ContextTokens.Sign(key, Mega, dedicated: true, at: Now));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
