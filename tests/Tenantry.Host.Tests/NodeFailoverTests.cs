using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Tenantry.Testing;
using Xunit.Abstractions;

namespace Tenantry.Host.Tests;

/// <summary>
/// Two control-plane replicas, each a compute node, on one PostgreSQL store, and a gateway replica: when a node is
/// killed its dedicated instances and its operations move to the survivor, the gateway follows the new placement,
/// and the node that comes back runs no duplicate.
/// </summary>
[Trait("Category", "PostgreSQL")]
public sealed class NodeFailoverTests(ITestOutputHelper output) : IDisposable
{
    private static readonly string[] NodeSettings =
    [
        "--Tenantry:Node:HeartbeatInterval=00:00:00.500",
        "--Tenantry:Node:DeadAfter=00:00:02",
    ];

    private readonly ConcurrentQueue<string> _lines = new();

    [Fact]
    public async Task A_killed_node_s_dedicated_instance_runs_on_the_survivor_and_the_node_that_returns_removes_its_old_copy()
    {
        await using var pg = await PostgresServer.StartAsync();
        await pg.ExecuteAsync("CREATE DATABASE tenantry_control");
        var store = pg.SuperuserConnectionStringFor("tenantry_control");
        var issuer = $"http://127.0.0.1:{TenantryHost.FreePorts(1)[0]}/";
        var a = await StartNodeAsync("a", pg, issuer);
        TenantryHost? again = null;
        try
        {
            // The silo tenant onboards while A is the only node: its dedicated instance is placed on A.
            using var opA = await a.OperatorClientAsync();
            var vault = await a.OnboardAsync(opA, "vault", "premium");
            Assert.Equal("node-a", await TextAsync(store, "SELECT node FROM app_instances WHERE slug = 'vault'"));

            await using var b = await StartNodeAsync("b", pg, issuer);
            var gateway = await b.StartGatewayReplicaAsync("--Tenantry:Store=" + store, "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey);
            using var client = new HttpClient { BaseAddress = gateway, Timeout = TimeSpan.FromSeconds(10) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", vault.Token);
            var before = await WaitInstanceAsync(client, _ => true);
            Assert.True(TenantryHost.IsInstance(before, a.DataDir), $"pid {before} is not A's instance\n{Tail(a, b)}");
            using (var order = await client.PostAsJsonAsync("/orders", new { amount = 12m, note = "before the failover" }))
            {
                Assert.True(order.StatusCode == HttpStatusCode.Created, $"{order.StatusCode}\n{Tail(a, b)}");
            }

            // Both nodes are listed live.
            using var opB = await b.OperatorClientAsync();
            var nodes = (await opB.GetFromJsonAsync<JsonElement>("/v1/nodes")).GetProperty("items").EnumerateArray().ToList();
            Assert.Equal(["live", "live"], nodes.Select(n => n.GetProperty("status").GetString()));
            Assert.Equal(await CountAsync(store, "SELECT count(*) FROM app_instances WHERE node = 'node-a'"), nodes.Single(n => n.GetProperty("name").GetString() == "node-a").GetProperty("instances").GetInt64());

            // kill -9 of A's host alone: its instance processes live on, as after a real crash of the host process.
            a.Kill(entireProcessTree: false);
            var after = await WaitInstanceAsync(client, pid => TenantryHost.IsInstance(pid, b.DataDir));
            Assert.Equal("node-b", await TextAsync(store, "SELECT node FROM app_instances WHERE slug = 'vault'"));
            Assert.Equal(0L, await CountAsync(store, "SELECT count(*) FROM app_instances WHERE node = 'node-a'"));
            var orders = await client.GetFromJsonAsync<JsonElement>("/orders");
            Assert.Contains(orders.GetProperty("items").EnumerateArray(), o => o.GetProperty("note").GetString() == "before the failover");
            nodes = (await opB.GetFromJsonAsync<JsonElement>("/v1/nodes")).GetProperty("items").EnumerateArray().ToList();
            Assert.Equal("dead", nodes.Single(n => n.GetProperty("name").GetString() == "node-a").GetProperty("status").GetString());
            Assert.True(TenantryHost.IsInstance(before, a.DataDir), "The old copy died with the host; the test wants it alive until A returns.");

            // A comes back on its data dir: it sees its instances placed on B and removes its old copies.
            again = await TenantryHost.StartAsync(NodeOptions("a", pg, issuer) with { DataDir = a.DataDir, Ports = a.Ports });
            for (var i = 0; i < 200 && (TenantryHost.IsInstance(before, a.DataDir) || Directory.Exists(a.InstanceFolder("vault"))); i++)
            {
                await Task.Delay(100);
            }

            Assert.False(TenantryHost.IsInstance(before, a.DataDir), $"A's old copy still runs\n{Tail(again, b)}");
            Assert.False(Directory.Exists(a.InstanceFolder("vault")), "A's old instance folder is left");
            Assert.Equal(1L, await CountAsync(store, "SELECT count(*) FROM app_instances WHERE slug = 'vault'"));
            Assert.Equal(1, InstanceProcesses("vault", a.DataDir, b.DataDir));
            Assert.Equal(after, await WaitInstanceAsync(client, _ => true));
            nodes = (await opB.GetFromJsonAsync<JsonElement>("/v1/nodes")).GetProperty("items").EnumerateArray().ToList();
            Assert.Equal(["live", "live"], nodes.Select(n => n.GetProperty("status").GetString()));
        }
        finally
        {
            again?.Dispose();
            a.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var line in _lines.TakeLast(80))
        {
            output.WriteLine(line);
        }
    }

    private TenantryHostOptions NodeOptions(string name, PostgresServer pg, string issuer) => TenantryHostOptions.Platform(
    [
        "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey,
        "--Tenantry:Store=" + pg.SuperuserConnectionStringFor("tenantry_control"),
        "--Tenantry:Postgres:Servers:0:Name=pg-test",
        "--Tenantry:Postgres:Servers:0:ConnectionString=" + pg.SuperuserConnectionStringFor("postgres"),
        "--Tenantry:NodeName=node-" + name,
        "--Tenantry:Issuer=" + issuer,
        .. NodeSettings,
    ]) with
    { Output = l => _lines.Enqueue($"{name}: {l}") };

    private Task<TenantryHost> StartNodeAsync(string name, PostgresServer pg, string issuer) => TenantryHost.StartAsync(NodeOptions(name, pg, issuer));

    /// <summary>The pid the tenant's dedicated instance reports through the gateway, once it answers 2xx and <paramref name="accept"/> holds (at most 60 s).</summary>
    private async Task<int> WaitInstanceAsync(HttpClient client, Func<int, bool> accept)
    {
        var clock = Stopwatch.StartNew();
        var last = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                using var response = await client.GetAsync(new Uri("/instance", UriKind.Relative));
                last = response.StatusCode.ToString();
                if (response.IsSuccessStatusCode)
                {
                    var pid = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetInt32();
                    if (accept(pid))
                    {
                        return pid;
                    }

                    last = $"pid {pid}";
                }
            }
            catch (HttpRequestException ex)
            {
                last = ex.Message;
            }
            catch (TaskCanceledException)
            {
                last = "timeout";
            }

            await Task.Delay(100);
        }

        Assert.Fail($"The instance never answered as expected through the gateway (last: {last})\n{string.Join('\n', _lines.TakeLast(60))}");
        return 0;
    }

    /// <summary>Live processes of the owner's instances, under any of <paramref name="dataDirs"/>.</summary>
    private static int InstanceProcesses(string owner, params string[] dataDirs)
    {
        var count = 0;
        foreach (var proc in Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => int.TryParse(n, out _)))
        {
            try
            {
                var environ = File.ReadAllText($"/proc/{proc}/environ");
                var stat = File.ReadAllText($"/proc/{proc}/stat");
                if (stat[(stat.LastIndexOf(')') + 2)..][0] is 'Z' or 'X')
                {
                    continue;
                }

                if (dataDirs.Any(d => environ.Contains("TENANTRY_INSTANCE=" + Path.Combine(d, "compute", owner) + "/", StringComparison.Ordinal)))
                {
                    count++;
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return count;
    }

    private string Tail(params TenantryHost[] hosts) => string.Join('\n', _lines.TakeLast(60));

    private static async Task<long> CountAsync(string store, string sql)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    private static async Task<string?> TextAsync(string store, string sql)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToString(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
