using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit;

namespace Tenantry.Testing;

/// <summary>Calls of the tenants API that many tests make, on a client with an operator token.</summary>
public static class TenantApiExtensions
{
    public static Task<HttpResponseMessage> CreateTenantAsync(this HttpClient client, object body, string? idempotencyKey = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/tenants") { Content = JsonContent.Create(body) };
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        return client.SendAsync(request);
    }

    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage response) =>
        await response.Content.ReadFromJsonAsync<JsonElement>();

    public static async Task<JsonElement> GetJsonAsync(this HttpClient client, string path)
    {
        using var response = await client.GetAsync(new Uri(path, UriKind.Relative));
        Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await response.JsonAsync();
    }

    /// <summary>Waits (at most <paramref name="seconds"/>) for the tenant to reach <paramref name="status"/>.</summary>
    public static async Task<JsonElement> WaitForStatusAsync(this HttpClient client, string id, string status, int seconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonElement tenant;
        do
        {
            tenant = await client.GetJsonAsync($"/v1/tenants/{id}");
            if (tenant.GetProperty("status").GetString() == status)
            {
                return tenant;
            }

            await Task.Delay(20);
        }
        while (DateTime.UtcNow < deadline);

        Assert.Fail($"Tenant {id} stayed {tenant.GetProperty("status")} ({tenant}), expected {status}.");
        return tenant;
    }

    public static async Task<string> CreateActiveTenantAsync(this HttpClient client, string slug, string tier = "basic")
    {
        using var response = await client.CreateTenantAsync(new { name = $"Tenant {slug}", slug, tier, adminEmail = $"admin@{slug}.test" });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.JsonAsync()).GetProperty("id").GetString()!;
        await client.WaitForStatusAsync(id, "active");
        return id;
    }

    /// <summary>Starts a fleet migration (202) and follows it until it has finished: the run with each target's result.</summary>
    public static async Task<JsonElement> RunFleetMigrationAsync(this HttpClient client, int seconds = 120)
    {
        using var response = await client.PostAsync(new Uri("/v1/migrations", UriKind.Relative), null);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var id = (await response.JsonAsync()).GetProperty("id").GetString();
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonElement run;
        do
        {
            run = await client.GetJsonAsync($"/v1/migrations/{id}?wait=5");
            if (run.GetProperty("status").GetString() is "succeeded" or "failed")
            {
                return run;
            }
        }
        while (DateTime.UtcNow < deadline);

        Assert.Fail($"Fleet migration {id} did not finish: {run}");
        return run;
    }
}
