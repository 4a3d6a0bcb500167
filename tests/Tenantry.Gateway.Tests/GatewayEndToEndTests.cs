using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

[CollectionDefinition(Name)]
public sealed class PlatformCollection : ICollectionFixture<PlatformFixture>
{
    public const string Name = "platform";
}

/// <summary>Tenants' traffic through the real gateway to the shared and dedicated Orders.Api instances.</summary>
[Collection(PlatformCollection.Name)]
public sealed class GatewayEndToEndTests(PlatformFixture platform)
{
    [Fact]
    public async Task Each_tenant_sees_only_its_own_orders_through_the_gateway()
    {
        var created = new Dictionary<string, Guid>();
        foreach (var tenant in new[] { platform.Acme, platform.Bravo, platform.Bolt, platform.Mega })
        {
            using var client = tenant.Client();
            using var response = await client.PostAsJsonAsync("/orders", new { number = $"N-{tenant.Slug}", amount = 10.5m, note = tenant.Slug });
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            created[tenant.Slug] = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        }

        foreach (var tenant in new[] { platform.Acme, platform.Bravo, platform.Bolt, platform.Mega })
        {
            using var client = tenant.Client();
            var list = await client.GetFromJsonAsync<JsonElement>("/orders?limit=200");
            var items = list.GetProperty("items").EnumerateArray().ToList();
            Assert.Contains(items, o => o.GetProperty("note").GetString() == tenant.Slug);
            // Every order listed was created by one of this tenant's callers, or by a job of its queue
            // with the job's scoped token (other tests add orders too); the notes say whose it is.
            Assert.All(items, o => Assert.True(
                o.GetProperty("createdBy").GetString() is { } by && (by.StartsWith(tenant.Id + ":", StringComparison.Ordinal) || by.StartsWith("job:", StringComparison.Ordinal)),
                o.ToString()));
            Assert.All(items, o => Assert.True(o.GetProperty("note").GetString() is null || o.GetProperty("note").GetString() == tenant.Slug));
            foreach (var (slug, id) in created)
            {
                using var get = await client.GetAsync(new Uri($"/orders/{id}", UriKind.Relative));
                Assert.Equal(slug == tenant.Slug ? HttpStatusCode.OK : HttpStatusCode.NotFound, get.StatusCode);
            }
        }
    }

    [Fact]
    public async Task Premium_traffic_reaches_its_dedicated_process_and_pooled_traffic_the_shared_one()
    {
        using var mega = platform.Mega.Client();
        var instance = await mega.GetFromJsonAsync<JsonElement>("/instance");
        Assert.Equal("dedicated", instance.GetProperty("mode").GetString());
        Assert.Equal(platform.Host.InstancePid("mega"), instance.GetProperty("processId").GetInt32());
        Assert.NotEqual(platform.Host.ProcessId, instance.GetProperty("processId").GetInt32());

        var tenant = await platform.TenantAsync(platform.Mega.Id.ToString());
        var upstream = new Uri(tenant.GetProperty("resources").GetProperty("compute").GetProperty("apps").GetProperty("orders").GetProperty("upstream").GetString()!);
        Assert.Contains("TENANTRY_INSTANCE=" + platform.Host.InstanceFolder("mega"), File.ReadAllText($"/proc/{instance.GetProperty("processId").GetInt32()}/environ"), StringComparison.Ordinal);
        Assert.Equal(platform.Host.Ports[3], upstream.Port);
        Assert.True(File.Exists(Path.Combine(platform.Host.DataDir, "databases", "silo", "mega.db")));

        foreach (var pooled in new[] { platform.Acme, platform.Bolt })
        {
            using var client = pooled.Client();
            var shared = await client.GetFromJsonAsync<JsonElement>("/instance");
            Assert.Equal("shared", shared.GetProperty("mode").GetString());
            Assert.Equal(platform.Host.InstancePid("shared-1"), shared.GetProperty("processId").GetInt32());
            Assert.NotEqual(platform.Host.ProcessId, shared.GetProperty("processId").GetInt32());
            Assert.Equal(pooled.Id, shared.GetProperty("tenantId").GetGuid());
        }
    }

