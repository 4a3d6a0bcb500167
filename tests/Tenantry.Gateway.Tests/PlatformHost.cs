using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// The real host (<c>dotnet Tenantry.Host.dll</c>) with control plane, gateway and shared app on free
/// loopback ports and a temporary data directory, as an operator would run it.
/// </summary>
public sealed class PlatformHost : IAsyncDisposable
{
    public const string OperatorSecret = "gateway-tests-operator-secret-0123";
    private readonly ConcurrentQueue<string> _output = new();
    private readonly IReadOnlyList<string> _settings;
    private readonly List<ChildHost> _replicas = [];
    private ChildHost? _process;

    /// <param name="settings">More <c>--key=value</c> arguments for the host (PostgreSQL servers, Redis, say), after <see cref="TestSettings"/>.</param>
    public PlatformHost(string? dataDir = null, int[]? ports = null, IReadOnlyList<string>? settings = null)
    {
        _settings = settings ?? [];
        DataDir = dataDir ?? Path.Combine(Path.GetTempPath(), "tenantry-gateway-tests", Guid.NewGuid().ToString("N"));
        var p = ports ?? FreePorts(4);
        Ports = p;
        ControlPlane = new Uri($"http://127.0.0.1:{p[0]}");
        Gateway = new Uri($"http://127.0.0.1:{p[1]}");
        SharedApp = new Uri($"http://127.0.0.1:{p[2]}");
    }

    public string DataDir { get; }

    public int[] Ports { get; }

    public Uri ControlPlane { get; }

    public Uri Gateway { get; }

    public Uri SharedApp { get; }

    public int ProcessId => _process?.ProcessId ?? 0;

    public string Output => string.Join('\n', _output.TakeLast(80));

    /// <summary>Extra tiers and plans the tests use: <c>trial</c> (2 r/s, burst 3) and <c>metered</c> (quota 5 a day); a SPA public client <c>orders-spa</c>.</summary>
    public static readonly string[] TestSettings =
    [
        "--Tenantry:Tiers:trial=pool",
        "--Tenantry:Tiers:metered=pool",
        "--Tenantry:Gateway:Plans:trial:RequestsPerSecond=2",
        "--Tenantry:Gateway:Plans:trial:Burst=3",
        "--Tenantry:Gateway:Plans:metered:RequestsPerSecond=100",
        "--Tenantry:Gateway:Plans:metered:DailyQuota=5",
        "--Tenantry:Gateway:Domain=tenants.test",
        "--Tenantry:Gateway:RefreshInterval=00:00:00.200",
        "--Tenantry:Operations:RetryDelay=00:00:00.050",
        "--Tenantry:Operations:PollInterval=00:00:00.100",
        "--Tenantry:Compute:CheckInterval=00:00:00.200",
        "--Tenantry:Identity:PublicClients:orders-spa:RedirectUris:0=https://spa.tenants.test/callback",
    ];

    public async Task StartAsync()
    {
        _process = await LaunchAsync(
            [
                "--data-dir", DataDir, "--port", Ports[0].ToString(CultureInfo.InvariantCulture),
                "--gateway-port", Ports[1].ToString(CultureInfo.InvariantCulture),
                "--Tenantry:Ports:SharedApp=" + Ports[2].ToString(CultureInfo.InvariantCulture),
                "--Tenantry:Compute:FirstDedicatedPort=" + Ports[3].ToString(CultureInfo.InvariantCulture),
                "--operator-secret", OperatorSecret,
                .. TestSettings,
                .. _settings,
            ],
            ControlPlane,
            Gateway);
    }

    /// <summary>
    /// One more gateway replica (<c>Tenantry.Host gateway</c>) in front of this host's control plane and shared
    /// app, on its own free port; stopped with the host.
    /// </summary>
    public async Task<Uri> StartGatewayReplicaAsync(params string[] settings)
    {
        var port = FreePorts(1)[0];
        var replica = new Uri($"http://127.0.0.1:{port}");
        _replicas.Add(await LaunchAsync(
            [
                "gateway", "--gateway-port", port.ToString(CultureInfo.InvariantCulture),
                "--Tenantry:Gateway:Authority=" + ControlPlane,
                "--Tenantry:Gateway:SharedUpstream=" + SharedApp,
                "--Tenantry:Gateway:ContextKeyFile=" + Path.Combine(DataDir, "keys", "tenant-context.key"),
                "--Tenantry:Gateway:ClientSecret=" + OperatorSecret,
                .. TestSettings,
                .. settings,
            ],
            replica));
        return replica;
    }

