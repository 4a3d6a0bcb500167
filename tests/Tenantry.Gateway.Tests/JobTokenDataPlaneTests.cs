using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// A worker runs a leased job with the token the lease hands it, scoped to the job's tenant. Through
/// the data plane that token reaches its own tenant's rows and nothing else: the gateway refuses it
/// for another tenant (by header or host), the shared pool file answers only its tenant's rows, the
/// shared instance refuses it presented directly, and the app-data lookup tells it no database.
/// </summary>
[Collection(PlatformCollection.Name)]
public sealed class JobTokenDataPlaneTests(PlatformFixture platform)
{
    [Fact]
    public async Task A_leased_jobs_token_reaches_only_its_own_tenants_data_through_the_data_plane()
    {
        // Bravo shares acme's pool database and instance: the closest neighbour a token could reach.
        using var bravo = platform.Bravo.Client();
        using var bravoOrder = await bravo.PostAsJsonAsync("/orders", new { number = "N-bravo-job", amount = 3m, note = "bravo" });
        Assert.Equal(HttpStatusCode.Created, bravoOrder.StatusCode);
        var bravoId = (await bravoOrder.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        var token = await LeasedJobTokenAsync(platform.Acme);
        using var worker = platform.Acme.Client(token);

        // Its own tenant: it writes and reads acme's rows.
        using (var created = await worker.PostAsJsonAsync("/orders", new { number = "N-acme-job", amount = 4m, note = "acme" }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var items = (await worker.GetFromJsonAsync<JsonElement>("/orders?limit=200")).GetProperty("items").EnumerateArray().ToList();
        Assert.Contains(items, o => o.GetProperty("number").GetString() == "N-acme-job");
        // Every row it sees is acme's: made by acme's users or by acme's jobs, none of bravo's.
        Assert.DoesNotContain(items, o => o.GetProperty("id").GetGuid() == bravoId);
        Assert.All(items, o => Assert.True(
            o.GetProperty("createdBy").GetString()!.StartsWith(platform.Acme.Id + ":", StringComparison.Ordinal) || o.GetProperty("createdBy").GetString()!.StartsWith("job:", StringComparison.Ordinal),
            o.GetProperty("createdBy").GetString()));
        Assert.All(items, o => Assert.NotEqual("bravo", o.GetProperty("note").GetString()));
        using (var stolen = await worker.GetAsync(new Uri($"/orders/{bravoId}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, stolen.StatusCode);
        }

        // Another tenant named by header or host: refused before any app sees the request.
        foreach (var named in new[] { "bravo", platform.Bravo.Id.ToString(), "mega", "bolt" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/orders/{bravoId}");
            request.Headers.Add("X-Tenant-Id", named);
            using var response = await worker.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("https://tenantry.dev/problems/tenant-mismatch", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
        }

        using (var request = new HttpRequestMessage(HttpMethod.Get, "/orders"))
        {
            request.Headers.Host = "bravo.tenants.test";
            using var response = await worker.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }

        // Around the gateway: the shared instance takes no bearer token, and app-data takes only the gateway's signed context.
        using (var direct = new HttpClient { BaseAddress = platform.Host.SharedApp })
        {
            direct.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var request = new HttpRequestMessage(HttpMethod.Get, "/orders");
            request.Headers.Add("X-Tenant-Id", "bravo");
            using var response = await direct.SendAsync(request);
            Assert.True(response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden, $"shared instance answered {(int)response.StatusCode}");
        }

        using (var lookup = new HttpClient { BaseAddress = platform.Host.ControlPlane })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/app-data");
            request.Headers.Add(AspNetCore.TenantContextToken.Header, token);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await lookup.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.DoesNotContain("pool.db", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Bravo's row is untouched and still bravo's.
        var mine = (await bravo.GetFromJsonAsync<JsonElement>($"/orders/{bravoId}")).GetProperty("note").GetString();
        Assert.Equal("bravo", mine);
    }

    /// <summary>Enqueues a job with the tenant's own token at the control plane and leases it: the lease's token is the worker's.</summary>
    private static async Task<string> LeasedJobTokenAsync(TenantHandle tenant)
    {
        using var client = new HttpClient { BaseAddress = tenant.Host.ControlPlane };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Token);
        var type = "data-plane-probe";
        using (var enqueue = await client.PostAsJsonAsync("/v1/jobs", new { type, payload = new { probe = true } }))
        {
            Assert.Equal(HttpStatusCode.Accepted, enqueue.StatusCode);
        }

        using var lease = await client.PostAsJsonAsync("/v1/jobs/lease", new { types = new[] { type }, max = 1, visibilitySeconds = 120 });
        Assert.Equal(HttpStatusCode.OK, lease.StatusCode);
        var item = Assert.Single((await lease.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items").EnumerateArray());
        Assert.Equal(tenant.Id.ToString(), item.GetProperty("tenantId").GetString());
        return item.GetProperty("token").GetString()!;
    }
}