    /// <summary>The process's TCP connections (by socket inode in /proc) that are established to a local port.</summary>
    private static List<string> EstablishedConnections(int processId, int remotePort)
    {
        var inodes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{processId}/fd"))
        {
            if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith("socket:[", StringComparison.Ordinal))
            {
                inodes.Add(target[8..^1]);
            }
        }

        var port = remotePort.ToString("X4", CultureInfo.InvariantCulture);
        // Dual-mode sockets list IPv4 peers in tcp6 (as ::ffff:127.0.0.1).
        return [.. new[] { "/proc/net/tcp", "/proc/net/tcp6" }.SelectMany(table => File.ReadLines(table).Skip(1))
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f[2].EndsWith(":" + port, StringComparison.Ordinal) && f[3] == "01" && inodes.Contains(f[9]))
            .Select(f => string.Join(' ', f[1], f[2]))];
    }

    [Fact]
    public async Task A_dedicated_instance_that_dies_is_started_again()
    {
        using var mega = platform.Mega.Client();
        var before = (await mega.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32();
        using (var process = Process.GetProcessById(before))
        {
            process.Kill();
            await process.WaitForExitAsync();
        }

        var clock = Stopwatch.StartNew();
        int? after = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(60) && after is null)
        {
            using var response = await mega.GetAsync(new Uri("/instance", UriKind.Relative));
            if (response.IsSuccessStatusCode)
            {
                after = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetInt32();
            }
            else
            {
                // Known and being restarted: 503 with Retry-After, not a bad gateway.
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                Assert.NotNull(response.Headers.RetryAfter?.Delta);
                var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
                Assert.StartsWith("https://tenantry.dev/problems/upstream-", problem.GetProperty("type").GetString(), StringComparison.Ordinal);
                await Task.Delay(100);
            }
        }

        Assert.NotNull(after);
        Assert.NotEqual(before, after);
        var list = await mega.GetFromJsonAsync<JsonElement>("/orders");
        Assert.Equal(JsonValueKind.Array, list.GetProperty("items").ValueKind);
    }

    [Fact]
    public async Task Machine_clients_of_a_tenant_reach_only_their_tenant()
    {
        using var created = await platform.Operator.PostAsJsonAsync($"/v1/tenants/{platform.Bravo.Id}/clients", new { name = "sync job" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = await created.Content.ReadFromJsonAsync<JsonElement>();
        using var cp = new HttpClient { BaseAddress = platform.Host.ControlPlane };
        using var tokenResponse = await cp.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = body.GetProperty("clientId").GetString()!,
            ["client_secret"] = body.GetProperty("clientSecret").GetString()!,
        }));
        Assert.True(tokenResponse.IsSuccessStatusCode, await tokenResponse.Content.ReadAsStringAsync());
        var token = (await tokenResponse.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;

        using var client = platform.Bravo.Client(token);
        var instance = await client.GetFromJsonAsync<JsonElement>("/instance");
        Assert.Equal(platform.Bravo.Id, instance.GetProperty("tenantId").GetGuid());
        using var other = new HttpRequestMessage(HttpMethod.Get, "/orders");
        other.Headers.Add("X-Tenant-Id", "acme");
        using var refused = await client.SendAsync(other);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
    }

    [Fact]
    public async Task Attachments_land_in_the_tenants_storage_and_stay_there()
    {
        using var acme = platform.Acme.Client();
        using var order = await acme.PostAsJsonAsync("/orders", new { amount = 1m });
        var id = (await order.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        using var upload = await acme.PutAsync(new Uri($"/orders/{id}/attachments/invoice.pdf", UriKind.Relative), new ByteArrayContent("%PDF-1.7 acme"u8.ToArray()));
        Assert.Equal(HttpStatusCode.Created, upload.StatusCode);
        var stored = Path.Combine(platform.Host.DataDir, "tenants", "acme", "uploads", "orders", id.ToString("N"), "invoice.pdf");
        Assert.Equal("%PDF-1.7 acme", File.ReadAllText(stored));
        Assert.Equal("%PDF-1.7 acme", await acme.GetStringAsync(new Uri($"/orders/{id}/attachments/invoice.pdf", UriKind.Relative)));

        using var bravo = platform.Bravo.Client();
        using var stolen = await bravo.GetAsync(new Uri($"/orders/{id}/attachments/invoice.pdf", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, stolen.StatusCode);
    }
}
