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
using static Tenantry.Host.Tests.StoreQueries;

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

            // A comes back on its data dir (on fresh ports: a parallel test may hold its old ones by now): it sees its instances placed on B and removes its old copies.
            again = await TenantryHost.StartAsync(NodeOptions("a", pg, issuer) with { DataDir = a.DataDir });
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

    [Fact]
    public async Task A_node_stopped_with_SIGTERM_hands_its_instances_to_the_survivor_before_it_exits()
    {
        await using var pg = await PostgresServer.StartAsync();
        await pg.ExecuteAsync("CREATE DATABASE tenantry_control");
        var store = pg.SuperuserConnectionStringFor("tenantry_control");
        var issuer = $"http://127.0.0.1:{TenantryHost.FreePorts(1)[0]}/";

        // Dead only after a minute: what moves the instance here is the handover, not a failover.
        using var a = await StartNodeAsync("a", pg, issuer, "--Tenantry:Node:DeadAfter=00:01:00");
        using var opA = await a.OperatorClientAsync();
        var vault = await a.OnboardAsync(opA, "vault", "premium");
        await using var b = await StartNodeAsync("b", pg, issuer, "--Tenantry:Node:DeadAfter=00:01:00");
        var gateway = await b.StartGatewayReplicaAsync("--Tenantry:Store=" + store, "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey);
        using var client = new HttpClient { BaseAddress = gateway, Timeout = TimeSpan.FromSeconds(10) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", vault.Token);
        var before = await WaitInstanceAsync(client, _ => true);
        Assert.True(TenantryHost.IsInstance(before, a.DataDir));

        var code = a.Terminate(TimeSpan.FromSeconds(60));
        Assert.True(code == 0, $"A exited with {code}\n{Tail(a, b)}");
        Assert.Contains(_lines, l => l.StartsWith("a: ", StringComparison.Ordinal) && l.Contains("Node node-a handed its instances over", StringComparison.Ordinal));
        Assert.Equal("node-b", await TextAsync(store, "SELECT node FROM app_instances WHERE slug = 'vault'"));
        Assert.Equal("dead", await TextAsync(store, "SELECT status FROM nodes WHERE name = 'node-a'"));
        Assert.False(TenantryHost.IsInstance(before, a.DataDir), "A left its instance running");
        var after = await WaitInstanceAsync(client, pid => TenantryHost.IsInstance(pid, b.DataDir));
        Assert.Equal(1, InstanceProcesses("vault", a.DataDir, b.DataDir));
        output.WriteLine($"instance moved from pid {before} to pid {after}");
    }

    [Fact]
    public async Task A_node_killed_during_fifty_onboardings_leaves_every_tenant_made_exactly_once_with_its_operations_and_instances_on_the_survivor()
    {
        await using var pg = await PostgresServer.StartAsync();
        await pg.ExecuteAsync("CREATE DATABASE tenantry_control");
        var store = pg.SuperuserConnectionStringFor("tenantry_control");
        var issuer = $"http://127.0.0.1:{TenantryHost.FreePorts(1)[0]}/";
        var started = await Task.WhenAll(StartNodeAsync("a", pg, issuer), StartNodeAsync("b", pg, issuer));
        using var a = started[0];
        await using var b = started[1];
        using var opA = await a.OperatorClientAsync();
        using var opB = await b.OperatorClientAsync();

        // 50 onboardings, every other one sent to each replica: 10 silo (premium), 20 bridge (standard), 20 pool (basic).
        var tiers = Enumerable.Range(0, 50).Select(i => (i % 5) switch { 0 => "premium", 1 or 2 => "standard", _ => "basic" }).ToList();
        var ids = new List<string>();
        for (var i = 0; i < tiers.Count; i++)
        {
            using var created = await (i % 2 == 0 ? opA : opB).PostAsJsonAsync("/v1/tenants", new { name = $"Load {i}", slug = $"load-{i}", tier = tiers[i], adminEmail = $"a@load{i}.test" });
            Assert.True(created.StatusCode == HttpStatusCode.Accepted, $"{created.StatusCode} {await created.Content.ReadAsStringAsync()}");
            ids.Add((await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!);
        }

        // kill -9 of A (with its instances: the machine is gone) while it runs some of them.
        List<(string Id, long Token)> held = [];
        for (var poll = 0; poll < 3_000 && held.Count == 0; poll++)
        {
            held = await HeldAsync(store, "node-a");
        }

        Assert.NotEmpty(held);
        a.Kill();

        // What A still held when it died (it may have finished some of those read before the kill).
        held = await HeldAsync(store, "node-a");
        output.WriteLine($"A killed holding {held.Count} operations");

        foreach (var id in ids)
        {
            await WaitActiveAsync(opB, id);
        }

        // Each tenant made once, each onboarding ended once, every step succeeded.
        Assert.Equal(50L, await CountAsync(store, "SELECT count(*) FROM tenants WHERE status = 'active'"));
        Assert.Equal(50L, await CountAsync(store, "SELECT count(*) FROM audit_events WHERE action = 'operation.onboarding' AND outcome = 'succeeded'"));
        Assert.Equal(50L, await CountAsync(store, "SELECT count(DISTINCT tenant_id) FROM audit_events WHERE action = 'operation.onboarding' AND outcome = 'succeeded'"));
        Assert.Equal(0L, await CountAsync(store, "SELECT count(*) FROM operation_steps WHERE status <> 'succeeded'"));

        // B took A's operations over (a newer fencing token than A's) and finished them.
        foreach (var (id, token) in held)
        {
            Assert.True(await CountAsync(store, $"SELECT lease_token FROM operations WHERE id = '{id}' AND status = 'succeeded'") > token, $"operation {id} was not taken over\n{Tail(b)}");
        }

        // One database per silo tenant, one schema per bridge tenant, in PostgreSQL's own catalog.
        var databases = await RowsAsync(pg.SuperuserConnectionStringFor("postgres"), "SELECT datname FROM pg_database WHERE datname LIKE 'tenant_load_%'");
        Assert.Equal(Enumerable.Range(0, 50).Where(i => tiers[i] == "premium").Select(i => $"tenant_load_{i}").Order(), databases.Order());
        var schemas = await RowsAsync(pg.SuperuserConnectionStringFor("tenantry_bridge"), "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'tenant_load_%'");
        Assert.Equal(Enumerable.Range(0, 50).Where(i => tiers[i] == "standard").Select(i => $"tenant_load_{i}").Order(), schemas.Order());

        // Nothing is placed on A any more; each silo tenant has one instance, on B, answering there.
        Assert.Equal(0L, await CountAsync(store, "SELECT count(*) FROM app_instances WHERE node = 'node-a'"));
        Assert.Equal(10L, await CountAsync(store, "SELECT count(*) FROM app_instances WHERE slug LIKE 'load-%'"));
        Assert.Equal(10L, await CountAsync(store, "SELECT count(DISTINCT slug) FROM app_instances WHERE slug LIKE 'load-%' AND node = 'node-b'"));
        var upstreams = await RowsAsync(store, "SELECT host || ':' || port FROM app_instances WHERE slug LIKE 'load-%'");
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        foreach (var upstream in upstreams)
        {
            var healthy = false;
            for (var i = 0; i < 300 && !healthy; i++)
            {
                try
                {
                    using var response = await probe.GetAsync(new Uri($"http://{upstream}/healthz"));
                    healthy = response.IsSuccessStatusCode;
                }
                catch (HttpRequestException)
                {
                    await Task.Delay(100);
                }
            }

            Assert.True(healthy, $"the instance at {upstream} does not answer\n{Tail(b)}");
        }

        Assert.Equal(10, Enumerable.Range(0, 50).Where(i => tiers[i] == "premium").Sum(i => InstanceProcesses($"load-{i}", a.DataDir, b.DataDir)));
    }

    public void Dispose()
    {
        foreach (var line in _lines.TakeLast(80))
        {
            output.WriteLine(line);
        }
    }

    private TenantryHostOptions NodeOptions(string name, PostgresServer pg, string issuer, params string[] extra) => TenantryHostOptions.Platform(
    [
        "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey,
        "--Tenantry:Store=" + pg.SuperuserConnectionStringFor("tenantry_control"),
        "--Tenantry:Postgres:Servers:0:Name=pg-test",
        "--Tenantry:Postgres:Servers:0:ConnectionString=" + pg.SuperuserConnectionStringFor("postgres"),
        "--Tenantry:NodeName=node-" + name,
        "--Tenantry:Issuer=" + issuer,
        .. NodeSettings,
        .. extra,
    ]) with
    { Output = l => _lines.Enqueue($"{name}: {l}") };

    private Task<TenantryHost> StartNodeAsync(string name, PostgresServer pg, string issuer, params string[] extra) => TenantryHost.StartAsync(NodeOptions(name, pg, issuer, extra));

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

    private static async Task WaitActiveAsync(HttpClient op, string id)
    {
        var clock = Stopwatch.StartNew();
        var last = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(240))
        {
            last = (await op.GetFromJsonAsync<JsonElement>(new Uri($"/v1/tenants/{id}", UriKind.Relative))).GetProperty("status").GetString()!;
            if (last == "active")
            {
                return;
            }

            await Task.Delay(200);
        }

        Assert.Fail($"Tenant {id} stayed {last}.");
    }

    private static async Task<string?> TextAsync(string store, string sql)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToString(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
