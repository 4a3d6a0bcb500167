using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.Tokens;

namespace Tenantry.AspNetCore.Tests;

/// <summary>
/// Tenant resolution in an app behind the gateway, over real HTTP: only a context the gateway signed, unaltered,
/// reaches the app's endpoints, as <see cref="ITenantContext"/>; a dedicated instance serves its own tenant only.
/// </summary>
public sealed class TenantResolutionTests
{
    private static readonly TenantContext Acme = new()
    {
        TenantId = Guid.CreateVersion7(), Slug = "acme", Tier = "standard", Isolation = IsolationModel.Bridge,
        Subject = "acme-user", Roles = ["admin", "member"],
    };

    [Fact]
    public async Task A_context_signed_with_the_gateways_key_reaches_the_endpoint_as_its_tenant()
    {
        await using var app = await TenantApp.StartAsync();
        using var response = await app.SendAsync(HttpMethod.Get, "/whoami", Acme);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(Acme.TenantId, body.GetProperty("tenantId").GetGuid());
        Assert.Equal("acme", body.GetProperty("slug").GetString());
        Assert.Equal("standard", body.GetProperty("tier").GetString());
        Assert.Equal("bridge", body.GetProperty("isolation").GetString());
        Assert.Equal("acme-user", body.GetProperty("subject").GetString());
        Assert.Equal(["admin", "member"], body.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
    }

    [Fact]
    public async Task A_request_without_a_context_gets_401_problem_details_and_never_reaches_the_app()
    {
        await using var app = await TenantApp.StartAsync();
        using var response = await app.SendAsync(HttpMethod.Get, "/whoami", tenant: null);
        await AssertProblemAsync(response, HttpStatusCode.Unauthorized, "tenant-context-missing");
        Assert.Equal(0, app.Served);
    }

    [Fact]
    public async Task A_forged_or_altered_context_is_refused_with_401()
    {
        await using var app = await TenantApp.StartAsync();
        using var attacker = TestContextKey.Create();
        var bravo = Guid.CreateVersion7().ToString();
        var attempts = new (string What, TestContextKey? Key, Action<HttpRequestMessage>? Alter)[]
        {
            ("signed with another key", attacker, null),
            ("signed with another key under the gateway's kid", null, r => Set(r, TenantContextToken.Header, attacker.Sign(Acme, kid: app.Key.KeyId))),
            ("tenant id changed", null, r => Alter(r, p => p["tenant_id"] = bravo)),
            ("slug changed", null, r => Alter(r, p => p["slug"] = "bravo")),
            ("tier raised", null, r => Alter(r, p => p["tier"] = "premium")),
            ("isolation changed", null, r => Alter(r, p => p["isolation"] = "pool")),
            ("subject changed", null, r => Alter(r, p => p["sub"] = "someone-else")),
            ("role added", null, r => Alter(r, p => p["roles"] = new JsonArray("admin", "member", "owner"))),
            ("lifetime extended", null, r => Alter(r, p => p["exp"] = DateTimeOffset.UtcNow.AddDays(1).ToUnixTimeSeconds())),
            ("signature removed", null, r => Set(r, TenantContextToken.Header, Token(r)[..Token(r).LastIndexOf('.')])),
            ("signature zeroed", null, r => Set(r, TenantContextToken.Header, Token(r)[..(Token(r).LastIndexOf('.') + 1)] + Base64UrlEncoder.Encode(new byte[64]))),
            ("alg none", null, r => Set(r, TenantContextToken.Header, $"{Encode(new JsonObject { ["alg"] = "none", ["typ"] = TenantContextToken.Type })}.{Token(r).Split('.')[1]}.")),
            ("HS256 keyed with the public JWKS", null, r =>
            {
                var input = $"{Encode(new JsonObject { ["alg"] = "HS256", ["kid"] = app.Key.KeyId, ["typ"] = TenantContextToken.Type })}.{Token(r).Split('.')[1]}";
                Set(r, TenantContextToken.Header, $"{input}.{Base64UrlEncoder.Encode(HMACSHA256.HashData(Encoding.UTF8.GetBytes(app.Key.Jwks), Encoding.ASCII.GetBytes(input)))}");
            }),
            ("replayed after it expired", null, r => Set(r, TenantContextToken.Header, app.Key.Sign(Acme, at: DateTimeOffset.UtcNow.AddMinutes(-2)))),
            ("for another app", null, r => Set(r, TenantContextToken.Header, app.Key.Sign(Acme, audiences: ["billing"]))),
            ("a second token", null, r => r.Headers.TryAddWithoutValidation(TenantContextToken.Header, app.Key.Sign(Acme with { TenantId = Guid.Parse(bravo) }))),
        };
        foreach (var (what, key, alter) in attempts)
        {
            using var response = await app.SendAsync(HttpMethod.Get, "/whoami", Acme, key: key, alter: alter);
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{what}: {(int)response.StatusCode}");
        }

        // A context made up from scratch in the former headers, without any token.
        using (var unsigned = await app.SendAsync(HttpMethod.Get, "/whoami", tenant: null, alter: r =>
        {
            Set(r, "X-Tenant-Id", bravo);
            Set(r, "X-Tenant-Slug", "bravo");
            Set(r, "X-Tenant-Tier", "basic");
            Set(r, "X-Tenant-Isolation", "pool");
            Set(r, "X-Tenant-Subject", "x");
            Set(r, "X-Tenant-Roles", "admin");
        }))
        {
            await AssertProblemAsync(unsigned, HttpStatusCode.Unauthorized, "tenant-context-missing");
        }

        Assert.Equal(0, app.Served);
    }

    [Fact]
    public async Task A_dedicated_instance_serves_its_own_tenant_and_refuses_another_with_403()
    {
        await using var app = await TenantApp.StartAsync(new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["Tenantry:App:TenantId"] = Acme.TenantId.ToString(),
            ["Tenantry:App:Slug"] = Acme.Slug,
        });
        using (var own = await app.SendAsync(HttpMethod.Get, "/whoami", Acme))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        }

