using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Npgsql;
using Tenantry.Testing;
using Xunit.Abstractions;
using static Tenantry.Host.Tests.StoreQueries;

namespace Tenantry.Host.Tests;

/// <summary>
/// Two control-plane hosts on one PostgreSQL store share one key ring, sealed with the master key: a
/// token one issues is accepted by the other, and a tenant database password one stores is used by the
/// other. A host without the master key, or with another one, refuses to start.
/// </summary>
public sealed class SharedKeyRingTests(LeasePostgres pg, ITestOutputHelper output) : IClassFixture<LeasePostgres>, IDisposable
{
    private const string OperatorSecret = "key-ring-tests-operator-secret-0123";
    private const string MasterKey = "key-ring-tests-master-key-0123456789abcdef";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "tenantry-key-ring-tests", Guid.NewGuid().ToString("N"));
    private readonly ConcurrentQueue<string> _lines = new();

    [Fact]
    public async Task Two_hosts_on_one_store_accept_each_others_tokens_and_tenant_passwords_and_store_no_key_in_plaintext()
    {
        var store = await pg.NewDatabaseAsync();
        var dataPlane = pg.Server.SuperuserConnectionStringFor("postgres");
        string[] dataPlaneSettings = ["--Tenantry:Postgres:Servers:0:Name=keys-pg", "--Tenantry:Postgres:Servers:0:ConnectionString=" + dataPlane];

        // Both start at once on the empty store.
        var starting = await Task.WhenAll(StartAsync("a", store, MasterKey, dataPlaneSettings), StartAsync("b", store, MasterKey, dataPlaneSettings));
        var (a, aClient, aBase) = starting[0];
        var (b, bClient, bBase) = starting[1];
        using (b)
        using (bClient)
        {
            using (a)
            using (aClient)
            {
                // Token signing and encryption keys, the tenant-context key and its next key, and the generated gateway secret.
                Assert.Equal(5L, await ScalarAsync(store, "SELECT count(*) FROM key_ring"));
                using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
                Assert.Equal(HttpStatusCode.OK, (await plain.GetAsync(new Uri(aBase, "/readyz"))).StatusCode);
                Assert.Equal(HttpStatusCode.OK, (await plain.GetAsync(new Uri(bBase, "/readyz"))).StatusCode);

                // A token A issued opens B's API.
                var tokenFromA = await TenantryHost.OperatorTokenAsync(aClient, OperatorSecret);
                using (var request = new HttpRequestMessage(HttpMethod.Get, "/v1/tenants"))
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tokenFromA);
                    using var listed = await bClient.SendAsync(request);
                    Assert.True(listed.StatusCode == HttpStatusCode.OK, $"B refused A's token: {listed.StatusCode}\n{Tail()}");
                }

                // A onboards a bridge tenant: its database role's password is stored by A, under A's Data Protection key.
                using var created = await aClient.CreateTenantAsync(new { name = "Keys Firm", slug = "keys-firm", tier = "standard", adminEmail = "admin@keys-firm.test" });
                Assert.True(created.StatusCode == HttpStatusCode.Accepted, $"{created.StatusCode} {await created.Content.ReadAsStringAsync()}");
                var id = (await created.JsonAsync()).GetProperty("id").GetString()!;
                await aClient.WaitForStatusAsync(id, "active", seconds: 120);
                Assert.Equal(1L, await ScalarAsync(store, "SELECT count(*) FROM tenant_credentials WHERE tenant_id = $1", id));

                a.Terminate(TimeSpan.FromSeconds(30));

                // B offboards it alone: its export step opens the tenant's schema with the password A stored.
                using var offboard = await bClient.DeleteAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative));
                Assert.True(offboard.StatusCode == HttpStatusCode.Accepted, $"{offboard.StatusCode} {await offboard.Content.ReadAsStringAsync()}");
                await bClient.WaitForStatusAsync(id, "offboarded", seconds: 120);
            }
        }

        // No key in the store is plaintext: every row is sealed, and no PEM or Data Protection secret shows.
        var tokenKeys = await RowsAsync(store, "SELECT name || ' ' || sealed_key FROM key_ring WHERE name IN ('signing', 'encryption')");
        Assert.Equal(2, tokenKeys.Count);
        Assert.All(tokenKeys, row => Assert.Matches(@"^(signing|encryption) v1\.[A-Za-z0-9+/=]{1000,}$", row));
        var secrets = await RowsAsync(store, "SELECT name || ' ' || sealed_key FROM key_ring WHERE name NOT IN ('signing', 'encryption') ORDER BY name");
        Assert.Collection(secrets, row => Assert.Matches(@"^gateway-secret v1\.[A-Za-z0-9+/=]+$", row), row => Assert.Matches(@"^tenant-context v1\.[A-Za-z0-9+/=]{200,}$", row), row => Assert.Matches(@"^tenant-context-next v1\.[A-Za-z0-9+/=]{200,}$", row));
        var protectionKeys = await RowsAsync(store, "SELECT sealed_xml FROM data_protection_keys");
        Assert.NotEmpty(protectionKeys);
        Assert.All(protectionKeys, xml =>
        {
            var names = System.Xml.Linq.XElement.Parse(xml).DescendantsAndSelf().ToList();
            Assert.True(names.Any(e => e.Name.LocalName == "sealedByMasterKey" && e.Value.StartsWith("v1.", StringComparison.Ordinal)), xml);
            Assert.False(names.Any(e => e.Name.LocalName is "masterKey" or "value"), xml);
        });
    }

    [Fact]
    public async Task A_host_without_the_master_key_or_with_another_one_refuses_to_start_on_a_shared_store()
    {
        var store = await pg.NewDatabaseAsync();
        var (first, client, _) = await StartAsync("first", store, MasterKey, []);
        client.Dispose();
        first.Dispose();
        Assert.Equal(5L, await ScalarAsync(store, "SELECT count(*) FROM key_ring"));

        var (missingCode, missing) = Refused("missing", store, masterKey: null);
        Assert.True(missingCode == 2, $"exit {missingCode}\n{string.Join('\n', missing)}");
        Assert.Single(missing, l => l.Contains("Tenantry:MasterKey (TENANTRY_MASTER_KEY) is required with a PostgreSQL Tenantry:Store", StringComparison.Ordinal));

        var (wrongCode, wrong) = Refused("wrong", store, masterKey: "another-master-key-of-enough-length-0123456789");
        Assert.True(wrongCode == 2, $"exit {wrongCode}\n{string.Join('\n', wrong)}");
        Assert.Single(wrong, l => l.Contains("Tenantry:MasterKey: the keys in Tenantry:Store do not open with this master key", StringComparison.Ordinal));
        Assert.DoesNotContain(wrong, l => l.Contains("   at ", StringComparison.Ordinal));

        // The refused hosts changed nothing: the keys are the ones the first host made.
        Assert.Equal(5L, await ScalarAsync(store, "SELECT count(*) FROM key_ring"));
    }

    public void Dispose()
    {
        foreach (var line in _lines.TakeLast(40))
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

    private string Tail() => string.Join('\n', _lines.TakeLast(40));

    // Replicas behind one load balancer share one issuer; each host's default is its own loopback address.
    private string[] Arguments(string name, string store, int port) =>
    [
        "--data-dir", Path.Combine(_root, name), "--operator-secret", OperatorSecret, "--Tenantry:ApplicationPlane:Enabled=false",
        $"--Tenantry:Store={store}", $"--Tenantry:NodeName=keys-{name}", "--Tenantry:Issuer=http://tenantry.keys.test/", "--port", port.ToString(CultureInfo.InvariantCulture),
    ];

    private static Dictionary<string, string> Environment(string? masterKey) =>
        masterKey is null ? [] : new(StringComparer.Ordinal) { ["TENANTRY_MASTER_KEY"] = masterKey };

    private (int? Code, List<string> Lines) Refused(string name, string store, string? masterKey)
    {
        var lines = new ConcurrentQueue<string>();
        using var host = TenantryHost.Start(Arguments(name, store, TenantryHost.FreePorts(1)[0]), lines.Enqueue, Environment(masterKey));
        var code = host.WaitForExit(TimeSpan.FromSeconds(90));
        return (code, [.. lines]);
    }

    private async Task<(TenantryHost Host, HttpClient Client, Uri Base)> StartAsync(string name, string store, string masterKey, string[] settings)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = TenantryHost.FreePorts(1)[0];
            var host = TenantryHost.Start([.. Arguments(name, store, port), .. settings], l => _lines.Enqueue($"{name}: {l}"), Environment(masterKey));
            var baseAddress = new Uri($"http://127.0.0.1:{port}");
            var failure = await host.WaitHealthyAsync(TimeSpan.FromSeconds(90), baseAddress);
            if (failure is null)
            {
                var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantryHost.OperatorTokenAsync(client, OperatorSecret));
                return (host, client, baseAddress);
            }

            host.Dispose();
            if (host.ExitCode != 4 || attempt >= 3)
            {
                Assert.Fail($"{name}: {failure}\n{Tail()}");
            }
        }
    }

    private static async Task<long> ScalarAsync(string store, string sql, params string[] parameters)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var p in parameters)
        {
            command.Parameters.AddWithValue(p);
        }

        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
