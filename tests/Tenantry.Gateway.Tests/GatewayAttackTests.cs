using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>Tries to reach another tenant's data, or any data without a valid tenant, through the gateway and around it.</summary>
[Collection(PlatformCollection.Name)]
public sealed class GatewayAttackTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_token_with_another_tenants_header_or_host_is_refused()
    {
        using var acme = platform.Acme.Client();
        foreach (var named in new[] { "mega", platform.Mega.Id.ToString(), "nonexistent" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/orders");
            request.Headers.Add("X-Tenant-Id", named);
            using var response = await acme.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("https://tenantry.dev/problems/tenant-mismatch", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
        }

        using (var request = new HttpRequestMessage(HttpMethod.Get, "/orders"))
        {
            request.Headers.Host = "mega.tenants.test";
            using var response = await acme.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }

        // The token's own tenant, by host or header, is fine.
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/orders"))
        {
            request.Headers.Host = "acme.tenants.test";
            request.Headers.Add("X-Tenant-Id", "acme");
            using var response = await acme.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    /// <summary>
    /// The tenant's real access token, signed again with the host's own key: it passes as <c>at+jwt</c>, and the
    /// same claims under any other <c>typ</c> (an id_token's, say, had it a tenant_id) are refused.
    /// </summary>
    [Fact]
    public async Task A_token_of_another_type_is_refused_even_with_a_tenant_id_and_the_right_signature()
    {
        using var rsa = RSA.Create();
        rsa.ImportFromPem(await File.ReadAllTextAsync(Path.Combine(platform.Host.DataDir, "keys", "signing.pem")));
        using (var accepted = platform.Acme.Client(Resign(platform.Acme.Token, rsa, "at+jwt")))
        {
            Assert.Equal(HttpStatusCode.OK, (await accepted.GetAsync(new Uri("/orders", UriKind.Relative))).StatusCode);
        }

        foreach (var typ in new[] { "JWT", "id_token+jwt", "application/jwt", null })
        {
            using var client = platform.Acme.Client(Resign(platform.Acme.Token, rsa, typ));
            using var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }
    }

    private static string Resign(string token, RSA key, string? typ)
    {
        var header = Decode(token.Split('.')[0]);
        header.Remove("typ");
        if (typ is not null)
        {
            header["typ"] = typ;
        }

        return Sign(header, Decode(token.Split('.')[1]), key);
    }

    [Fact]
    public async Task Spoofed_tenant_context_headers_are_stripped_at_the_gateway()
    {
        using var acme = platform.Acme.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/instance");
        request.Headers.Add("X-Tenant-Slug", "mega");
        request.Headers.Add("X-Tenant-Tier", "premium");
        request.Headers.Add("X-Tenant-Isolation", "silo");
        request.Headers.Add("X-Tenant-Roles", "admin");
        request.Headers.Add("X-Tenant-Signature", "AAAA");
        using var response = await acme.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var instance = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("acme", instance.GetProperty("slug").GetString());
        Assert.Equal("basic", instance.GetProperty("tier").GetString());
    }

    [Fact]
    public async Task Apps_refuse_requests_that_bypass_the_gateway()
    {
        using var direct = new HttpClient { BaseAddress = platform.Host.SharedApp };
        var acme = new AspNetCore.TenantContext
        {
            TenantId = platform.Acme.Id, Slug = "acme", Tier = "basic", Isolation = IsolationModel.Pool, Subject = "me", Roles = ["admin"],
        };
        using var attackerEcdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var attackerKey = TenantContextSigningKey.FromPem(attackerEcdsa.ExportPkcs8PrivateKeyPem());
        using var hostKey = TenantContextSigningKey.LoadOrCreate(ContextTokens.KeyFile(platform.Host.DataDir));
        var real = ContextTokens.Sign(hostKey, acme);
        var parts = real.Split('.');
        var altered = Decode(parts[1]);
        altered["roles"] = new JsonArray("owner");
        var attacks = new Dictionary<string, IEnumerable<(string, string)>>
        {
            ["the former context headers"] = [
                ("X-Tenant-Id", platform.Acme.Id.ToString()), ("X-Tenant-Slug", "acme"), ("X-Tenant-Tier", "basic"), ("X-Tenant-Isolation", "pool"),
                ("X-Tenant-Subject", "me"), ("X-Tenant-Roles", "admin"), ("X-Tenant-Signature", Convert.ToBase64String(new byte[32]))],
            ["a token signed by another key"] = [(AspNetCore.TenantContextToken.Header, ContextTokens.Sign(attackerKey, acme))],
            ["a captured token replayed after it expired"] = [(AspNetCore.TenantContextToken.Header, ContextTokens.Sign(platform.Host.DataDir, acme, at: DateTimeOffset.UtcNow.AddMinutes(-2)))],
            ["claims altered after signing"] = [(AspNetCore.TenantContextToken.Header, $"{parts[0]}.{Encode(altered)}.{parts[2]}")],
            ["a token for another app"] = [(AspNetCore.TenantContextToken.Header, ContextTokens.Sign(hostKey, acme, audience: "billing"))],
            ["alg none"] = [(AspNetCore.TenantContextToken.Header, $"{Encode(new JsonObject { ["alg"] = "none", ["typ"] = AspNetCore.TenantContextToken.Type })}.{parts[1]}.")],
        };
        foreach (var (name, headers) in attacks)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/orders");
            foreach (var (header, value) in headers)
            {
                request.Headers.Add(header, value);
            }

            using var response = await direct.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{name}: {(int)response.StatusCode}");
        }

        // The real token still works: the refusals above are the attacks', not the setup's.
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/orders"))
        {
            request.Headers.Add(AspNetCore.TenantContextToken.Header, real);
            using var response = await direct.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Even with the real signing key, a dedicated instance serves its own tenant only, with tokens minted for it.
        var tenant = await platform.TenantAsync(platform.Mega.Id.ToString());
        using var dedicated = new HttpClient { BaseAddress = new Uri(tenant.GetProperty("resources").GetProperty("compute").GetProperty("apps").GetProperty("orders").GetProperty("upstream").GetString()!) };
        var mega = new AspNetCore.TenantContext
        {
            TenantId = platform.Mega.Id, Slug = "mega", Tier = "premium", Isolation = IsolationModel.Silo, Subject = "x", Roles = [],
        };
        foreach (var (name, token, status) in new[]
        {
            ("tenant A at tenant B's instance", ContextTokens.Sign(platform.Host.DataDir, acme, dedicated: true), HttpStatusCode.Forbidden),
            ("the instance's tenant, signed for the shared instance", ContextTokens.Sign(platform.Host.DataDir, mega), HttpStatusCode.Unauthorized),
            ("the instance's tenant, expired", ContextTokens.Sign(platform.Host.DataDir, mega, dedicated: true, at: DateTimeOffset.UtcNow.AddMinutes(-2)), HttpStatusCode.Unauthorized),
        })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/orders");
            request.Headers.Add(AspNetCore.TenantContextToken.Header, token);
            using var response = await dedicated.SendAsync(request);
            Assert.True(response.StatusCode == status, $"{name}: {(int)response.StatusCode}");
        }

        // And the shared instance does not serve a silo tenant, whoever signed the token.
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/orders"))
        {
            request.Headers.Add(AspNetCore.TenantContextToken.Header, ContextTokens.Sign(platform.Host.DataDir, mega));
            using var response = await direct.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
    }

    [Fact]
    public async Task A_dedicated_instance_is_given_no_key_that_can_sign_a_tenant_context()
    {
        var pid = platform.Host.InstancePid("mega");
        var environ = (await File.ReadAllTextAsync($"/proc/{pid}/environ")).Split('\0');
        var cmdline = await File.ReadAllTextAsync($"/proc/{pid}/cmdline");
        var jwks = Assert.Single(environ, e => e.StartsWith(AspNetCore.TenantContextToken.JwksVariable + "=", StringComparison.Ordinal));
        using var key = TenantContextSigningKey.LoadOrCreate(ContextTokens.KeyFile(platform.Host.DataDir));
        // The signing key's public half, then the next key's, which signs after a rotation.
        var keyFile = ContextTokens.KeyFile(platform.Host.DataDir);
        using var next = TenantContextSigningKey.LoadOrCreate(Path.Combine(Path.GetDirectoryName(keyFile)!, Path.GetFileNameWithoutExtension(keyFile) + ".next.pem"));
        var given = System.Text.Json.Nodes.JsonNode.Parse(jwks[(AspNetCore.TenantContextToken.JwksVariable.Length + 1)..])!["keys"]!.AsArray();
        Assert.Equal([key.KeyId, next.KeyId], given.Select(k => k!["kid"]!.GetValue<string>()));
        foreach (var text in environ.Append(cmdline))
        {
            Assert.DoesNotContain("\"d\":", text, StringComparison.Ordinal);
            Assert.DoesNotContain("PRIVATE KEY", text, StringComparison.Ordinal);
            Assert.DoesNotContain("tenant-context-es256", text, StringComparison.Ordinal);
            Assert.DoesNotContain("ContextSigningKey", text, StringComparison.Ordinal);
        }

        // The key file is the gateway's alone.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(ContextTokens.KeyFile(platform.Host.DataDir)));
    }

    [Fact]
    public async Task Missing_forged_unsigned_tampered_and_expired_tokens_are_refused()
    {
        using var anonymous = new HttpClient { BaseAddress = platform.Host.Gateway };
        using (var response = await anonymous.GetAsync(new Uri("/orders", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        var real = platform.Acme.Token;
        var header = Decode(real.Split('.')[0]);
        var claims = Decode(real.Split('.')[1]);
        var issuerKey = RSA.Create();
        issuerKey.ImportFromPem(File.ReadAllText(Path.Combine(platform.Host.DataDir, "keys", "signing.pem")));
        var attacker = RSA.Create(2048);

        var expired = claims.DeepClone().AsObject();
        expired["iat"] = DateTimeOffset.UtcNow.AddHours(-3).ToUnixTimeSeconds();
        expired["nbf"] = DateTimeOffset.UtcNow.AddHours(-3).ToUnixTimeSeconds();
        expired["exp"] = DateTimeOffset.UtcNow.AddHours(-2).ToUnixTimeSeconds();
        var otherTenant = claims.DeepClone().AsObject();
        otherTenant["tenant_id"] = platform.Mega.Id.ToString();
        var noneHeader = new JsonObject { ["alg"] = "none", ["typ"] = "at+jwt" };
        var hsHeader = new JsonObject { ["alg"] = "HS256", ["typ"] = "at+jwt", ["kid"] = header["kid"]?.GetValue<string>() };

        var attacks = new Dictionary<string, string>
        {
            ["alg:none, no signature"] = $"{Encode(noneHeader)}.{Encode(otherTenant)}.",
            ["signed by another key with the issuer's kid"] = Sign(header, otherTenant, attacker),
            ["claims changed after signing"] = $"{real.Split('.')[0]}.{Encode(otherTenant)}.{real.Split('.')[2]}",
            ["expired, signed by the issuer"] = Sign(header, expired, issuerKey),
            ["HS256 keyed with the issuer's public key"] = SignHs(hsHeader, otherTenant, issuerKey.ExportSubjectPublicKeyInfo()),
            ["garbage"] = "not.a.jwt",
        };
        foreach (var (name, token) in attacks)
        {
            using var client = platform.Acme.Client(token);
            using var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{name}: {(int)response.StatusCode}");
        }

        // Control: the same construction with a live lifetime is accepted, so the expired token failed on its expiry alone.
        var fresh = claims.DeepClone().AsObject();
        fresh["exp"] = DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeSeconds();
        using var control = platform.Acme.Client(Sign(header, fresh, issuerKey));
        using var ok = await control.GetAsync(new Uri("/orders", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task An_operator_token_is_not_a_tenant_token()
    {
        using var client = new HttpClient { BaseAddress = platform.Host.Gateway };
        client.DefaultRequestHeaders.Authorization = platform.Operator.DefaultRequestHeaders.Authorization;
        using var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Theory]
    [InlineData("..")]
    [InlineData("..%2F..%2Fcontrol.db")]
    [InlineData("..%2F..%2F..%2Fbravo%2Fuploads%2Fx")]
    [InlineData("a%2Fb")]
    [InlineData("..%5Cwin.ini")]
    [InlineData(".hidden")]
    [InlineData("%00name")]
    [InlineData("name%20")]
    [InlineData("%2E%2E")]
    public async Task Path_tricks_in_attachment_names_are_refused(string name)
    {
        using var acme = platform.Acme.Client();
        using var order = await acme.PostAsJsonAsync("/orders", new { amount = 2m });
        var id = (await order.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var before = Directory.GetFiles(platform.Host.DataDir, "*", SearchOption.AllDirectories).Length;
        using var upload = await acme.PutAsync(new Uri($"/orders/{id}/attachments/{name}", UriKind.Relative), new ByteArrayContent("evil"u8.ToArray()));
        Assert.True(upload.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed, $"{name}: {(int)upload.StatusCode}");
        var written = Directory.GetFiles(platform.Host.DataDir, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith("-wal", StringComparison.Ordinal) && !f.EndsWith("-shm", StringComparison.Ordinal) && !f.EndsWith(".log", StringComparison.Ordinal))
            .Where(f => Holds(f, "evil"u8.ToArray()));
        Assert.Empty(written);
        Assert.True(before > 0);
    }

    [Fact]
    public async Task A_suspended_tenants_live_token_is_refused_within_seconds_and_works_again_after_reactivation()
    {
        var tenant = await platform.Host.OnboardAsync(platform.Operator, "sleepy", "basic");
        using var client = tenant.Client();
        using (var first = await client.GetAsync(new Uri("/orders", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        using (var suspend = await platform.Operator.PostAsync($"/v1/tenants/{tenant.Id}/suspend", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, suspend.StatusCode);
        }

        await TenantryHost.WaitForStatusAsync(platform.Operator, tenant.Id.ToString(), "suspended");
        var clock = Stopwatch.StartNew();
        HttpStatusCode status;
        do
        {
            using var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            status = response.StatusCode;
            if (status == HttpStatusCode.Forbidden)
            {
                Assert.Equal("https://tenantry.dev/problems/tenant-inactive", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
                break;
            }

            await Task.Delay(50);
        }
        while (clock.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.Forbidden, status);

        using var cp = new HttpClient { BaseAddress = platform.Host.ControlPlane };
        using (var login = await TenantryHost.PasswordGrantAsync(cp, "admin@sleepy.test", tenant.Password, "sleepy"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, login.StatusCode);
        }

        using (var reactivate = await platform.Operator.PostAsync($"/v1/tenants/{tenant.Id}/reactivate", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, reactivate.StatusCode);
        }

        await TenantryHost.WaitForStatusAsync(platform.Operator, tenant.Id.ToString(), "active");
        clock.Restart();
        do
        {
            using var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            status = response.StatusCode;
            await Task.Delay(50);
        }
        while (status != HttpStatusCode.OK && clock.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task A_tenant_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected()
    {
        var tiny = await platform.Host.OnboardAsync(platform.Operator, "tiny", "trial");
        using var client = tiny.Client();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 20 && limited is null; i++)
        {
            var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                limited = response;
            }
            else
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                response.Dispose();
            }
        }

        Assert.NotNull(limited);
        using (limited)
        {
            Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
            var problem = await limited.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("https://tenantry.dev/problems/rate-limited", problem.GetProperty("type").GetString());
            Assert.Equal(429, problem.GetProperty("status").GetInt32());
        }

        using var acme = platform.Acme.Client();
        using var other = await acme.GetAsync(new Uri("/orders", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task A_tenant_past_its_daily_quota_gets_429_until_the_window_ends()
    {
        var metered = await platform.Host.OnboardAsync(platform.Operator, "meter", "metered");
        using var client = metered.Client();
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? last = null;
        for (var i = 0; i < 7; i++)
        {
            last?.Dispose();
            last = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            statuses.Add(last.StatusCode);
        }

        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(HttpStatusCode.TooManyRequests, statuses[^1]);
        Assert.Equal("https://tenantry.dev/problems/quota-exceeded", (await last!.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
        Assert.True(int.Parse(last.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) > 60);
        last.Dispose();
    }

    [Fact]
    public async Task A_plan_change_gives_the_tenant_its_new_plans_limits_at_the_gateway_without_a_restart()
    {
        var tenant = await platform.Host.OnboardAsync(platform.Operator, "upgrade", "basic");
        using var client = tenant.Client();

        // On the basic plan (50 r/s, burst 50) ten requests in a row all pass.
        for (var i = 0; i < 10; i++)
        {
            using var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var plan = await platform.Operator.PostAsJsonAsync("/v1/plans", new
        {
            id = "trickle", name = "Trickle", tier = "basic", isolation = "pool", basePrice = 1m,
            rateLimits = new[] { new { name = "api", permitsPerSecond = 1, burst = 2, dailyQuota = 0 } },
        }))
        {
            Assert.Equal(HttpStatusCode.Created, plan.StatusCode);
        }

        using (var change = await platform.Operator.PostAsJsonAsync($"/v1/tenants/{tenant.Id}/plan", new { planId = "trickle" }))
        {
            Assert.True(change.IsSuccessStatusCode, await change.Content.ReadAsStringAsync());
        }

        // The control plane's routing table names the plan in effect and its limits.
        var routes = await platform.Operator.GetFromJsonAsync<JsonElement>(new Uri("/v1/routes", UriKind.Relative));
        var route = routes.GetProperty("items").EnumerateArray().Single(r => r.GetProperty("tenantId").GetGuid() == tenant.Id);
        Assert.Equal("trickle", route.GetProperty("plan").GetString());
        Assert.Equal(2, route.GetProperty("limits").GetProperty("burst").GetInt32());

        // The gateway picks it up at its next reload (every second): bursts of ten then mostly fail.
        var clock = Stopwatch.StartNew();
        int passed;
        HttpResponseMessage? limited = null;
        do
        {
            await Task.Delay(200);
            passed = 0;
            for (var i = 0; i < 10; i++)
            {
                var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.TooManyRequests)
                {
                    limited?.Dispose();
                    limited = response;
                }
                else
                {
                    passed++;
                    response.Dispose();
                }
            }
        }
        while (passed > 4 && clock.Elapsed < TimeSpan.FromSeconds(20));

        // Burst 2, refilled at 1 r/s: a burst of ten gets a few through, never all.
        Assert.True(passed <= 4, $"{passed} of 10 passed on a plan of 1 r/s, burst 2");
        Assert.NotNull(limited);
        using (limited)
        {
            var problem = await limited.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Contains("trickle", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        // Other tenants keep their own plans' limits.
        using var acme = platform.Acme.Client();
        using var other = await acme.GetAsync(new Uri("/orders", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    private static bool Holds(string path, byte[] content)
    {
        try
        {
            return new FileInfo(path).Length == content.Length && File.ReadAllBytes(path).AsSpan().SequenceEqual(content);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static JsonObject Decode(string part)
    {
        var s = part.Replace('-', '+').Replace('_', '/');
        s = s.PadRight(s.Length + ((4 - (s.Length % 4)) % 4), '=');
        return JsonNode.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(s)))!.AsObject();
    }

    private static string Encode(JsonNode node) => Base64Url(Encoding.UTF8.GetBytes(node.ToJsonString()));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string Sign(JsonObject header, JsonObject claims, RSA key)
    {
        var input = $"{Encode(header)}.{Encode(claims)}";
        return input + "." + Base64Url(key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
    }

    private static string SignHs(JsonObject header, JsonObject claims, byte[] secret)
    {
        var input = $"{Encode(header)}.{Encode(claims)}";
        return input + "." + Base64Url(HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(input)));
    }
}
