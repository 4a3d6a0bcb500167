using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Validation;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Identity;

public sealed class AuthTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    [Fact]
    public async Task No_token_gets_401_problem()
    {
        using var client = factory.CreateClient();
        using var response = await client.GetAsync(new Uri("/v1/tenants", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Token_without_admin_scope_gets_403()
    {
        using var client = factory.CreateClient();
        var token = await TenantryFactory.TokenAsync(client, "operator", TenantryFactory.OperatorSecret, "");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await client.GetAsync(new Uri("/v1/tenants", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Theory]
    [InlineData("operator", "wrong-secret-wrong-secret")]
    [InlineData("nobody", TenantryFactory.OperatorSecret)]
    [InlineData("operator", "")]
    public async Task Wrong_client_credentials_get_no_token(string clientId, string secret)
    {
        using var client = factory.CreateClient();
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret, ["scope"] = "tenantry:admin",
        });
        using var response = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        Assert.False(response.IsSuccessStatusCode);
        var error = await response.Content.ReadAsStringAsync();
        Assert.True(error.Contains("invalid_client", StringComparison.Ordinal) || error.Contains("invalid_request", StringComparison.Ordinal), error);
        Assert.DoesNotContain("access_token", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scope_the_client_does_not_hold_is_refused()
    {
        using var client = factory.CreateClient();
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = "operator", ["client_secret"] = TenantryFactory.OperatorSecret, ["scope"] = "tenantry:admin tenantry:root",
        });
        using var response = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("invalid_scope", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Operator_token_is_a_signed_jwt_with_the_admin_scope()
    {
        using var client = factory.CreateClient();
        var token = await TenantryFactory.TokenAsync(client, "operator", TenantryFactory.OperatorSecret, "tenantry:admin");
        var jwt = new JsonWebToken(token);
        Assert.Equal("RS256", jwt.Alg);
        Assert.Equal("operator", jwt.Subject);
        Assert.Contains("tenantry:admin", jwt.GetClaim("scope").Value, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tampered_token_gets_401()
    {
        using var client = factory.CreateClient();
        var token = await TenantryFactory.TokenAsync(client, "operator", TenantryFactory.OperatorSecret, "tenantry:admin");
        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("\"operator\"", "\"intruder\"", StringComparison.Ordinal);
        var forged = $"{parts[0]}.{Base64UrlEncoder.Encode(payload)}.{parts[2]}";
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", forged);
        using var response = await client.GetAsync(new Uri("/v1/tenants", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    /// <summary>Checks are remembered per token (<see cref="Tenantry.ControlPlane.Identity.AccessTokenCache"/>): a token already accepted, then altered, is still refused.</summary>
    [Fact]
    public async Task Tampering_with_a_token_already_accepted_gets_401()
    {
        var validation = factory.Services.GetRequiredService<IOptionsMonitor<OpenIddictValidationOptions>>().CurrentValue;
        Assert.IsType<Tenantry.ControlPlane.Identity.AccessTokenCache>(validation.JsonWebTokenHandler);
        using var client = factory.CreateClient();
        var token = await TenantryFactory.TokenAsync(client, "operator", TenantryFactory.OperatorSecret, "tenantry:admin");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        for (var i = 0; i < 2; i++)
        {
            using var accepted = await client.GetAsync(new Uri("/v1/tenants", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64UrlEncoder.DecodeBytes(parts[1])).Replace("\"operator\"", "\"intruder\"", StringComparison.Ordinal);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", $"{parts[0]}.{Base64UrlEncoder.Encode(payload)}.{parts[2]}");
        using var response = await client.GetAsync(new Uri("/v1/tenants", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Unsigned_alg_none_token_gets_401()
    {
        using var client = factory.CreateClient();
        var header = Base64UrlEncoder.Encode("""{"alg":"none","typ":"at+jwt"}""");
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var payload = Base64UrlEncoder.Encode($$"""{"sub":"operator","scope":"tenantry:admin","iat":{{now}},"exp":{{now + 600}}}""");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", $"{header}.{payload}.");
        using var response = await client.GetAsync(new Uri("/v1/tenants", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Token_signed_by_another_key_gets_401()
    {
        using var client = factory.CreateClient();
        using var rsa = RSA.Create(2048);
        var token = Sign(new RsaSecurityKey(rsa) { KeyId = "attacker" }, DateTime.UtcNow.AddMinutes(10));
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await client.GetAsync(new Uri("/v1/tenants", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Expired_token_signed_by_the_real_key_gets_401()
    {
        using var client = factory.CreateClient();
        // A real token first, so the host has written its signing key.
        await TenantryFactory.TokenAsync(client, "operator", TenantryFactory.OperatorSecret, "tenantry:admin");
        using var rsa = RSA.Create();
        rsa.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(factory.DataDir, "keys", "signing.pem")));
        var token = Sign(new RsaSecurityKey(rsa), DateTime.UtcNow.AddMinutes(-5));
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await client.GetAsync(new Uri("/v1/tenants", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    /// <summary>An id_token is signed with the same key as access tokens; only its <c>typ</c> tells them apart.</summary>
    [Fact]
    public async Task An_id_token_is_refused_at_the_api()
    {
        using var op = await factory.OperatorAsync();
        var id = await op.CreateActiveTenantAsync("typ-check");
        using var invite = await op.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "admin@typ-check.test", role = "admin" });
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;
        using var client = factory.CreateClient();
        using var grant = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = "admin@typ-check.test", ["password"] = password, ["tenant"] = "typ-check", ["scope"] = "openid email",
        }));
        var tokens = await grant.JsonAsync();
        var idToken = tokens.GetProperty("id_token").GetString()!;
        Assert.NotEqual("at+jwt", new JsonWebToken(idToken).Typ);

        // The access token reaches the tenant's objects; the id_token of the same sign-in does not get past authentication.
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(client, $"/v1/tenants/{id}/objects", tokens.GetProperty("access_token").GetString()!)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await GetAsync(client, $"/v1/tenants/{id}/objects", idToken)).StatusCode);

        // A real operator access token, signed again with the host's key: accepted as at+jwt, refused as any other type.
        var access = await TenantryFactory.TokenAsync(client, "operator", TenantryFactory.OperatorSecret, "tenantry:admin");
        using var rsa = RSA.Create();
        rsa.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(factory.DataDir, "keys", "signing.pem")));
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(client, "/v1/tenants", Resign(access, rsa, "at+jwt"))).StatusCode);
        foreach (var typ in new[] { "JWT", "id_token+jwt", null })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await GetAsync(client, "/v1/tenants", Resign(access, rsa, typ))).StatusCode);
        }
    }

    /// <summary>The token with its <c>typ</c> header replaced (or removed), signed with <paramref name="key"/>.</summary>
    internal static string Resign(string token, RSA key, string? typ)
    {
        var parts = token.Split('.');
        var header = System.Text.Json.Nodes.JsonNode.Parse(Base64UrlEncoder.Decode(parts[0]))!.AsObject();
        header.Remove("typ");
        if (typ is not null)
        {
            header["typ"] = typ;
        }

        var signed = Base64UrlEncoder.Encode(header.ToJsonString()) + "." + parts[1];
        var signature = key.SignData(Encoding.ASCII.GetBytes(signed), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return signed + "." + Base64UrlEncoder.Encode(signature);
    }

    private static async Task<HttpResponseMessage> GetAsync(HttpClient client, string path, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await client.SendAsync(request);
    }

    [Fact]
    public void Secret_files_are_readable_by_the_owner_only()
    {
        using var client = factory.CreateClient();
        foreach (var file in new[] { Path.Combine(factory.DataDir, "keys", "signing.pem"), Path.Combine(factory.DataDir, "keys", "encryption.pem") })
        {
            Assert.True(File.Exists(file), file);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }
    }

    [Fact]
    public async Task Health_and_openapi_are_public()
    {
        using var client = factory.CreateClient();
        using var health = await client.GetAsync(new Uri("/healthz", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var openapi = await client.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative));
        Assert.Contains("/v1/tenants", openapi, StringComparison.Ordinal);
        Assert.Contains("/v1/operations/{id}/retry", openapi, StringComparison.Ordinal);
    }

    private static string Sign(SecurityKey key, DateTime expires) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
    {
        Issuer = "http://127.0.0.1:5080/",
        Subject = new System.Security.Claims.ClaimsIdentity([new("sub", "operator"), new("scope", "tenantry:admin")]),
        NotBefore = expires.AddMinutes(-20),
        IssuedAt = expires.AddMinutes(-20),
        Expires = expires,
        TokenType = "at+jwt",
        SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.RsaSha256),
    });
}
