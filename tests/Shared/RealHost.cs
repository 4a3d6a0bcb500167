using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace Tenantry.Testing.Web;

/// <summary>The host on a real loopback port (Kestrel), on its own data directory.</summary>
public sealed class RealHost : WebApplicationFactory<Program>
{
    public const string Secret = "cli-test-operator-secret-0123";

    public RealHost()
    {
        Port = FreePort();
        UseKestrel();
        StartServer();
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    public string DataDir { get; } = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N"));

    /// <summary>An HTTP client on the real port with an operator token.</summary>
    public async Task<HttpClient> OperatorClientAsync()
    {
        var client = new HttpClient { BaseAddress = new Uri(Url) };
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = "operator",
            ["client_secret"] = Secret,
            ["scope"] = "tenantry:admin",
        });
        using var response = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Tenantry:DataDir", DataDir);
        builder.UseSetting("Tenantry:OperatorSecret", Secret);
        builder.UseSetting("Tenantry:Ports:ControlPlane", Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseSetting("Tenantry:Operations:RetryDelay", "00:00:00.010");
        builder.UseSetting("Tenantry:Operations:PollInterval", "00:00:00.100");
        // The control plane alone: the gateway and shared app would bind fixed ports shared by parallel tests.
        builder.UseSetting("Tenantry:ApplicationPlane:Enabled", "false");
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
