using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;

namespace Tenantry.Gateway.Benchmarks;

/// <summary>The real host as a child process (<c>dotnet Tenantry.Host.dll</c>) on free loopback ports, temporary data dir.</summary>
internal sealed class BenchHost : IDisposable
{
    private const string Secret = "gateway-benchmark-operator-secret";
    private readonly Process _process;

    private BenchHost(Process process, string dataDir, int[] ports)
    {
        _process = process;
        DataDir = dataDir;
        ControlPlane = new Uri($"http://127.0.0.1:{ports[0]}");
        Gateway = new Uri($"http://127.0.0.1:{ports[1]}");
        SharedApp = new Uri($"http://127.0.0.1:{ports[2]}");
    }

    public string DataDir { get; }

    /// <summary>The host process's CPU time so far (user + kernel, all threads).</summary>
    public TimeSpan CpuTime
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }
    }

    public Uri ControlPlane { get; }

    public Uri Gateway { get; }

    public Uri SharedApp { get; }

    public static async Task<BenchHost> StartAsync(IEnumerable<string> extraArgs)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "Tenantry.Host.dll");
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-gateway-bench", Guid.NewGuid().ToString("N"));
        var listeners = Enumerable.Range(0, 4).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        var start = new ProcessStartInfo(DotnetPath()) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        string[] args =
        [
            dll, "--data-dir", dataDir, "--port", ports[0].ToString(CultureInfo.InvariantCulture),
            "--gateway-port", ports[1].ToString(CultureInfo.InvariantCulture),
            "--Tenantry:Ports:SharedApp=" + ports[2].ToString(CultureInfo.InvariantCulture),
            "--Tenantry:Compute:FirstDedicatedPort=" + ports[3].ToString(CultureInfo.InvariantCulture),
            "--operator-secret", Secret,
            .. extraArgs,
        ];
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment.Remove("ASPNETCORE_URLS");
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine("host: " + e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var host = new BenchHost(process, dataDir, ports);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                using var cp = await http.GetAsync(new Uri(host.ControlPlane, "/healthz"));
                using var gw = await http.GetAsync(new Uri(host.Gateway, "/healthz"));
                if (cp.IsSuccessStatusCode && gw.IsSuccessStatusCode)
                {
                    return host;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        host.Dispose();
        throw new InvalidOperationException("The host did not start.");
    }

    public async Task<HttpClient> OperatorAsync()
    {
        var client = new HttpClient { BaseAddress = ControlPlane };
        var token = await TokenAsync(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = "operator", ["client_secret"] = Secret, ["scope"] = "tenantry:admin",
        });
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    /// <summary>Onboards an active tenant and returns its id and an admin token.</summary>
    public async Task<(Guid Id, string Token)> OnboardAsync(HttpClient op, string slug, string tier)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/tenants") { Content = JsonContent.Create(new { name = slug, slug, tier, adminEmail = $"admin@{slug}.test" }) };
        request.Headers.Add("Idempotency-Key", slug);
        using var created = await op.SendAsync(request);
        created.EnsureSuccessStatusCode();
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        for (var i = 0; i < 600; i++)
        {
            var status = (await op.GetFromJsonAsync<JsonElement>(new Uri($"/v1/tenants/{id}", UriKind.Relative))).GetProperty("status").GetString();
            if (status == "active")
            {
                break;
            }

            await Task.Delay(50);
        }

        using var invite = await op.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = $"admin@{slug}.test", role = "admin" });
        invite.EnsureSuccessStatusCode();
        var password = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("initialPassword").GetString()!;
        var token = await TokenAsync(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = $"admin@{slug}.test", ["password"] = password, ["tenant"] = slug,
        });
        return (Guid.Parse(id), token);
    }

    private async Task<string> TokenAsync(Dictionary<string, string> form)
    {
        using var http = new HttpClient { BaseAddress = ControlPlane };
        using var response = await http.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(form));
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }

        _process.Dispose();
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static string DotnetPath()
    {
        var current = Environment.ProcessPath;
        return current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet"
            ? current
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
    }
}
