using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Tenantry.ControlPlane.TierChanges;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.TierChanges;

/// <summary>
/// A tier change seen from the tenant's side, through the real gateway in front of the sample app: the host runs in
/// the test process (so the freeze can be held with <see cref="TierChangeHooks"/>), with its gateway on a real port
/// and the app's shared and dedicated instances as processes of their own.
/// </summary>
public sealed class TierChangeGatewayTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private TenantryHost _host = null!;

    public Task InitializeAsync() => Task.CompletedTask;

    private async Task StartAsync(params string[] settings) => _host = await TenantryHost.StartAsync(
        TenantryHostOptions.Platform(["--Tenantry:TierChanges:SourceGrace=00:00:00", "--Tenantry:TierChanges:DrainTime=00:00:00", .. settings]) with { InProcess = true });

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
    }

    [Fact]
    public async Task While_frozen_the_gateway_refuses_the_tenants_writes_with_retry_after_serves_its_reads_and_leaves_other_tenants_alone()
    {
        await StartAsync();
        using var op = await _host.OperatorClientAsync();
        var mover = await _host.OnboardAsync(op, "mover", "basic");
        var steady = await _host.OnboardAsync(op, "steady", "basic");
        using var moverClient = mover.Client();
        using var steadyClient = steady.Client();

        var before = await CreateOrderAsync(moverClient, "BEFORE-1");
        await CreateOrderAsync(steadyClient, "STEADY-1");
        var sharedPid = (await moverClient.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32();

        // The move waits at the freeze until the test lets it go on.
        var frozen = new TaskCompletionSource<DateTimeOffset>(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _host.Services.GetRequiredService<TierChangeHooks>().At = async (point, tenant, ct) =>
        {
            if (point == "frozen" && tenant == mover.Id)
            {
                frozen.TrySetResult(DateTimeOffset.UtcNow);
                await release.Task.WaitAsync(Bound, ct);
            }
        };

        string location;
        using (var started = await op.PostAsJsonAsync($"/v1/tenants/{mover.Id}/tier", new { tier = "premium" }))
        {
            Assert.True(started.StatusCode == HttpStatusCode.Accepted, await started.Content.ReadAsStringAsync());
            location = started.Headers.Location!.ToString();
        }

        try
        {
            var at = await frozen.Task.WaitAsync(Bound);

            // A write at once, whether or not the gateway has reloaded its table since the freeze: refused the same way.
            await AssertFrozenAsync(moverClient, HttpMethod.Post, "/orders");
            await WaitForGatewayTableAsync(at);

            // Every write method is refused at the gateway, before it reaches the app.
            await AssertFrozenAsync(moverClient, HttpMethod.Post, "/orders");
            await AssertFrozenAsync(moverClient, HttpMethod.Put, $"/orders/{before}/attachments/during.txt");
            await AssertFrozenAsync(moverClient, HttpMethod.Patch, $"/orders/{before}");
            await AssertFrozenAsync(moverClient, HttpMethod.Delete, $"/orders/{before}");

            // Its reads go on, from the source, with the row written before the move.
            Assert.Equal(["BEFORE-1"], await OrderNumbersAsync(moverClient));
            using (var one = await moverClient.GetAsync(new Uri($"/orders/{before}", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.OK, one.StatusCode);
            }

            // A tenant on the same pool and shared instance writes as usual.
            await CreateOrderAsync(steadyClient, "STEADY-2");
            Assert.Equal("running", (await op.GetFromJsonAsync<JsonElement>(location)).GetProperty("status").GetString());
        }
        finally
        {
            release.TrySetResult();
        }

        var done = await TierChangeTests.WaitAsync(op, location, seconds: 120);
        Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
        var tenant = await op.GetFromJsonAsync<JsonElement>($"/v1/tenants/{mover.Id}");
        Assert.Equal(("premium", "silo", "active"), (tenant.GetProperty("tier").GetString(), tenant.GetProperty("isolation").GetString(), tenant.GetProperty("status").GetString()));

        // Once the gateway has the new table, the tenant writes again, served by an instance of its own on its own database.
        await WaitForGatewayTableAsync(DateTimeOffset.UtcNow);
        await CreateOrderAsync(moverClient, "AFTER-1");
        var instance = await moverClient.GetFromJsonAsync<JsonElement>("/instance");
        Assert.Equal("dedicated", instance.GetProperty("mode").GetString());
        Assert.NotEqual(sharedPid, instance.GetProperty("processId").GetInt32());

        // No row lost, none of the refused writes landed, and the neighbour kept both of its rows.
        Assert.Equal(["AFTER-1", "BEFORE-1"], await OrderNumbersAsync(moverClient));
        Assert.Equal(["STEADY-1", "STEADY-2"], await OrderNumbersAsync(steadyClient));
    }

    [Fact]
    public async Task A_write_that_reaches_the_app_before_the_gateway_knows_of_the_freeze_is_refused_as_the_gateway_refuses_it()
    {
        // The gateway reloads its table every minute, and at once for a tenant it does not know: it does not learn of the freeze here.
        await StartAsync("--Tenantry:Gateway:RefreshInterval=00:01:00", "--Tenantry:Gateway:MaxStaleness=00:05:00");
        using var op = await _host.OperatorClientAsync();
        var mover = await _host.OnboardAsync(op, "early", "basic");
        var steady = await _host.OnboardAsync(op, "early-neighbour", "basic");
        using var moverClient = mover.Client();
        using var steadyClient = steady.Client();
        await CreateOrderAsync(moverClient, "BEFORE-1");
        await CreateOrderAsync(steadyClient, "STEADY-1");

        var refusedAtFreeze = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _host.Services.GetRequiredService<TierChangeHooks>().At = async (point, tenant, ct) =>
        {
            if (point == "frozen" && tenant == mover.Id)
            {
                try
                {
                    // Forwarded by the gateway, refused by the source's freeze in the app: the same 503, nothing written.
                    await AssertFrozenAsync(moverClient, HttpMethod.Post, "/orders");
                    Assert.Equal(["BEFORE-1"], await OrderNumbersAsync(moverClient));
                    await CreateOrderAsync(steadyClient, "STEADY-2");
                    refusedAtFreeze.TrySetResult();
                }
                catch (Exception ex)
                {
                    refusedAtFreeze.TrySetException(ex);
                }
            }
        };

        using (var started = await op.PostAsJsonAsync($"/v1/tenants/{mover.Id}/tier", new { tier = "premium" }))
        {
            Assert.True(started.StatusCode == HttpStatusCode.Accepted, await started.Content.ReadAsStringAsync());
            await refusedAtFreeze.Task.WaitAsync(Bound);
            var done = await TierChangeTests.WaitAsync(op, started.Headers.Location!.ToString(), seconds: 120);
            Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
        }

        Assert.Equal(["STEADY-1", "STEADY-2"], await OrderNumbersAsync(steadyClient));
    }

    /// <summary>A write of a frozen tenant: 503 problem details <c>tenant-frozen</c> with <c>Retry-After: 1</c>.</summary>
    private static async Task AssertFrozenAsync(HttpClient client, HttpMethod method, string path)
    {
        using var request = new HttpRequestMessage(method, path) { Content = JsonContent.Create(new { number = "DURING-1", amount = 2m }) };
        using var refused = await client.SendAsync(request);
        var body = await refused.Content.ReadAsStringAsync();
        Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable, $"{method} {path}: {(int)refused.StatusCode} {body}");
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        var problem = JsonDocument.Parse(body).RootElement;
        Assert.Equal("https://tenantry.dev/problems/tenant-frozen", problem.GetProperty("type").GetString());
        Assert.Equal(503, problem.GetProperty("status").GetInt32());
    }

    private static async Task<Guid> CreateOrderAsync(HttpClient client, string number)
    {
        using var created = await client.PostAsJsonAsync("/orders", new { number, amount = 1.5m });
        var body = await created.Content.ReadAsStringAsync();
        Assert.True(created.StatusCode == HttpStatusCode.Created, $"{(int)created.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }

    private static async Task<string[]> OrderNumbersAsync(HttpClient client)
    {
        using var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {body}");
        return [.. JsonDocument.Parse(body).RootElement.GetProperty("items").EnumerateArray().Select(o => o.GetProperty("number").GetString()!).Order(StringComparer.Ordinal)];
    }

    /// <summary>Waits (bounded) until the gateway's routing table was loaded after <paramref name="since"/>, as its health answer shows.</summary>
    private async Task WaitForGatewayTableAsync(DateTimeOffset since)
    {
        using var http = new HttpClient { BaseAddress = _host.Gateway };
        var clock = Stopwatch.StartNew();
        JsonElement health = default;
        while (clock.Elapsed < Bound)
        {
            health = await http.GetFromJsonAsync<JsonElement>("/healthz");
            if (health.GetProperty("loadedAt").GetDateTimeOffset() > since)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"The gateway did not reload its routing table after {since:O}: {health}");
    }
}
