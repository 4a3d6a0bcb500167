using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Health;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// Per-tenant health end to end: a bounded load through two real gateways (the host's own and a
/// <c>Tenantry.Host gateway</c> replica that posts its batches over HTTP) into one control plane. What the
/// API reports must be exactly what the clients saw, per tenant, with both gateways writing the same minutes.
/// </summary>
public sealed class TenantHealthEndToEndTests : IAsyncLifetime
{
    private const string FastFlush = "--Tenantry:Health:FlushInterval=00:00:00.200";
    private TenantryHost _host = null!;
    private Uri _replica = null!;
    private HttpClient _operator = null!;

    public async Task InitializeAsync()
    {
        _host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(FastFlush));
        _replica = await _host.StartGatewayReplicaAsync(FastFlush);
        _operator = await _host.OperatorClientAsync();
    }

    public async Task DisposeAsync()
    {
        _operator?.Dispose();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
    }

    [Fact]
    public async Task Counts_through_two_gateways_match_what_the_load_sent_and_percentiles_stay_within_the_sketch_error()
    {
        // trial: 2 r/s, burst 3 (TenantryHostOptions.PlatformTestSettings), per gateway: most of the load is refused 429.
        var busy = await _host.OnboardAsync(_operator, "busy", "trial");
        var bystander = await _host.OnboardAsync(_operator, "bystander", "basic");
        using var first = Client(_host.Gateway, busy.Token);
        using var second = Client(_replica, busy.Token);
        var start = DateTimeOffset.UtcNow;

        // 160 requests alternated over the two gateways: orders that exist, orders that do not (404), and past the
        // plan's burst, 429s. The statuses are whatever the clients get.
        var seen = new List<(HttpStatusCode Status, double Ms)>();
        for (var i = 0; i < 160; i++)
        {
            var path = i % 4 == 0 ? $"/orders/{Guid.NewGuid()}" : "/orders?limit=1";
            var clock = Stopwatch.StartNew();
            using var response = await (i % 2 == 0 ? first : second).GetAsync(new Uri(path, UriKind.Relative));
            await response.Content.ReadAsByteArrayAsync();
            seen.Add((response.StatusCode, clock.Elapsed.TotalMilliseconds));
        }

        using (var other = Client(_replica, bystander.Token))
        {
            for (var i = 0; i < 5; i++)
            {
                using var response = await other.GetAsync(new Uri("/instance", UriKind.Relative));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }
        }

        var end = DateTimeOffset.UtcNow;
        var expected = (Requests: (long)seen.Count, Status4xx: (long)seen.Count(s => (int)s.Status is >= 400 and < 500), Status5xx: (long)seen.Count(s => (int)s.Status >= 500),
            Throttled: (long)seen.Count(s => s.Status == HttpStatusCode.TooManyRequests));
        Assert.True(expected.Throttled > 0 && seen.Any(s => s.Status == HttpStatusCode.NotFound) && seen.Any(s => s.Status == HttpStatusCode.OK), string.Join(",", seen.Select(s => (int)s.Status)));

        // Whole days when the load stayed within one (one point holds every request), else minutes.
        var sameDay = start.UtcDateTime.Date == end.UtcDateTime.Date;
        var query = $"from={Uri.EscapeDataString(start.AddMinutes(-1).ToString("O"))}&to={Uri.EscapeDataString(end.AddMinutes(1).ToString("O"))}&step={(sameDay ? "1d" : "1m")}";
        var series = await WaitForAsync(busy.Id, query, expected.Requests);
        var points = series.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(expected, (Sum(points, "requests"), Sum(points, "status4xx"), Sum(points, "status5xx"), Sum(points, "throttled")));

        var bystanderSeries = await WaitForAsync(bystander.Id, query, 5);
        Assert.Equal(5, Sum(bystanderSeries.GetProperty("items").EnumerateArray().ToList(), "requests"));

        // A gateway's time for a request lies inside its client's, so each recorded quantile is at most the
        // client's quantile of the same rank, plus the sketch's relative error.
        var client = seen.Select(s => s.Ms).Order().ToArray();
        foreach (var point in points.Where(p => p.GetProperty("requests").GetInt64() > 0))
        {
            var (p50, p95, p99) = (point.GetProperty("p50Ms").GetDouble(), point.GetProperty("p95Ms").GetDouble(), point.GetProperty("p99Ms").GetDouble());
            Assert.True(0 < p50 && p50 <= p95 && p95 <= p99, point.ToString());
            var bound = (1 + LatencySketch.RelativeAccuracy) * 1.0001;
            if (sameDay)
            {
                Assert.True(p50 <= bound * client[(int)Math.Floor(0.5 * (client.Length - 1))], $"p50 {p50} ms against the clients' {client[(int)Math.Floor(0.5 * (client.Length - 1))]} ms");
                Assert.True(p99 <= bound * client[(int)Math.Floor(0.99 * (client.Length - 1))], $"p99 {p99} ms against the clients' {client[(int)Math.Floor(0.99 * (client.Length - 1))]} ms");
            }
            else
            {
                Assert.True(p99 <= bound * client[^1], $"p99 {p99} ms against the clients' slowest {client[^1]} ms");
            }
        }

        // Flushes after the last request add nothing.
        await Task.Delay(TimeSpan.FromSeconds(1));
        var again = (await _operator.GetJsonAsync($"/v1/tenants/{busy.Id}/health?{query}")).GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(expected.Requests, Sum(again, "requests"));

        // The fleet view ranks the tenant that was throttled first.
        var worst = await _operator.GetJsonAsync("/v1/health/worst?by=throttled&window=1h&limit=5");
        var top = worst.GetProperty("items")[0];
        Assert.Equal("busy", top.GetProperty("slug").GetString());
        Assert.Equal(expected.Throttled, top.GetProperty("throttled").GetInt64());
    }

    private async Task<JsonElement> WaitForAsync(Guid tenant, string query, long requests)
    {
        var clock = Stopwatch.StartNew();
        JsonElement series;
        do
        {
            series = await _operator.GetJsonAsync($"/v1/tenants/{tenant}/health?{query}");
            if (Sum(series.GetProperty("items").EnumerateArray().ToList(), "requests") >= requests)
            {
                return series;
            }

            await Task.Delay(100);
        }
        while (clock.Elapsed < TimeSpan.FromSeconds(30));

        Assert.Fail($"The health of {tenant} did not reach {requests} requests: {series}");
        return series;
    }

    private static long Sum(List<JsonElement> points, string field) => points.Sum(p => p.GetProperty(field).GetInt64());

    private static HttpClient Client(Uri gateway, string token)
    {
        var client = new HttpClient { BaseAddress = gateway };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }
}
