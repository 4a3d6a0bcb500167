using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Tenantry.Testing;

namespace Tenantry.Benchmarks;

/// <summary>
/// Failover of a killed compute node: two control-plane replicas A and B (each a node) on one private PostgreSQL
/// store and a gateway replica in front of B. A silo tenant's dedicated instance is placed on A; A runs silo
/// onboardings when it is killed (<c>kill -9</c> of A and its instances: the machine is gone). Measured from the kill:
/// (a) the first step of one of A's operations committed by B, (b) the first 2xx through the gateway from the silo
/// tenant's instance, now on B. The same rounds run with the default node timings and with slow ones (a 5 s heartbeat,
/// dead after 15 s: the operation lease's default), the baseline; the other intervals are the defaults too (operations
/// polled every second, the gateway's routes refreshed every second).
/// </summary>
internal static class FailoverBenchmark
{
    private const double GoalSeconds = 5;

    public static async Task<int> MainAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine("""
                failover [--rounds 3]
                  Per round and per setting (default node timings, then slow ones as the baseline): starts A, onboards a
                  silo tenant on it, starts B and a gateway replica, starts 4 silo onboardings, kills A with its instances
                  while it holds one, and times the first operation step B commits and the first 2xx through the gateway.
                """);
            return 0;
        }

        var rounds = BenchmarkArgs.Int(args, "--rounds", 3);
        await using var pg = await PostgresServer.StartAsync();
        var settings = new (string Name, string[] Node)[]
        {
            ("defaults (heartbeat 500 ms, dead after 2 s)", []),
            ("baseline (heartbeat 5 s, dead after 15 s)", ["--Tenantry:Node:HeartbeatInterval=00:00:05", "--Tenantry:Node:DeadAfter=00:00:15"]),
        };
        var results = settings.ToDictionary(s => s.Name, _ => (Step: new List<double>(), Gateway: new List<double>()));
        for (var round = 0; round < rounds; round++)
        {
            // Alternate which setting goes first, so a drift of the machine's speed does not favour one.
            foreach (var s in round % 2 == 0 ? settings : settings.Reverse())
            {
                var (step, gateway) = await RoundAsync(pg, $"r{round}_{(s.Name.StartsWith("default", StringComparison.Ordinal) ? "d" : "b")}", s.Node);
                results[s.Name].Step.Add(step);
                results[s.Name].Gateway.Add(gateway);
                Console.Error.WriteLine($"round {round} {s.Name}: step {step:0.00} s, gateway {gateway:0.00} s");
            }
        }

        Console.WriteLine($"## Failover of a killed node ({rounds} rounds each, {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        Console.WriteLine();
        Console.WriteLine("| setting | (a) kill → first step by B, median | max | (b) kill → first 2xx through the gateway, median | max | worst of (a) and (b) vs goal (≤ 5 s) |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var (name, (step, gateway)) in results)
        {
            var a = Distribution.Of(step);
            var b = Distribution.Of(gateway);
            Console.WriteLine($"| {name} | {a.P50:0.00} s | {a.Max:0.00} s | {b.P50:0.00} s | {b.Max:0.00} s | {Format.Ratio(Math.Max(a.Max, b.Max) / GoalSeconds)} |");
        }

        var fast = results[settings[0].Name];
        var slow = results[settings[1].Name];
        Console.WriteLine();
        Console.WriteLine($"Default against baseline (median): (a) {Format.Ratio(Distribution.Of(fast.Step).P50 / Distribution.Of(slow.Step).P50)}, (b) {Format.Ratio(Distribution.Of(fast.Gateway).P50 / Distribution.Of(slow.Gateway).P50)}.");
        return 0;
    }

    private static async Task<(double Step, double Gateway)> RoundAsync(PostgresServer pg, string name, string[] nodeSettings)
    {
        var database = "failover_" + name;
        await pg.ExecuteAsync($"CREATE DATABASE {database}");
        var store = pg.SuperuserConnectionStringFor(database);
        var issuer = $"http://127.0.0.1:{TenantryHost.FreePorts(1)[0]}/";
        TenantryHostOptions Options(string node) => TenantryHostOptions.Platform(
        [
            "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey,
            "--Tenantry:Store=" + store,
            "--Tenantry:Postgres:Servers:0:Name=pg",
            "--Tenantry:Postgres:Servers:0:ConnectionString=" + pg.SuperuserConnectionStringFor("postgres"),
            "--Tenantry:Postgres:PoolDatabase=pool_" + name,
            "--Tenantry:Postgres:BridgeDatabase=bridge_" + name,
            "--Tenantry:NodeName=" + node,
            "--Tenantry:Issuer=" + issuer,
            // The defaults, not the test platform's short intervals: operations polled every second, instances checked
            // every 500 ms (the gateway replica's routes are refreshed every second, below).
            "--Tenantry:Operations:PollInterval=00:00:01",
            "--Tenantry:Compute:CheckInterval=00:00:00.500",
            "--Logging:LogLevel:Default=Warning",
            .. nodeSettings,
        ]) with
        { Output = _ => { } };

        using var a = await TenantryHost.StartAsync(Options("node-a"));
        using var opA = await a.OperatorClientAsync();
        var silo = await a.OnboardAsync(opA, "fo-" + name.Replace('_', '-'), "premium");
        await using var b = await TenantryHost.StartAsync(Options("node-b"));
        var gateway = await b.StartGatewayReplicaAsync("--Tenantry:Store=" + store, "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey, "--Tenantry:Gateway:RefreshInterval=00:00:01", "--Logging:LogLevel:Default=Warning");
        using var client = new HttpClient { BaseAddress = gateway, Timeout = TimeSpan.FromSeconds(2) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", silo.Token);
        await FirstAnswerAsync(client, _ => true, TimeSpan.FromSeconds(60));

        // Silo onboardings sent to A until A holds one of them.
        List<string> held = [];
        for (var i = 0; i < 20 && held.Count == 0; i++)
        {
            using var created = await opA.PostAsJsonAsync("/v1/tenants", new { name = $"Busy {i}", slug = $"busy-{name.Replace('_', '-')}-{i}", tier = "premium", adminEmail = $"a@busy{i}.test" });
            created.EnsureSuccessStatusCode();
            for (var poll = 0; poll < 50 && held.Count == 0; poll++)
            {
                held = await HeldAsync(store, "node-a");
                await Task.Delay(10);
            }
        }

        if (held.Count == 0)
        {
            throw new InvalidOperationException("A never held an operation.");
        }

        var killed = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        a.Kill();
        var after = DateTimeOffset.UtcNow;
        var gatewayTask = FirstAnswerAsync(client, pid => TenantryHost.IsInstance(pid, b.DataDir), TimeSpan.FromSeconds(120), clock);
        var stepTask = FirstStepAsync(store, held, after, killed);
        return (await stepTask, await gatewayTask);
    }

    /// <summary>Seconds from <paramref name="killed"/> to the first step of <paramref name="operations"/> finished after <paramref name="after"/> (by B: A is gone).</summary>
    private static async Task<double> FirstStepAsync(string store, List<string> operations, DateTimeOffset after, DateTimeOffset killed)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(120))
        {
            await using var connection = new NpgsqlConnection(store);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                "SELECT min(finished_at) FROM operation_steps WHERE operation_id = ANY($1) AND status = 'succeeded' AND finished_at > $2", connection);
            command.Parameters.AddWithValue(operations.ToArray());
            command.Parameters.AddWithValue(after.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            if (await command.ExecuteScalarAsync() is string first)
            {
                return (DateTimeOffset.Parse(first, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) - killed).TotalSeconds;
            }

            await Task.Delay(20);
        }

        return double.NaN;
    }

    /// <summary>Seconds on <paramref name="clock"/> until <c>GET /instance</c> through the gateway answers 2xx from a process <paramref name="accept"/> takes.</summary>
    private static async Task<double> FirstAnswerAsync(HttpClient client, Func<int, bool> accept, TimeSpan timeout, Stopwatch? clock = null)
    {
        clock ??= Stopwatch.StartNew();
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            try
            {
                using var response = await client.GetAsync(new Uri("/instance", UriKind.Relative));
                if (response.IsSuccessStatusCode
                    && accept((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetInt32()))
                {
                    return clock.Elapsed.TotalSeconds;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(20);
        }

        return double.NaN;
    }

    private static async Task<List<string>> HeldAsync(string store, string owner)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id FROM operations WHERE lease_owner = $1 AND status IN ('pending', 'running')", connection);
        command.Parameters.AddWithValue(owner);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }
}