    /// <summary>Runs <c>dotnet Tenantry.Host.dll</c> with <paramref name="arguments"/> until every health URI answers.</summary>
    private async Task<ChildHost> LaunchAsync(string[] arguments, params Uri[] health)
    {
        var process = ChildHost.Start(arguments, Record);
        var failure = await process.WaitHealthyAsync(TimeSpan.FromSeconds(90), health);
        if (failure is not null)
        {
            process.Dispose();
            Assert.Fail($"The host did not become healthy ({failure}):\n{Output}");
        }

        return process;
    }

    /// <summary>SIGKILL, as a crash: the dedicated instances it started keep running.</summary>
    public void Crash()
    {
        _process?.Kill(entireProcessTree: false);
    }

    public async Task<HttpClient> OperatorAsync()
    {
        var client = new HttpClient { BaseAddress = ControlPlane };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await ChildHost.OperatorTokenAsync(client, OperatorSecret));
        return client;
    }

    /// <summary>Onboards a tenant, waits until it is active, invites its admin and logs in: returns its id and a gateway client with the admin's token.</summary>
    public async Task<TenantHandle> OnboardAsync(HttpClient op, string slug, string tier)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/tenants")
        {
            Content = JsonContent.Create(new { name = $"Tenant {slug}", slug, tier, adminEmail = $"admin@{slug}.test" }),
        };
        request.Headers.Add("Idempotency-Key", "onboard-" + slug);
        using var created = await op.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await WaitForStatusAsync(op, id, "active");
        using var invite = await op.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = $"admin@{slug}.test", role = "admin" });
        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        var password = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("initialPassword").GetString()!;
        var token = await LoginAsync($"admin@{slug}.test", password, slug);
        return new TenantHandle(Guid.Parse(id), slug, tier, token, password, this);
    }

    public async Task<string> LoginAsync(string email, string password, string tenant)
    {
        using var http = new HttpClient { BaseAddress = ControlPlane };
        using var response = await PasswordGrantAsync(http, email, password, tenant);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    public static Task<HttpResponseMessage> PasswordGrantAsync(HttpClient http, string email, string password, string tenant) =>
        http.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password",
            ["username"] = email,
            ["password"] = password,
            ["tenant"] = tenant,
        }));

    public static async Task WaitForStatusAsync(HttpClient op, string id, string status)
    {
        var clock = Stopwatch.StartNew();
        var last = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            var tenant = await op.GetFromJsonAsync<JsonElement>(new Uri($"/v1/tenants/{id}", UriKind.Relative));
            last = tenant.GetProperty("status").GetString()!;
            if (last == status)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"Tenant {id} stayed {last}, expected {status}.");
    }

    public async ValueTask DisposeAsync()
    {
        // A graceful stop would stop the dedicated instances; SIGKILL of the whole tree does it at once.
        foreach (var replica in _replicas)
        {
            replica.Dispose();
        }

        _process?.Dispose();

        KillLeftovers(DataDir);
        try
        {
            Directory.Delete(DataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Kills dedicated instances still running for this data directory (after a crash test).</summary>
    public static void KillLeftovers(string dataDir)
    {
        var compute = Path.Combine(dataDir, "compute");
        if (!Directory.Exists(compute))
        {
            return;
        }

        foreach (var pidFile in Directory.GetFiles(compute, "app.pid", SearchOption.AllDirectories))
        {
            if (int.TryParse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture, out var pid) && IsInstance(pid, dataDir))
            {
                try
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill();
                    process.WaitForExit(5000);
                }
                catch (ArgumentException)
                {
                }
            }
        }
    }

    public static bool IsInstance(int pid, string dataDir)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] is not ('Z' or 'X')
                && File.ReadAllText($"/proc/{pid}/cmdline").Contains(dataDir, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private void Record(string line)
    {
        _output.Enqueue(line);
        while (_output.Count > 400)
        {
            _output.TryDequeue(out _);
        }
    }

    public static int[] FreePorts(int count) => ChildHost.FreePorts(count);
}

/// <summary>An onboarded tenant and its admin's token.</summary>
public sealed record TenantHandle(Guid Id, string Slug, string Tier, string Token, string Password, PlatformHost Host)
{
    /// <summary>A client of the gateway with this tenant's token.</summary>
    public HttpClient Client(string? token = null)
    {
        var client = new HttpClient { BaseAddress = Host.Gateway };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token ?? Token);
        return client;
    }
}
