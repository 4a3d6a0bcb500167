using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// Two real gateway replicas, end to end: the host's own gateway and a second <c>Tenantry.Host gateway</c>
/// process on another port, both on one redis-server started here and on the same control plane. One
/// tenant's traffic, alternating between them, draws from one bucket and one quota.
/// </summary>
public sealed class GatewayReplicaTests : IAsyncLifetime
{
    private const int Rate = 1;
    private const int Burst = 10;
    private readonly RedisServer _redis = new();
    private TenantryHost _host = null!;
    private Uri _replica = null!;
    private HttpClient _operator = null!;
    private int _adminPort;

    public async Task InitializeAsync()
    {
        await _redis.StartAsync();
        string[] shared =
        [
            "--Tenantry:Gateway:Redis=" + _redis.Configuration,
            "--Tenantry:Tiers:replicated=pool",
            $"--Tenantry:Gateway:Plans:replicated:RequestsPerSecond={Rate}",
            $"--Tenantry:Gateway:Plans:replicated:Burst={Burst}",
        ];
        _host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(shared));
        _adminPort = TenantryHost.FreePorts(1)[0];
        _replica = await _host.StartGatewayReplicaAsync([.. shared, "--Tenantry:Gateway:AdminPort=" + _adminPort.ToString(CultureInfo.InvariantCulture)]);
        _operator = await _host.OperatorClientAsync();
    }

    public async Task DisposeAsync()
    {
        _operator?.Dispose();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task The_replica_serves_its_metrics_on_its_admin_port_to_operators_only()
    {
        var tenant = await _host.OnboardAsync(_operator, "replica-metrics", "replicated");
        using (var client = new HttpClient { BaseAddress = _replica })
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Token);
            using var orders = await client.GetAsync(new Uri("/orders?limit=1", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, orders.StatusCode);
        }

        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_adminPort}") };
        using (var anonymous = await admin.GetAsync(new Uri("/metrics", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Token);
        using (var byTenant = await admin.GetAsync(new Uri("/metrics", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, byTenant.StatusCode);
        }

        admin.DefaultRequestHeaders.Authorization = _operator.DefaultRequestHeaders.Authorization;
        var text = await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains($"tenant_id=\"{tenant.Id}\"", text, StringComparison.Ordinal);
        using (var other = await admin.GetAsync(new Uri("/orders", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, other.StatusCode);
        }

        // The tenant port keeps every path for tenant traffic: an operator token there is not a tenant's.
        using var tenantPort = new HttpClient { BaseAddress = _replica };
        tenantPort.DefaultRequestHeaders.Authorization = _operator.DefaultRequestHeaders.Authorization;
        using var notHere = await tenantPort.GetAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Forbidden, notHere.StatusCode);
    }

    [Fact]
    public async Task The_replicas_client_reads_the_routing_table_and_nothing_else()
    {
        using var http = new HttpClient { BaseAddress = _host.ControlPlane };
        async Task<HttpResponseMessage> TokenAsync(string scope) => await http.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = "gateway", ["client_secret"] = _host.GatewaySecret, ["scope"] = scope,
        }));

        // It may not even ask for the operator's scope.
        using (var refused = await TokenAsync("tenantry:admin"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        }

        using var issued = await TokenAsync("tenantry:routes");
        issued.EnsureSuccessStatusCode();
        var token = (await issued.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using (var routes = await http.GetAsync(new Uri("/v1/routes", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, routes.StatusCode);
        }

        foreach (var (method, path) in new[] { ("GET", "/v1/tenants"), ("POST", "/v1/tenants"), ("GET", "/v1/audit"), ("PUT", "/v1/guardrails"), ("GET", "/v1/costs?period=2026-11") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative)) { Content = method == "GET" ? null : JsonContent.Create(new { }) };
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }

        // The operator still reads it too.
        using var byOperator = await _operator.GetAsync(new Uri("/v1/routes", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, byOperator.StatusCode);
    }

    [Fact]
    public async Task One_tenant_alternating_between_two_replicas_gets_one_bucket_not_two()
    {
        var noisy = await _host.OnboardAsync(_operator, "noisy", "replicated");
        var quiet = await _host.OnboardAsync(_operator, "quiet", "replicated");
        using var first = Client(_host.Gateway, noisy.Token);
        using var second = Client(_replica, noisy.Token);

        var clock = Stopwatch.StartNew();
        // Both replicas serve the tenant (the second one reads the routing table over HTTP).
        using (var a = await first.GetAsync(new Uri("/instance", UriKind.Relative)))
        using (var b = await second.GetAsync(new Uri("/instance", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, a.StatusCode);
            Assert.Equal(HttpStatusCode.OK, b.StatusCode);
        }

        var accepted = 2;
        var refusedBy = new HashSet<int>();
        for (var i = 0; i < 4 * Burst && clock.Elapsed < TimeSpan.FromSeconds(60); i++)
        {
            using var response = await (i % 2 == 0 ? first : second).GetAsync(new Uri("/instance", UriKind.Relative));
            if (response.StatusCode == HttpStatusCode.OK)
            {
                accepted++;
                continue;
            }

            Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
            refusedBy.Add(i % 2);
            Assert.True(int.Parse(response.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture) >= 1);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("https://tenantry.dev/problems/rate-limited", problem.GetProperty("type").GetString());
            Assert.Equal(429, problem.GetProperty("status").GetInt32());
        }

        var window = clock.Elapsed;
        // One bucket: the burst plus what refilled while the loop ran (the measured window, rounded up, plus a
        // token for the refill in flight); two independent buckets would have let through twice the burst at once.
        var bound = Burst + (int)Math.Ceiling(window.TotalSeconds * Rate) + 1;
        Assert.InRange(accepted, Burst, bound);
        Assert.Equal([0, 1], refusedBy.Order());

        // The other tenant on the same plan is not held back, on either replica.
        using var quietFirst = Client(_host.Gateway, quiet.Token);
        using var quietSecond = Client(_replica, quiet.Token);
        using var q1 = await quietFirst.GetAsync(new Uri("/instance", UriKind.Relative));
        using var q2 = await quietSecond.GetAsync(new Uri("/instance", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, q1.StatusCode);
        Assert.Equal(HttpStatusCode.OK, q2.StatusCode);
        Assert.Equal(quiet.Id, (await q2.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("tenantId").GetGuid());
    }

    [Fact]
    public async Task The_daily_quota_is_counted_once_across_replicas()
    {
        // metered: 100 r/s, 5 requests a day (TenantryHostOptions.PlatformTestSettings), so the count does not depend on timing.
        var tenant = await _host.OnboardAsync(_operator, "quota", "metered");
        using var first = Client(_host.Gateway, tenant.Token);
        using var second = Client(_replica, tenant.Token);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            using var response = await (i % 2 == 0 ? first : second).GetAsync(new Uri("/instance", UriKind.Relative));
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.True(int.Parse(response.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture) > 60);
                var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Equal("https://tenantry.dev/problems/quota-exceeded", problem.GetProperty("type").GetString());
            }
        }

        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(3, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
    }

    private static HttpClient Client(Uri gateway, string token)
    {
        var client = new HttpClient { BaseAddress = gateway };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }
}