        // Validly signed (same gateway, same key), minted for this instance's address, but for another tenant.
        using (var other = await app.SendAsync(HttpMethod.Get, "/whoami", Acme with { TenantId = Guid.CreateVersion7(), Slug = "bravo" }))
        {
            await AssertProblemAsync(other, HttpStatusCode.Forbidden, "tenant-mismatch");
        }

        Assert.Equal(1, app.Served);
    }

    [Fact]
    public async Task Health_probes_are_served_without_a_tenant_and_only_they()
    {
        await using var app = await TenantApp.StartAsync();
        using (var health = await app.SendAsync(HttpMethod.Get, "/healthz", tenant: null))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using (var near = await app.SendAsync(HttpMethod.Get, "/healthz/", tenant: null))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, near.StatusCode);
        }
    }

    [Fact]
    public async Task A_shared_instance_refuses_a_silo_tenant_with_403()
    {
        await using var app = await TenantApp.StartAsync();
        using var silo = await app.SendAsync(HttpMethod.Get, "/whoami", Acme with { Isolation = IsolationModel.Silo });
        await AssertProblemAsync(silo, HttpStatusCode.Forbidden, "tenant-mismatch");
        Assert.Equal(0, app.Served);
    }

    [Fact]
    public async Task An_app_does_not_start_without_the_gateways_public_jwks_or_with_a_private_key_in_it()
    {
        using var key = TestContextKey.Create();
        var parameters = JsonNode.Parse(key.Jwks)!["keys"]![0]!.AsObject();
        using var ecdsa = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        parameters["d"] = Base64UrlEncoder.Encode(ecdsa.ExportParameters(true).D);
        foreach (var jwks in new[] { "", $"{{\"keys\":[{parameters.ToJsonString()}]}}", "not json" })
        {
            var failure = await Assert.ThrowsAnyAsync<Exception>(() => TenantApp.StartAsync(new Dictionary<string, string?>(StringComparer.Ordinal)
            {
                [TenantContextToken.JwksVariable] = jwks,
            }));
            Assert.Contains("ContextJwks", failure.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_app_name_Tenantry_starts_an_instance_with_is_the_audience_it_takes()
    {
        await using var app = await TenantApp.StartAsync(new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            [TenantryEnvironment.App] = "shop",
        });
        using (var shop = await app.SendAsync(HttpMethod.Get, "/whoami", Acme, alter: r => Set(r, TenantContextToken.Header, app.Key.Sign(Acme, audiences: ["shop"]))))
        {
            Assert.Equal(HttpStatusCode.OK, shop.StatusCode);
        }

        // The default audience is another app's now: a token for it is refused.
        using (var orders = await app.SendAsync(HttpMethod.Get, "/whoami", Acme))
        {
            await AssertProblemAsync(orders, HttpStatusCode.Unauthorized, "tenant-context-missing");
        }

        Assert.Equal(1, app.Served);
    }

    [Fact]
    public async Task A_Tenantry_App_Audience_setting_wins_over_the_app_name_in_the_environment()
    {
        await using var app = await TenantApp.StartAsync(new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            [TenantryEnvironment.App] = "shop",
            ["Tenantry:App:Audience"] = "billing",
        });
        using var billing = await app.SendAsync(HttpMethod.Get, "/whoami", Acme, alter: r => Set(r, TenantContextToken.Header, app.Key.Sign(Acme, audiences: ["billing"])));
        Assert.Equal(HttpStatusCode.OK, billing.StatusCode);
        using var shop = await app.SendAsync(HttpMethod.Get, "/whoami", Acme, alter: r => Set(r, TenantContextToken.Header, app.Key.Sign(Acme, audiences: ["shop"])));
        await AssertProblemAsync(shop, HttpStatusCode.Unauthorized, "tenant-context-missing");
    }

    [Fact]
    public async Task An_instance_started_with_a_tenant_id_in_the_environment_serves_only_that_tenant()
    {
        await using var app = await TenantApp.StartAsync(new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            [TenantryEnvironment.TenantId] = Acme.TenantId.ToString(),
        });
        using (var own = await app.SendAsync(HttpMethod.Get, "/whoami", Acme))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        }

        using (var other = await app.SendAsync(HttpMethod.Get, "/whoami", Acme with { TenantId = Guid.CreateVersion7(), Slug = "bravo" }))
        {
            await AssertProblemAsync(other, HttpStatusCode.Forbidden, "tenant-mismatch");
        }

        // Its own tenant's token for the shared instance (no tenant in the audience) is not one for this instance.
        using (var shared = await app.SendAsync(HttpMethod.Get, "/whoami", Acme, alter: r => Set(r, TenantContextToken.Header, app.Key.Sign(Acme))))
        {
            await AssertProblemAsync(shared, HttpStatusCode.Unauthorized, "tenant-context-missing");
        }

        Assert.Equal(1, app.Served);
    }

    [Theory]
    [InlineData("acme")]
    [InlineData("0190a5f2-7c3e-7b4a-9d1e")]
    public async Task An_instance_whose_tenant_id_in_the_environment_is_not_a_uuid_does_not_start(string tenantId)
    {
        // Ignored, it would leave a shared instance that serves every pool tenant.
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => TenantApp.StartAsync(new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            [TenantryEnvironment.TenantId] = tenantId,
        }));
        Assert.Contains(TenantryEnvironment.TenantId, failure.Message, StringComparison.Ordinal);
    }

    private static string Token(HttpRequestMessage request) => request.Headers.GetValues(TenantContextToken.Header).Single();

    /// <summary>Changes the token's claims and keeps its signature.</summary>
    private static void Alter(HttpRequestMessage request, Action<JsonObject> change)
    {
        var parts = Token(request).Split('.');
        var payload = JsonNode.Parse(Base64UrlEncoder.Decode(parts[1]))!.AsObject();
        change(payload);
        Set(request, TenantContextToken.Header, $"{parts[0]}.{Encode(payload)}.{parts[2]}");
    }

    private static string Encode(JsonNode node) => Base64UrlEncoder.Encode(node.ToJsonString());

    private static void Set(HttpRequestMessage request, string name, string value)
    {
        request.Headers.Remove(name);
        request.Headers.TryAddWithoutValidation(name, value);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string kind)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("https://tenantry.dev/problems/" + kind, problem.GetProperty("type").GetString());
        Assert.Equal((int)status, problem.GetProperty("status").GetInt32());
    }
}
