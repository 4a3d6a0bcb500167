using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Tenantry.Host.Tests;

/// <summary>The host through the real ASP.NET pipeline, on its own temporary data directory.</summary>
public sealed class TenantryFactory : WebApplicationFactory<Program>
{
    public const string OperatorSecret = "test-operator-secret-0123456789";

    public string DataDir { get; } = Path.Combine(Path.GetTempPath(), "tenantry-tests", Guid.NewGuid().ToString("N"));

    /// <summary>The host's clock, when a test moves time; set before the first client is made.</summary>
    public TimeProvider? Time { get; set; }

    /// <summary>Extra configuration, applied over the defaults; set before the first client is made.</summary>
    public Dictionary<string, string?> Settings { get; } = new(StringComparer.Ordinal);

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Tenantry:DataDir", DataDir);
        builder.UseSetting("Tenantry:OperatorSecret", OperatorSecret);
        builder.UseSetting("Tenantry:Operations:RetryDelay", "00:00:00.010");
        builder.UseSetting("Tenantry:Operations:PollInterval", "00:00:00.100");
        // In-process API tests: no gateway listener, no app processes (the end-to-end tests run the real host).
        builder.UseSetting("Tenantry:ApplicationPlane:Enabled", "false");
        foreach (var (key, value) in Settings)
        {
            builder.UseSetting(key, value);
        }

        if (Time is { } time)
        {
            builder.ConfigureTestServices(services => services.AddSingleton(time));
        }
    }

    public async Task<HttpClient> OperatorAsync(string scope = "tenantry:admin")
    {
        var client = CreateClient();
        var token = await TokenAsync(client, "operator", OperatorSecret, scope);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public static async Task<string> TokenAsync(HttpClient client, string clientId, string secret, string scope)
    {
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = clientId,
            ["client_secret"] = secret,
            ["scope"] = scope,
        });
        using var response = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return body.GetProperty("access_token").GetString()!;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class Api
{
    public static Task<HttpResponseMessage> CreateTenantAsync(this HttpClient client, object body, string? idempotencyKey = null)
    {
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
        Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.JsonAsync()).GetProperty("id").GetString()!;
        await client.WaitForStatusAsync(id, "active");
        return id;
    }
}

/// <summary>The system clock moved forward by <see cref="Offset"/> (timers keep real time).</summary>
public sealed class ShiftedTime : TimeProvider
{
    public TimeSpan Offset { get; set; }

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Offset;
}
