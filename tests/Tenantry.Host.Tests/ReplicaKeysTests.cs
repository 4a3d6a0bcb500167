using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;
using Npgsql;
using Tenantry.Testing;
using Xunit.Abstractions;
using static Tenantry.Host.Tests.StoreQueries;

namespace Tenantry.Host.Tests;

/// <summary>
/// Secrets every replica shares on one PostgreSQL store: the tenant-context signing key (every control-plane and
/// gateway replica signs with one key, so every app instance verifies with one JWKS) and the bootstrap clients'
/// generated secrets (a replica does not replace another's). A gateway replica reads the key, never makes one.
/// </summary>
public sealed partial class ReplicaKeysTests(LeasePostgres pg, ITestOutputHelper output) : IClassFixture<LeasePostgres>, IDisposable
{
    private const string MasterKey = "replica-keys-tests-master-key-0123456789";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "tenantry-replica-keys-tests", Guid.NewGuid().ToString("N"));
    private readonly ConcurrentQueue<string> _lines = new();

    [Fact]
    public async Task Control_plane_and_gateway_replicas_on_one_store_share_the_tenant_context_key_and_the_bootstrap_secrets()
    {
        var store = await pg.NewDatabaseAsync();
        var ports = TenantryHost.FreePorts(3);
        var issuer = $"http://127.0.0.1:{ports[0]}/";

        // Both start at once on the empty store, neither given an operator or gateway secret.
        var started = await Task.WhenAll(StartAsync("a", store, ports[0], issuer), StartAsync("b", store, ports[1], issuer));
        using var a = started[0];
        using var b = started[1];

        // One tenant-context key in the ring, sealed; both replicas sign with it.
        var row = Assert.Single(await RowsAsync(store, "SELECT sealed_key FROM key_ring WHERE name = 'tenant-context'"));
        Assert.StartsWith("v1.", row, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", row, StringComparison.Ordinal);
        var kidA = KeyId("a");
        var kidB = KeyId("b");
        Assert.Equal(kidA, kidB);
        Assert.False(File.Exists(Path.Combine(_root, "a", "keys", "tenant-context-es256.pem")));
        Assert.False(File.Exists(Path.Combine(_root, "b", "keys", "tenant-context-es256.pem")));

        // One generated operator secret and one gateway secret: each replica's file holds the ring's value.
        var operatorSecret = await SecretAsync("a", "operator-secret");
        Assert.Equal(operatorSecret, await SecretAsync("b", "operator-secret"));
        var gatewaySecret = await SecretAsync("a", "gateway-secret");
        Assert.Equal(gatewaySecret, await SecretAsync("b", "gateway-secret"));
        using (var clientA = new HttpClient { BaseAddress = new Uri(issuer), Timeout = TimeSpan.FromSeconds(30) })
        using (var clientB = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{ports[1]}/"), Timeout = TimeSpan.FromSeconds(30) })
        {
            var fromB = await TenantryHost.OperatorTokenAsync(clientB, operatorSecret);
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/tenants");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", fromB);
            using var listed = await clientA.SendAsync(request);
            Assert.True(listed.StatusCode == HttpStatusCode.OK, $"A refused B's token: {listed.StatusCode}\n{Tail()}");
            using var form = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials", ["client_id"] = "gateway", ["client_secret"] = gatewaySecret, ["scope"] = "tenantry:routes",
            });
            using var gatewayToken = await clientA.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
            Assert.True(gatewayToken.IsSuccessStatusCode, $"{gatewayToken.StatusCode} {await gatewayToken.Content.ReadAsStringAsync()}");
        }

        // A gateway replica on the store signs with the same key, and needs no key file.
        using var gateway = TenantryHost.Start(
            [
                "gateway", "--gateway-port", ports[2].ToString(CultureInfo.InvariantCulture), "--Tenantry:Gateway:Authority=" + issuer,
                "--Tenantry:Gateway:ClientSecret=" + gatewaySecret, "--Tenantry:Store=" + store,
            ],
            l => _lines.Enqueue("gw: " + l),
            new Dictionary<string, string>(StringComparer.Ordinal) { ["TENANTRY_MASTER_KEY"] = MasterKey });
        var failure = await gateway.WaitHealthyAsync(TimeSpan.FromSeconds(90), new Uri($"http://127.0.0.1:{ports[2]}/"));
        Assert.True(failure is null, $"{failure}\n{Tail()}");
        Assert.Equal(kidA, KeyId("gw"));

        // A gateway replica with another master key refuses to start, with one line.
        var wrong = new ConcurrentQueue<string>();
        using var refused = TenantryHost.Start(
            [
                "gateway", "--gateway-port", TenantryHost.FreePorts(1)[0].ToString(CultureInfo.InvariantCulture), "--Tenantry:Gateway:Authority=" + issuer,
                "--Tenantry:Gateway:ClientSecret=" + gatewaySecret, "--Tenantry:Store=" + store,
            ],
            wrong.Enqueue,
            new Dictionary<string, string>(StringComparer.Ordinal) { ["TENANTRY_MASTER_KEY"] = "another-master-key-of-enough-length-0123456789" });
        var code = refused.WaitForExit(TimeSpan.FromSeconds(90));
        Assert.True(code == 2, $"exit {code}\n{string.Join('\n', wrong)}");
        Assert.Single(wrong, l => l.Contains("Tenantry:MasterKey: the keys in Tenantry:Store do not open with this master key", StringComparison.Ordinal));
        Assert.DoesNotContain(wrong, l => l.Contains("   at ", StringComparison.Ordinal));

        // Still one key of each: nobody made a second.
        Assert.Equal(1L, await ScalarAsync(store, "SELECT count(*) FROM key_ring WHERE name = 'tenant-context'"));
        // signing, encryption, tenant-context and the next tenant-context key, operator-secret, gateway-secret.
        Assert.Equal(6L, await ScalarAsync(store, "SELECT count(*) FROM key_ring"));
    }

    public void Dispose()
    {
        foreach (var line in _lines.TakeLast(60))
        {
            output.WriteLine(line);
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [GeneratedRegex(@"Tenant-context signing key (\S+) from the key ring in Tenantry:Store")]
    private static partial Regex KeyLine();

    private string KeyId(string name)
    {
        var ids = _lines.Where(l => l.StartsWith(name + ": ", StringComparison.Ordinal)).Select(l => KeyLine().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().ToList();
        Assert.True(ids.Count == 1, $"{name} named {ids.Count} tenant-context keys\n{Tail()}");
        return ids[0];
    }

    private async Task<string> SecretAsync(string name, string file) => (await File.ReadAllTextAsync(Path.Combine(_root, name, file))).Trim();

    private string Tail() => string.Join('\n', _lines.TakeLast(60));

    private async Task<TenantryHost> StartAsync(string name, string store, int port, string issuer)
    {
        var host = TenantryHost.Start(
            [
                "--data-dir", Path.Combine(_root, name), "--Tenantry:ApplicationPlane:Enabled=false", $"--Tenantry:Store={store}",
                $"--Tenantry:NodeName=replica-{name}", "--Tenantry:Issuer=" + issuer, "--port", port.ToString(CultureInfo.InvariantCulture),
            ],
            l => _lines.Enqueue($"{name}: {l}"),
            new Dictionary<string, string>(StringComparer.Ordinal) { ["TENANTRY_MASTER_KEY"] = MasterKey });
        var failure = await host.WaitHealthyAsync(TimeSpan.FromSeconds(90), new Uri($"http://127.0.0.1:{port}"));
        if (failure is not null)
        {
            host.Dispose();
            Assert.Fail($"{name}: {failure}\n{Tail()}");
        }

        return host;
    }

    private static async Task<long> ScalarAsync(string store, string sql)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
