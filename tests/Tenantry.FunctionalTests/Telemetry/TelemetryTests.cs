using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Tenantry.FunctionalTests.Identity;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Telemetry;

/// <summary>OpenTelemetry: <c>/metrics</c> for operators, usage and requests per tenant, and export to a real OTLP/HTTP receiver.</summary>
public sealed partial class TelemetryTests : IDisposable
{
    private readonly TenantryFactory _factory = new();

    public TelemetryTests()
    {
        // Only the events the tests send: no api_calls of the control plane's own API in the counts.
        _factory.Settings["Tenantry:Billing:MeterApiCalls"] = "false";
    }

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task Metrics_are_for_operators_only()
    {
        using var op = await _factory.OperatorAsync();
        var id = await op.CreateActiveTenantAsync("otel-guard");
        using var invite = await op.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "admin@otel-guard.test", role = "admin" });
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;

        using var client = _factory.CreateClient();
        using (var anonymous = await client.GetAsync(new Uri("/metrics", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantIdentityTests.LoginAsync(client, "admin@otel-guard.test", password, "otel-guard"));
        using (var tenant = await client.GetAsync(new Uri("/metrics", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, tenant.StatusCode);
        }

        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantryFactory.TokenAsync(client, "operator", TenantryFactory.OperatorSecret, ""));
        using (var noScope = await client.GetAsync(new Uri("/metrics", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, noScope.StatusCode);
        }

        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6InRlbmFudHJ5OmFkbWluIn0.");
        using (var forged = await client.GetAsync(new Uri("/metrics", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, forged.StatusCode);
        }

        using var scrape = await op.GetAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
        Assert.Equal("text/plain", scrape.Content.Headers.ContentType?.MediaType);
        Assert.Contains("dotnet_gc_collections_total", await scrape.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_operations_and_requests_are_counted_per_tenant()
    {
        using var op = await _factory.OperatorAsync();
        var a = await op.CreateActiveTenantAsync("otel-a");
        var b = await op.CreateActiveTenantAsync("otel-b");
        var now = DateTimeOffset.UtcNow;
        object Event(string id, string subject) => new { id, source = "otel-test", type = "api_calls", subject, time = now, data = new { } };

        using (var first = await op.PostAsJsonAsync("/v1/usage/events", new[] { Event("a1", a), Event("a2", a), Event("a3", a), Event("b1", b), Event("b2", b) }))
        {
            Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        }

        using (var replay = await op.PostAsJsonAsync("/v1/usage/events", new object[] { Event("a1", a), new { id = "bad" } }))
        {
            Assert.Equal(HttpStatusCode.Accepted, replay.StatusCode);
        }

        using (var get = await op.GetAsync(new Uri($"/v1/tenants/{a}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        }

        var text = await op.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Equal(3, Sum(text, "tenantry_usage_events_total", $"tenant_id=\"{a}\"", "outcome=\"accepted\""));
        Assert.Equal(1, Sum(text, "tenantry_usage_events_total", $"tenant_id=\"{a}\"", "outcome=\"duplicate\""));
        Assert.Equal(2, Sum(text, "tenantry_usage_events_total", $"tenant_id=\"{b}\"", "outcome=\"accepted\""));
        Assert.Equal(0, Sum(text, "tenantry_usage_events_total", $"tenant_id=\"{b}\"", "outcome=\"duplicate\""));
        Assert.True(Sum(text, "tenantry_usage_events_total", "outcome=\"rejected\"") >= 1, text);
        Assert.True(Sum(text, "tenantry_usage_commit_duration_seconds_count") >= 2, text);
        Assert.True(Sum(text, "tenantry_operations_total", "operation_kind=\"onboarding\"", "operation_status=\"succeeded\"") >= 2, text);
        Assert.True(Sum(text, "http_server_request_duration_seconds_count", $"tenant_id=\"{a}\"", "http_route=\"/v1/tenants/{id}\"") >= 1, text);
    }

    /// <summary>The real host in a process of its own (so no other test's host shares its meters), exporting to a loopback receiver.</summary>
    [Fact]
    public async Task Metrics_traces_and_logs_reach_an_otlp_receiver()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        using var host = await TenantryHost.StartAsync(new TenantryHostOptions
        {
            OperatorSecret = TenantryFactory.OperatorSecret,
            Settings = ["--Tenantry:Telemetry:OtlpEndpoint=" + receiver.Address, "--Tenantry:Telemetry:ExportInterval=00:00:00.200"],
            StartTimeout = TimeSpan.FromSeconds(60),
        });
        using var op = await host.OperatorClientAsync();
        var id = await op.CreateActiveTenantAsync("otel-export");
        using (var ingest = await op.PostAsJsonAsync("/v1/usage/events", new[]
               {
                   new { id = "x1", source = "otel-export", type = "api_calls", subject = id, time = DateTimeOffset.UtcNow, data = new { } },
               }))
        {
            Assert.Equal(HttpStatusCode.Accepted, ingest.StatusCode);
        }

        // OTLP is protobuf: names and attribute values are UTF-8 strings in it, found as bytes.
        await receiver.WaitForAsync("/v1/metrics", "tenantry.usage.events", id);
        await receiver.WaitForAsync("/v1/traces", "operation onboarding", id);
        await receiver.WaitForAsync("/v1/traces", "/v1/usage/events");
        await receiver.WaitForAsync("/v1/logs", id);
        Assert.All(receiver.ContentTypes, t => Assert.Equal("application/x-protobuf", t));
    }

    private static double Sum(string metrics, string name, params string[] labels) =>
        Series().Matches(metrics)
            .Where(m => m.Groups["name"].Value == name && labels.All(l => m.Groups["labels"].Value.Contains(l, StringComparison.Ordinal)))
            .Sum(m => double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture));

    [GeneratedRegex(@"^(?<name>[a-z_]+)\{(?<labels>.*)\} (?<value>\S+)$", RegexOptions.Multiline)]
    private static partial Regex Series();

    /// <summary>An OTLP/HTTP endpoint on loopback (Kestrel) that keeps every body it is sent, by path.</summary>
    private sealed class OtlpReceiver : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly ConcurrentQueue<(string Path, string? ContentType, byte[] Body)> _received = new();

        private OtlpReceiver(WebApplication app) => _app = app;

        public Uri Address { get; private set; } = null!;

        public IEnumerable<string?> ContentTypes => _received.Select(r => r.ContentType);

        public static async Task<OtlpReceiver> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var receiver = new OtlpReceiver(app);
            app.MapPost("/v1/{signal}", async (HttpContext http) =>
            {
                using var body = new MemoryStream();
                await http.Request.Body.CopyToAsync(body);
                receiver._received.Enqueue((http.Request.Path.Value!, http.Request.ContentType, body.ToArray()));
                http.Response.ContentType = "application/x-protobuf";
                return Results.Ok();
            });
            await app.StartAsync();
            receiver.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
            return receiver;
        }

        /// <summary>Waits (at most 20 s) for a body sent to <paramref name="path"/> holding every one of <paramref name="texts"/>.</summary>
        public async Task WaitForAsync(string path, params string[] texts)
        {
            var wanted = texts.Select(Encoding.UTF8.GetBytes).ToArray();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (DateTime.UtcNow < deadline)
            {
                if (_received.Any(r => r.Path == path && wanted.All(w => r.Body.AsSpan().IndexOf(w) >= 0)))
                {
                    return;
                }

                await Task.Delay(100);
            }

            Assert.Fail($"No OTLP body at {path} held {string.Join(", ", texts)}; received: {string.Join(", ", _received.GroupBy(r => r.Path).Select(g => $"{g.Key} ×{g.Count()}"))}.");
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
