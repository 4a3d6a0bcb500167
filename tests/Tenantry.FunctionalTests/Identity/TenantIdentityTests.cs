using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Identity;

public sealed class TenantIdentityTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    [Fact]
    public async Task Invited_admin_logs_in_with_the_password_grant_and_gets_tenant_claims()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("idp-one", "premium");
        using var invite = await client.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "admin@idp-one.test", role = "admin" });
        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;

        using var anonymous = factory.CreateClient();
        var claims = Claims(await LoginAsync(anonymous, "admin@idp-one.test", password, "idp-one"));
        Assert.Equal(id, claims.GetProperty("tenant_id").GetString());
        Assert.Equal("premium", claims.GetProperty("tier").GetString());
        Assert.Equal("admin", claims.GetProperty("role").GetString());
        Assert.Equal("RS256", Header(await LoginAsync(anonymous, "admin@idp-one.test", password, null)).GetProperty("alg").GetString());

        using var again = await client.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "admin@idp-one.test", role = "admin" });
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        var users = await client.GetJsonAsync($"/v1/tenants/{id}/users");
        Assert.Equal("active", users.GetProperty("items")[0].GetProperty("status").GetString());
    }

    [Fact]
    public async Task Users_who_log_in_are_metered_as_active_users_once_each()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("idp-metered", "basic");
        using var anonymous = factory.CreateClient();
        foreach (var email in new[] { "one@idp-metered.test", "two@idp-metered.test" })
        {
            using var invite = await client.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email, role = "member" });
            var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;
            await LoginAsync(anonymous, email, password, "idp-metered");
            await LoginAsync(anonymous, email, password, "idp-metered");
        }

        // Logins are written with the built-in usage buffer (flushed every second).
        var deadline = DateTime.UtcNow.AddSeconds(15);
        decimal users = 0;
        while (DateTime.UtcNow < deadline && users < 2)
        {
            var usage = await client.GetJsonAsync($"/v1/usage?tenantId={id}&meter=active_users&window=month");
            users = usage.GetProperty("items").EnumerateArray().Sum(p => p.GetProperty("value").GetDecimal());
            await Task.Delay(200);
        }

        Assert.Equal(2m, users);
    }

    [Fact]
    public async Task Wrong_password_unknown_user_and_other_tenant_get_no_token()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("idp-two");
        await client.CreateActiveTenantAsync("idp-three");
        using var invite = await client.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "member@idp-two.test", role = "member" });
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;

        using var anonymous = factory.CreateClient();
        Assert.Equal(HttpStatusCode.BadRequest, (await PasswordGrantAsync(anonymous, "member@idp-two.test", password + "x", null)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await PasswordGrantAsync(anonymous, "nobody@idp-two.test", password, null)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await PasswordGrantAsync(anonymous, "member@idp-two.test", password, "idp-three")).StatusCode);
        var claims = Claims(await LoginAsync(anonymous, "member@idp-two.test", password, id));
        Assert.Equal("member", claims.GetProperty("role").GetString());
    }

    [Fact]
    public async Task A_user_invited_while_the_tenant_is_provisioning_can_log_in_once_it_is_active()
    {
        using var client = await factory.OperatorAsync();
        using var created = await client.CreateTenantAsync(new { name = "Early", slug = "idp-early", tier = "basic", adminEmail = "a@idp-early.test" });
        var id = (await created.JsonAsync()).GetProperty("id").GetString()!;
        using var invite = await client.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "early@idp-early.test", role = "member" });
        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;
        await client.WaitForStatusAsync(id, "active");
        using var anonymous = factory.CreateClient();
        Assert.Equal(id, Claims(await LoginAsync(anonymous, "early@idp-early.test", password, "idp-early")).GetProperty("tenant_id").GetString());
    }

    [Fact]
    public async Task Bad_invites_are_validation_problems()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("idp-four");
        using var badEmail = await client.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "not an email", role = "member" });
        Assert.Equal(HttpStatusCode.BadRequest, badEmail.StatusCode);
        using var badRole = await client.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "x@idp-four.test", role = "owner" });
        Assert.Equal(HttpStatusCode.BadRequest, badRole.StatusCode);
        Assert.Equal("https://tenantry.dev/problems/validation", (await badRole.JsonAsync()).GetProperty("type").GetString());
        using var missing = await client.PostAsJsonAsync("/v1/tenants/no-such-tenant/users", new { email = "x@y.test", role = "member" });
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Machine_client_gets_tenant_tokens_until_the_tenant_is_suspended()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("idp-five", "standard");
        using var created = await client.PostAsJsonAsync($"/v1/tenants/{id}/clients", new { name = "billing job" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = await created.JsonAsync();
        var clientId = body.GetProperty("clientId").GetString()!;
        var secret = body.GetProperty("clientSecret").GetString()!;
        using var invite = await client.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "a@idp-five.test", role = "admin" });
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;

        using var anonymous = factory.CreateClient();
        var claims = Claims(await ClientTokenAsync(anonymous, clientId, secret));
        Assert.Equal(id, claims.GetProperty("tenant_id").GetString());
        Assert.Equal("standard", claims.GetProperty("tier").GetString());
        Assert.Equal("machine", claims.GetProperty("role").GetString());

        using (var suspend = await client.PostAsync($"/v1/tenants/{id}/suspend", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, suspend.StatusCode);
        }

        await client.WaitForStatusAsync(id, "suspended");
        Assert.Equal(HttpStatusCode.BadRequest, (await PasswordGrantAsync(anonymous, "a@idp-five.test", password, null)).StatusCode);
        using var refused = await ClientGrantAsync(anonymous, clientId, secret);
        Assert.False(refused.IsSuccessStatusCode);
    }

    [Fact]
    public async Task Discovery_and_jwks_are_published()
    {
        using var anonymous = factory.CreateClient();
        var discovery = await anonymous.GetJsonAsync("/.well-known/openid-configuration");
        Assert.EndsWith("/connect/token", discovery.GetProperty("token_endpoint").GetString(), StringComparison.Ordinal);
        Assert.Contains("password", discovery.GetProperty("grant_types_supported").EnumerateArray().Select(e => e.GetString()));
        var jwks = await anonymous.GetJsonAsync(new Uri(discovery.GetProperty("jwks_uri").GetString()!).PathAndQuery);
        var key = jwks.GetProperty("keys")[0];
        Assert.Equal("RSA", key.GetProperty("kty").GetString());
        Assert.False(key.TryGetProperty("d", out _));
    }

    internal static async Task<string> LoginAsync(HttpClient client, string email, string password, string? tenant)
    {
        using var response = await PasswordGrantAsync(client, email, password, tenant);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.JsonAsync()).GetProperty("access_token").GetString()!;
    }

    private static Task<HttpResponseMessage> PasswordGrantAsync(HttpClient client, string email, string password, string? tenant)
    {
        var form = new Dictionary<string, string> { ["grant_type"] = "password", ["username"] = email, ["password"] = password };
        if (tenant is not null)
        {
            form["tenant"] = tenant;
        }

        return client.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(form));
    }

    private static async Task<string> ClientTokenAsync(HttpClient client, string clientId, string secret)
    {
        using var response = await ClientGrantAsync(client, clientId, secret);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.JsonAsync()).GetProperty("access_token").GetString()!;
    }

    private static Task<HttpResponseMessage> ClientGrantAsync(HttpClient client, string clientId, string secret) =>
        client.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = clientId,
            ["client_secret"] = secret,
        }));

    private static JsonElement Claims(string jwt) => Part(jwt, 1);

    private static JsonElement Header(string jwt) => Part(jwt, 0);

    private static JsonElement Part(string jwt, int index)
    {
        var part = jwt.Split('.')[index].Replace('-', '+').Replace('_', '/');
        part = part.PadRight(part.Length + ((4 - (part.Length % 4)) % 4), '=');
        return JsonDocument.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(part))).RootElement.Clone();
    }
}
