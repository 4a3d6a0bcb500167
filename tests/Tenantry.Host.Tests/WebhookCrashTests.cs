using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;
using Xunit.Abstractions;

namespace Tenantry.Host.Tests;

/// <summary>
/// Webhooks survive SIGKILL: a host killed with a thousand events not yet delivered (some in flight)
/// delivers every one after its restart, each with the webhook-id it had, in order per tenant.
/// </summary>
public sealed class WebhookCrashTests(ITestOutputHelper output) : IDisposable
{
    private const int Tenants = 8;
    private const int ChangesPerTenant = 125;
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-tests", "webhook-crash-" + Guid.NewGuid().ToString("N"));

    private static readonly string[] Settings =
    [
        "--Tenantry:Tiers:starter=pool",
        "--Tenantry:Webhooks:AllowPrivateNetworks=true",
        "--Tenantry:Webhooks:RetryBaseDelay=00:00:00.100",
        "--Tenantry:Webhooks:MaxRetryDelay=00:00:00.500",
        "--Tenantry:Webhooks:MaxAttempts=50",
        "--Tenantry:Webhooks:PollInterval=00:00:00.100",
        "--Tenantry:Operations:RetryDelay=00:00:00.010",
        "--Tenantry:Operations:PollInterval=00:00:00.100",
    ];

    [Fact]
    public async Task A_host_killed_with_a_thousand_undelivered_events_delivers_every_one_after_restart()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await receiver.StopAsync();
        var first = await TenantryHost.StartAsync(new TenantryHostOptions { DataDir = _dataDir, KeepDataDir = true, Settings = Settings });
        var ports = first.Ports;
        string hookId;
        string secret;
        List<string> tenants = [];
        using (var client = await first.OperatorClientAsync())
        {
            for (var i = 0; i < Tenants; i++)
            {
                tenants.Add(await client.CreateActiveTenantAsync($"crash-hook-{i}"));
            }

            using (var created = await client.PostAsJsonAsync("/v1/webhooks", new { url = receiver.Url().ToString(), events = new[] { "tenant.tier-changed" } }))
            {
                Assert.Equal(HttpStatusCode.Created, created.StatusCode);
                var hook = await created.JsonAsync();
                (hookId, secret) = (hook.GetProperty("id").GetString()!, hook.GetProperty("secret").GetString()!);
            }

            // A thousand events while the receiver is down: each tenant's tier flips back and forth.
            await Task.WhenAll(tenants.Select(t => FlipTiersAsync(client, t, ChangesPerTenant)));
            var pending = (await client.GetJsonAsync($"/v1/webhooks/{hookId}/deliveries?status=pending&limit=200")).GetProperty("items").GetArrayLength();
            Assert.True(pending > 0);
        }

        // Back up: once deliveries flow, kill the host in the middle of them.
        await receiver.StartAsync();
        Assert.True(await receiver.WaitForAsync(r => r.Count >= 50, 120), $"only {receiver.Received.Count} delivered before the kill");
        first.Kill();
        var beforeKill = receiver.Received.Select(r => r.Id).Distinct().Count();
        output.WriteLine($"{beforeKill} of {Tenants * ChangesPerTenant} delivered when the host was killed");
        Assert.True(beforeKill < Tenants * ChangesPerTenant, "everything was delivered before the kill; nothing was left to recover");
        first.Dispose();

        await using var second = await TenantryHost.StartAsync(new TenantryHostOptions { DataDir = _dataDir, KeepDataDir = true, Ports = ports, Settings = Settings });
        Assert.True(
            await receiver.WaitForAsync(r => r.Select(x => x.Id).Distinct().Count() >= Tenants * ChangesPerTenant, 180),
            $"{receiver.Received.Select(x => x.Id).Distinct().Count()} of {Tenants * ChangesPerTenant} delivered after the restart");

        using var check = await second.OperatorClientAsync();
        var expected = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var tenant in tenants)
        {
            expected[tenant] = await EventIdsAsync(check, tenant);
            Assert.Equal(ChangesPerTenant, expected[tenant].Count);
        }

        var received = receiver.Received.ToList();
        Assert.All(received, r => Assert.True(WebhookReceiver.IsSigned(r, secret)));
        Assert.Equal(expected.Values.SelectMany(v => v).Order(StringComparer.Ordinal), received.Select(r => r.Id).Distinct().Order(StringComparer.Ordinal));
        foreach (var (tenant, ids) in expected)
        {
            // In order per tenant, counting each event where it first arrived (a resend after the kill comes again, later).
            var arrived = received.Where(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("subject").GetString() == tenant).Select(r => r.Id).Distinct().ToList();
            Assert.Equal(ids, arrived);
        }

        var duplicates = received.Count - received.Select(r => r.Id).Distinct().Count();
        output.WriteLine($"{duplicates} sent twice (at least once: sent before the kill, not yet recorded)");
        Assert.True(duplicates <= Tenants, $"{duplicates} duplicates; at most one in flight per tenant lane");
    }

    private static async Task FlipTiersAsync(HttpClient client, string tenant, int changes)
    {
        for (var i = 0; i < changes; i++)
        {
            using var read = await client.GetAsync(new Uri($"/v1/tenants/{tenant}", UriKind.Relative));
            using var patch = new HttpRequestMessage(HttpMethod.Patch, $"/v1/tenants/{tenant}")
            {
                Content = JsonContent.Create(new { tier = i % 2 == 0 ? "starter" : "basic" }),
            };
            patch.Headers.TryAddWithoutValidation("If-Match", read.Headers.ETag!.Tag);
            using var response = await client.SendAsync(patch);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>The tenant's tier-changed event ids, oldest first.</summary>
    private static async Task<List<string>> EventIdsAsync(HttpClient client, string tenant)
    {
        var ids = new List<string>();
        string? cursor = null;
        for (var page = 0; page < 10; page++)
        {
            var body = await client.GetJsonAsync($"/v1/events?tenantId={tenant}&type=tenant.tier-changed&limit=200" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor)));
            ids.AddRange(body.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("id").GetString()!));
            if (body.GetProperty("nextCursor").ValueKind == JsonValueKind.Null)
            {
                break;
            }

            cursor = body.GetProperty("nextCursor").GetString();
        }

        ids.Reverse();
        return ids;
    }

    public void Dispose()
    {
        TenantryHost.KillLeftovers(_dataDir);
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
