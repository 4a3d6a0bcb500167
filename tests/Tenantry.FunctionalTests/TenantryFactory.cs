using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Tenantry.FunctionalTests;

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

/// <summary>The system clock moved forward by <see cref="Offset"/> (timers keep real time).</summary>
public sealed class ShiftedTime : TimeProvider
{
    public TimeSpan Offset { get; set; }

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + Offset;
}
