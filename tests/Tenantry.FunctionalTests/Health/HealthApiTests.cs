using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.FunctionalTests.Identity;
using Tenantry.Health;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Health;

/// <summary>
/// The health API's edges: who may read a tenant's health (an operator, the tenant itself, no other
/// tenant), who may post samples (an operator or a gateway replica, no tenant), and the 400s that
/// say what is wrong with a range, a step, a window or a batch.
/// </summary>
public sealed class HealthApiTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    private static Uri Url(string path) => new(path, UriKind.Relative);

    [Fact]
    public async Task A_tenant_reads_its_own_health_and_another_tenants_is_403_and_audited()
    {
        using var op = await factory.OperatorAsync();
        var ownId = await op.CreateActiveTenantAsync("health-own");
        var otherId = await op.CreateActiveTenantAsync("health-other");
        using var gateway = await GatewayAsync();
        var minute = Minute(DateTimeOffset.UtcNow);
        using (var posted = await gateway.PostAsJsonAsync(Url("/v1/health/samples"), Batch("own-1", Sample(Guid.Parse(ownId), minute, 7, 2, 1, 1))))
        {
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
            Assert.Equal(1, (await posted.JsonAsync()).GetProperty("accepted").GetInt32());
        }

        using var user = await UserAsync(op, "health-own", "ada@health-own.test");
        var query = $"from={Uri.EscapeDataString(minute.AddMinutes(-2).ToString("O"))}&to={Uri.EscapeDataString(minute.AddMinutes(2).ToString("O"))}&step=1m";
        var series = await user.GetJsonAsync($"/v1/tenants/health-own/health?{query}");
        var items = series.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(4, items.Count);
        var point = items.Single(p => p.GetProperty("requests").GetInt64() > 0);
        Assert.Equal(minute, point.GetProperty("at").GetDateTimeOffset());
        Assert.Equal((7, 2, 1, 1), (point.GetProperty("requests").GetInt32(), point.GetProperty("status4xx").GetInt32(), point.GetProperty("status5xx").GetInt32(), point.GetProperty("throttled").GetInt32()));
        Assert.True(point.GetProperty("p99Ms").GetDouble() > 0);
        Assert.Equal(JsonValueKind.Null, items.First(p => p.GetProperty("requests").GetInt64() == 0).GetProperty("p99Ms").ValueKind);

        // Another tenant's health, by slug or id, or a tenant that does not exist: refused alike.
        foreach (var target in new[] { "health-other", otherId, "no-such-tenant" })
        {
            using var denied = await user.GetAsync(Url($"/v1/tenants/{target}/health?{query}"));
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
            Assert.Equal("https://tenantry.dev/problems/access-denied", (await denied.JsonAsync()).GetProperty("type").GetString());
        }

        var audit = await op.GetJsonAsync($"/v1/audit?tenantId={ownId}&limit=200");
        Assert.Equal(3, audit.GetProperty("items").EnumerateArray().Count(e => e.GetProperty("action").GetString() == "health.read" && e.GetProperty("outcome").GetString() == "denied"));

        // The operator reads every tenant's; a tenant token does not reach the fleet view.
        Assert.Equal(4, (await op.GetJsonAsync($"/v1/tenants/{otherId}/health?{query}")).GetProperty("items").GetArrayLength());
        using var fleet = await user.GetAsync(Url("/v1/health/worst"));
        Assert.Equal(HttpStatusCode.Forbidden, fleet.StatusCode);
    }

    [Fact]
    public async Task Only_an_operator_or_a_gateway_replica_may_post_health_samples()
    {
        using var op = await factory.OperatorAsync();
        var id = Guid.Parse(await op.CreateActiveTenantAsync("health-forger"));
        using var user = await UserAsync(op, "health-forger", "eve@health-forger.test");
        var batch = Batch("forged-1", Sample(id, Minute(DateTimeOffset.UtcNow), 1000, 0, 1000, 0));

        using (var byTenant = await user.PostAsJsonAsync(Url("/v1/health/samples"), batch))
        {
            Assert.Equal(HttpStatusCode.Forbidden, byTenant.StatusCode);
        }

        using (var anonymous = await factory.CreateClient().PostAsJsonAsync(Url("/v1/health/samples"), batch))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        var series = await op.GetJsonAsync($"/v1/tenants/{id}/health");
        Assert.Equal(0, series.GetProperty("items").EnumerateArray().Sum(p => p.GetProperty("requests").GetInt64()));

        using var gateway = await GatewayAsync();
        using var byReplica = await gateway.PostAsJsonAsync(Url("/v1/health/samples"), batch);
        Assert.Equal(HttpStatusCode.OK, byReplica.StatusCode);
        using var twice = await gateway.PostAsJsonAsync(Url("/v1/health/samples"), batch);
        Assert.True((await twice.JsonAsync()).GetProperty("duplicate").GetBoolean());
        Assert.Equal(1000, (await op.GetJsonAsync($"/v1/tenants/{id}/health")).GetProperty("items").EnumerateArray().Sum(p => p.GetProperty("requests").GetInt64()));
    }

    [Fact]
    public async Task Bad_ranges_steps_windows_and_batches_get_400s_that_name_the_field()
    {
        using var op = await factory.OperatorAsync();
        var id = await op.CreateActiveTenantAsync("health-bad");
        var now = DateTimeOffset.UtcNow;
        string T(DateTimeOffset t) => Uri.EscapeDataString(t.ToString("O"));
        foreach (var (query, field) in new[]
        {
            ("from=yesterday", "from"),
            ("to=2026-13-45T00:00:00Z", "to"),
            ($"from={T(now)}&to={T(now.AddHours(-1))}", "from"),
            ("step=90s", "step"),
            ("step=0m", "step"),
            ("step=5 minutes", "step"),
            ($"from={T(now.AddDays(-2))}&to={T(now)}&step=1m", "step"),
            ($"from={T(now.AddDays(-20))}&to={T(now)}&step=30m", "step"),
        })
        {
            await AssertFieldAsync(await op.GetAsync(Url($"/v1/tenants/{id}/health?{query}")), field);
        }

        foreach (var (query, field) in new[] { ("window=0m", "window"), ("window=2d", "window"), ("by=latency", "by"), ("limit=0", "limit"), ("limit=101", "limit"), ("minRequests=0", "minRequests") })
        {
            await AssertFieldAsync(await op.GetAsync(Url($"/v1/health/worst?{query}")), field);
        }

        var minute = Minute(now).ToString("O", CultureInfo.InvariantCulture);
        var sketch = Convert.ToBase64String(One().ToBytes());
        foreach (var (body, field) in new[]
        {
            ($$"""{"id":"has spaces","samples":[{"tenantId":"{{id}}","minute":"{{minute}}","requests":1,"status4xx":0,"status5xx":0,"throttled":0,"latency":"{{sketch}}"}]}""", "id"),
            ("""{"id":"b1","samples":[]}""", "samples"),
            ($$"""{"id":"b2","samples":[{"tenantId":"{{id}}","minute":"{{Minute(now).AddSeconds(30):O}}","requests":1,"status4xx":0,"status5xx":0,"throttled":0,"latency":"{{sketch}}"}]}""", "samples[0].minute"),
            ($$"""{"id":"b3","samples":[{"tenantId":"{{id}}","minute":"{{minute}}","requests":-1,"status4xx":0,"status5xx":0,"throttled":0,"latency":"{{sketch}}"}]}""", "samples[0]"),
            ($$"""{"id":"b4","samples":[{"tenantId":"{{id}}","minute":"{{minute}}","requests":1,"status4xx":0,"status5xx":0,"throttled":0}]}""", "samples[0].latency"),
        })
        {
            using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
            await AssertFieldAsync(await op.PostAsync(Url("/v1/health/samples"), content), field);
        }

        // A sketch that is not one is a 400 that says where, not a 500.
        using var garbage = new StringContent($$"""{"id":"b5","samples":[{"tenantId":"{{id}}","minute":"{{minute}}","requests":1,"status4xx":0,"status5xx":0,"throttled":0,"latency":"AgA="}]}""", System.Text.Encoding.UTF8, "application/json");
        using var refused = await op.PostAsync(Url("/v1/health/samples"), garbage);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("latency", (await refused.JsonAsync()).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    private static async Task AssertFieldAsync(HttpResponseMessage response, string field)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {body}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.True(JsonDocument.Parse(body).RootElement.GetProperty("errors").TryGetProperty(field, out _), $"{response.RequestMessage?.RequestUri}: no error for {field} in {body}");
        }
    }

    /// <summary>A client with a gateway replica's token (the host's <c>gateway</c> client, scope <c>tenantry:routes</c>).</summary>
    private async Task<HttpClient> GatewayAsync()
    {
        var client = factory.CreateClient();
        var secret = (await File.ReadAllTextAsync(Path.Combine(factory.DataDir, "gateway-secret"))).Trim();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantryFactory.TokenAsync(client, "gateway", secret, "tenantry:routes"));
        return client;
    }

    private async Task<HttpClient> UserAsync(HttpClient op, string tenant, string email)
    {
        using var invite = await op.PostAsJsonAsync($"/v1/tenants/{tenant}/users", new { email, role = "admin" });
        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;
        var client = factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantIdentityTests.LoginAsync(client, email, password, tenant));
        return client;
    }

    private static DateTimeOffset Minute(DateTimeOffset at) => new(at.UtcTicks / TimeSpan.TicksPerMinute * TimeSpan.TicksPerMinute, TimeSpan.Zero);

    private static LatencySketch One()
    {
        var sketch = new LatencySketch();
        sketch.Add(1.5);
        return sketch;
    }

    private static TenantHealthSample Sample(Guid tenant, DateTimeOffset minute, long requests, long s4, long s5, long throttled)
    {
        var sketch = new LatencySketch();
        for (var i = 0; i < requests; i++)
        {
            sketch.Add(1 + i);
        }

        return new TenantHealthSample(tenant, minute, requests, s4, s5, throttled, sketch);
    }

    private static TenantHealthBatch Batch(string id, params TenantHealthSample[] samples) => new(id, samples);
}
