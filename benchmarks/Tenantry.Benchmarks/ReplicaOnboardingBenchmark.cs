using System.Diagnostics;
using System.Globalization;
using Tenantry.Testing;

namespace Tenantry.Benchmarks;

/// <summary>
/// Onboarding throughput of two control-plane replicas on one PostgreSQL store against one replica on the same store,
/// in the same run: blocks of onboardings of mixed tiers (pool, bridge, silo) sent either all to replica A or
/// round-robin to A and B, alternating, so both sides see the same machine, store and tenant count.
/// </summary>
internal static class ReplicaOnboardingBenchmark
{
    private const double Goal = 0.9;
    private static readonly string[] Tiers = ["basic", "standard", "premium"];

    public static async Task<int> MainAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine("""
                replicas [--tenants 60] [--concurrency 8] [--rounds 3] [--warmup 1]
                  Starts a private PostgreSQL server and two control-plane replicas on one store (the tenant
                  databases on the same server). Each round onboards --tenants tenants of mixed tiers (basic,
                  standard, premium in turn) with --concurrency clients, once all on replica A and once
                  round-robin over A and B (the order alternating between rounds), after --warmup rounds that
                  are not counted (the first blocks of a new store run slower). Prints tenants/s of each side,
                  each round's ratio and the ratio of the means, two replicas / one (goal >= 0.9).
                """);
            return 0;
        }

        var tenants = BenchmarkArgs.Int(args, "--tenants", 60);
        var concurrency = BenchmarkArgs.Int(args, "--concurrency", 8);
        var rounds = BenchmarkArgs.Int(args, "--rounds", 3);
        var warmup = BenchmarkArgs.Int(args, "--warmup", 1);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(30));
        var ct = cancel.Token;

        // Every bridge and silo tenant is a database of its own, with its own connection pool in each replica that
        // touched it: a few hundred tenants on two replicas pass PostgreSQL's default of 100 connections.
        await using var pg = await PostgresServer.StartAsync(["max_connections = 1000"], ct);
        await pg.ExecuteAsync("CREATE DATABASE replica_bench_store", cancellationToken: ct);
        var store = pg.SuperuserConnectionStringFor("replica_bench_store");
        var ports = TenantryHost.FreePorts(2);
        var issuer = $"http://127.0.0.1:{ports[0]}/";
        TenantryHostOptions Replica(int port, string name) => new()
        {
            Store = store,
            Ports = [port],
            Settings =
            [
                "--Tenantry:Issuer=" + issuer, "--Tenantry:NodeName=" + name,
                "--Tenantry:Postgres:Servers:0:Name=bench-pg", "--Tenantry:Postgres:Servers:0:ConnectionString=" + pg.SuperuserConnectionStringFor("postgres"),
            ],
        };

        await using var a = await TenantryHost.StartAsync(Replica(ports[0], "replica-a"), ct);
        await using var b = await TenantryHost.StartAsync(Replica(ports[1], "replica-b"), ct);
        using var clientA = await a.OperatorClientAsync(TimeSpan.FromMinutes(3));
        using var clientB = await b.OperatorClientAsync(TimeSpan.FromMinutes(3));

        // Warm both replicas (JIT, connection pools, the first tenant database) outside the measured blocks.
        var made = 0;
        foreach (var (client, tier) in new[] { (clientA, "premium"), (clientB, "premium"), (clientA, "basic"), (clientB, "standard") })
        {
            await OnboardAsync(client, $"rb-warm-{Interlocked.Increment(ref made):D4}", tier);
        }

        var one = new List<double>();
        var two = new List<double>();
        for (var round = -warmup; round < rounds; round++)
        {
            foreach (var both in (round + warmup) % 2 == 0 ? new[] { false, true } : [true, false])
            {
                HttpClient[] targets = both ? [clientA, clientB] : [clientA];
                var block = Stopwatch.StartNew();
                var next = -1;
                await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
                {
                    int n;
                    while ((n = Interlocked.Increment(ref next)) < tenants)
                    {
                        var slug = $"rb-{Interlocked.Increment(ref made):D4}";
                        await OnboardAsync(targets[n % targets.Length], slug, Tiers[n % Tiers.Length]);
                    }
                }));
                var rate = tenants / block.Elapsed.TotalSeconds;
                if (round >= 0)
                {
                    (both ? two : one).Add(rate);
                }

                Console.Error.WriteLine($"{(round < 0 ? "warm-up" : $"round {round + 1}")}, {(both ? "A+B" : "A only")}: {tenants} tenants in {block.Elapsed.TotalSeconds:0.0} s ({rate:0.00}/s)");
            }
        }

        var oneRate = one.Average();
        var twoRate = two.Average();
        var ratio = twoRate / oneRate;
        Console.WriteLine("| side | blocks | tenants per block | tenants/s (mean) | each block |");
        Console.WriteLine("|---|---|---|---|---|");
        Console.WriteLine($"| one replica (A) | {one.Count} | {tenants} | {oneRate.ToString("0.00", CultureInfo.InvariantCulture)} | {string.Join(", ", one.Select(r => r.ToString("0.00", CultureInfo.InvariantCulture)))} |");
        Console.WriteLine($"| two replicas (A, B round-robin) | {two.Count} | {tenants} | {twoRate.ToString("0.00", CultureInfo.InvariantCulture)} | {string.Join(", ", two.Select(r => r.ToString("0.00", CultureInfo.InvariantCulture)))} |");
        Console.WriteLine();
        Console.WriteLine($"Each round, two / one: {string.Join(", ", one.Zip(two, (o, t) => (t / o).ToString("0.00", CultureInfo.InvariantCulture)))}");
        Console.WriteLine($"Two replicas / one: {ratio.ToString("0.00", CultureInfo.InvariantCulture)}× (goal ≥ {Goal.ToString("0.0", CultureInfo.InvariantCulture)}×: {(ratio >= Goal ? "met" : "not met")})");
        return 0;
    }

    private static async Task OnboardAsync(HttpClient client, string slug, string tier)
    {
        using var response = await client.CreateTenantAsync(new { name = $"Tenant {slug}", slug, tier, adminEmail = $"admin@{slug}.test" });
        if (response.StatusCode != System.Net.HttpStatusCode.Accepted)
        {
            throw new InvalidOperationException($"POST /v1/tenants ({slug}, {tier}): {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        var id = (await response.JsonAsync()).GetProperty("id").GetString()!;
        await client.WaitForStatusAsync(id, "active", seconds: 300);
    }
}
