using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Tenantry.FunctionalTests.Identity;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Objects;

/// <summary>
/// The object API with tenant tokens (a user's login, a machine client's token): a tenant reaches
/// its own objects only, under its role policy, its tier's session policy and the guardrails.
/// </summary>
public sealed class ObjectTokenTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    private static Uri Url(string path) => new(path, UriKind.Relative);

    private static ByteArrayContent Body(string text) => new(Encoding.UTF8.GetBytes(text));

    /// <summary>A client carrying the token of a new user of the tenant.</summary>
    private async Task<HttpClient> UserAsync(HttpClient operatorClient, string tenant, string email, string role)
    {
        using var invite = await operatorClient.PostAsJsonAsync($"/v1/tenants/{tenant}/users", new { email, role });
        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;
        var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantIdentityTests.LoginAsync(client, email, password, tenant));
        return client;
    }

    [Fact]
    public async Task Tenant_user_and_machine_client_use_their_own_objects()
    {
        using var op = await factory.OperatorAsync();
        var id = await op.CreateActiveTenantAsync("tok-own");
        using var user = await UserAsync(op, "tok-own", "ada@tok-own.test", "admin");

        using (var put = await user.PutAsync(Url("/v1/tenants/tok-own/objects/notes/a.txt"), Body("by ada")))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
            Assert.Equal("tenants/tok-own/notes/a.txt", (await put.JsonAsync()).GetProperty("key").GetString());
        }

        Assert.Equal("by ada", await user.GetStringAsync(Url($"/v1/tenants/{id}/objects/notes/a.txt")));
        var list = await user.GetJsonAsync("/v1/tenants/tok-own/objects?prefix=notes/");
        Assert.Equal("tenants/tok-own/notes/a.txt", Assert.Single(list.GetProperty("items").EnumerateArray()).GetProperty("key").GetString());

        using var created = await op.PostAsJsonAsync($"/v1/tenants/{id}/clients", new { name = "sync job" });
        var body = await created.JsonAsync();
        using var machine = factory.CreateClient();
        var token = await TenantryFactory.TokenAsync(machine, body.GetProperty("clientId").GetString()!, body.GetProperty("clientSecret").GetString()!, "");
        machine.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using (var put = await machine.PutAsync(Url("/v1/tenants/tok-own/objects/sync/b.txt"), Body("by job")))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        Assert.Equal("by ada", await machine.GetStringAsync(Url("/v1/tenants/tok-own/objects/notes/a.txt")));
        using (var delete = await machine.DeleteAsync(Url("/v1/tenants/tok-own/objects/notes/a.txt")))
        {
            Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        }

        // The tenant's token opens the object API, nothing of the operator's.
        using var tenants = await user.GetAsync(Url("/v1/tenants"));
        Assert.Equal(HttpStatusCode.Forbidden, tenants.StatusCode);
        using var audit = await machine.GetAsync(Url($"/v1/audit?tenantId={id}"));
        Assert.Equal(HttpStatusCode.Forbidden, audit.StatusCode);
    }

    [Fact]
    public async Task A_tenant_token_on_another_tenants_objects_is_403_and_audited()
    {
        using var op = await factory.OperatorAsync();
        var attackerId = await op.CreateActiveTenantAsync("tok-mallory");
        var victimId = await op.CreateActiveTenantAsync("tok-victim");
        using (var seed = await op.PutAsync(Url("/v1/tenants/tok-victim/objects/secret.txt"), Body("victim's")))
        {
            Assert.Equal(HttpStatusCode.OK, seed.StatusCode);
        }

        using var mallory = await UserAsync(op, "tok-mallory", "mal@tok-mallory.test", "admin");
        var attempts = new (HttpMethod Method, string Path)[]
        {
            (HttpMethod.Get, "/v1/tenants/tok-victim/objects/secret.txt"),
            (HttpMethod.Get, $"/v1/tenants/{victimId}/objects/secret.txt"),
            (HttpMethod.Put, "/v1/tenants/tok-victim/objects/secret.txt"),
            (HttpMethod.Delete, "/v1/tenants/tok-victim/objects/secret.txt"),
            (HttpMethod.Get, "/v1/tenants/tok-victim/objects?prefix="),
            (HttpMethod.Get, "/v1/tenants/no-such-tenant/objects/secret.txt"),
        };
        foreach (var (method, path) in attempts)
        {
            using var request = new HttpRequestMessage(method, path) { Content = method == HttpMethod.Put ? Body("overwritten") : null };
            using var response = await mallory.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("https://tenantry.dev/problems/access-denied", (await response.JsonAsync()).GetProperty("type").GetString());
        }

        Assert.Equal("victim's", await op.GetStringAsync(Url("/v1/tenants/tok-victim/objects/secret.txt")));
        var events = (await op.GetJsonAsync($"/v1/audit?tenantId={attackerId}")).GetProperty("items").EnumerateArray()
            .Where(e => e.GetProperty("outcome").GetString() == "denied").ToList();
        Assert.Equal(attempts.Length, events.Count);
        Assert.Contains(events, e => e.GetProperty("action").GetString() == "storage:DeleteObject"
            && e.GetProperty("detail").GetProperty("targetTenant").GetString() == "tok-victim");
    }

    [Fact]
    public async Task Forged_expired_and_missing_tokens_are_401()
    {
        using var op = await factory.OperatorAsync();
        await op.CreateActiveTenantAsync("tok-forge");
        using var user = await UserAsync(op, "tok-forge", "eve@tok-forge.test", "admin");
        var token = user.DefaultRequestHeaders.Authorization!.Parameter!;

        // The same token with its tenant claim rewritten: the signature no longer matches.
        var parts = token.Split('.');
        var payload = Encoding.UTF8.GetString(Base64Url(parts[1]));
        var forged = string.Join('.', parts[0], Convert.ToBase64String(Encoding.UTF8.GetBytes(payload.Replace("tok-forge", "tok-other", StringComparison.Ordinal))).TrimEnd('=').Replace('+', '-').Replace('/', '_'), parts[2]);
        foreach (var bad in new[] { forged, parts[0] + "." + parts[1] + ".", "not-a-token" })
        {
            using var anonymous = factory.CreateClient();
            anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bad);
            using var response = await anonymous.GetAsync(Url("/v1/tenants/tok-forge/objects?prefix="));
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        using var none = factory.CreateClient();
        using var unauthenticated = await none.GetAsync(Url("/v1/tenants/tok-forge/objects?prefix="));
        Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);
    }

    [Fact]
    public async Task An_expired_tenant_token_is_401()
    {
        // The host's clock, moved past the token's lifetime once the token is issued.
        var clock = new ShiftedTime();
        await using var host = new TenantryFactory();
        await using var shifted = host.WithWebHostBuilder(b => b.ConfigureTestServices(s => s.AddSingleton<TimeProvider>(clock)));
        using var op = shifted.CreateClient();
        op.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantryFactory.TokenAsync(op, "operator", TenantryFactory.OperatorSecret, "tenantry:admin"));
        await op.CreateActiveTenantAsync("tok-expiry");
        using var invite = await op.PostAsJsonAsync("/v1/tenants/tok-expiry/users", new { email = "old@tok-expiry.test", role = "admin" });
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;
        using var user = shifted.CreateClient();
        user.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantIdentityTests.LoginAsync(user, "old@tok-expiry.test", password, "tok-expiry"));
        using (var fresh = await user.GetAsync(Url("/v1/tenants/tok-expiry/objects?prefix=")))
        {
            Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);
        }

        clock.Offset = TimeSpan.FromHours(2);
        using var expired = await user.GetAsync(Url("/v1/tenants/tok-expiry/objects?prefix="));
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
    }

    [Theory]
    [MemberData(nameof(ObjectKeyAttacks.InUrl), MemberType = typeof(ObjectKeyAttacks))]
    public async Task Traversal_keys_with_a_tenant_token_are_400_problems(string key)
    {
        using var op = await factory.OperatorAsync();
        var slug = "tok-" + Guid.NewGuid().ToString("N")[..8];
        await op.CreateActiveTenantAsync(slug);
        using var user = await UserAsync(op, slug, $"t@{slug}.test", "admin");
        using var response = await user.PutAsync(Url($"/v1/tenants/{slug}/objects/{key}"), Body("x"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("https://tenantry.dev/problems/invalid-object-key", (await response.JsonAsync()).GetProperty("type").GetString());
    }

    [Fact]
    public async Task A_member_under_a_read_only_session_policy_reads_but_cannot_write()
    {
        await using var own = new TenantryFactory();
        using var op = await own.OperatorAsync();
        var id = await op.CreateActiveTenantAsync("tok-reader", "standard");
        using (var seed = await op.PutAsync(Url("/v1/tenants/tok-reader/objects/shared/menu.txt"), Body("soup")))
        {
            Assert.Equal(HttpStatusCode.OK, seed.StatusCode);
        }

        using (var template = await op.PutAsJsonAsync("/v1/policies/templates/standard", System.Text.Json.JsonDocument.Parse("""
            {"Version":"2012-10-17","Statement":{"Sid":"ReadOnly","Effect":"Allow","Action":["storage:GetObject","storage:ListObjects"],"Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/*"}}
            """).RootElement))
        {
            Assert.Equal(HttpStatusCode.OK, template.StatusCode);
        }

        using var invite = await op.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "mo@tok-reader.test", role = "member" });
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;
        using var member = own.CreateClient();
        member.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantIdentityTests.LoginAsync(member, "mo@tok-reader.test", password, "tok-reader"));

        Assert.Equal("soup", await member.GetStringAsync(Url("/v1/tenants/tok-reader/objects/shared/menu.txt")));
        using var put = await member.PutAsync(Url("/v1/tenants/tok-reader/objects/shared/menu.txt"), Body("stew"));
        Assert.Equal(HttpStatusCode.Forbidden, put.StatusCode);
        Assert.Contains("no session policy allows it", (await put.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("soup", await member.GetStringAsync(Url("/v1/tenants/tok-reader/objects/shared/menu.txt")));

        var denied = Assert.Single((await op.GetJsonAsync($"/v1/audit?tenantId={id}")).GetProperty("items").EnumerateArray(), e => e.GetProperty("outcome").GetString() == "denied");
        Assert.Equal("storage:PutObject", denied.GetProperty("action").GetString());
        Assert.Equal("mo@tok-reader.test", denied.GetProperty("detail").GetProperty("principal").GetString());
        Assert.Equal("member", denied.GetProperty("detail").GetProperty("role").GetString());
    }

    private sealed class ShiftedTime : TimeProvider
    {
        public TimeSpan Offset { get; set; }

        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Offset;
    }

    private static byte[] Base64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(padded.PadRight(padded.Length + ((4 - (padded.Length % 4)) % 4), '='));
    }
}
