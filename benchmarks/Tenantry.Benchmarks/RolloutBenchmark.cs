using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Benchmarks;

/// <summary>
/// A release rolled out across a fleet on the embedded default while a load generator sends requests
/// through the gateway to every tenant. Three rollouts of the sample app (Orders.Api) in one run, on one host:
/// <list type="number">
/// <item>baseline: a sequential no-gate update (one wave, no bake, so no gates), 1.0.0 → 1.1.0;</item>
/// <item>main: 3 waves of dedicated instances (a canary tenant, 50 %, the rest) with a 5 s bake and gates, 1.1.0 → 1.2.0;</item>
/// <item>broken: 1.3.0, healthy but every <c>/orders</c> answer of its dedicated instances a 5xx, with a canary wave:
/// it must stop at the canary and be rolled back.</item>
/// </list>
/// Reports each rollout's time, the time per instance swap, and the load's failed requests (non-2xx other than 429, and
/// transport errors) per tenant; for the broken release, when the gate failed and when every tenant was back.
/// </summary>
internal static class RolloutBenchmark
{
    private const double FleetGoalSeconds = 60;
    private const double RollbackGoalSeconds = 10;
    private static readonly TimeSpan RolloutTimeout = TimeSpan.FromMinutes(5);

    public static async Task<int> MainAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine("""
                rollout [--shared 40] [--premium 10] [--instances 2] [--workers 8] [--bake 5]
                  Onboards --shared basic and standard tenants (pool and bridge, served by --instances shared
                  instances) and --premium premium tenants (a dedicated instance each), then, while --workers
                  loops send GET /orders through the gateway to every tenant, rolls out a no-gate update
                  (baseline), a release in 3 waves with a --bake s bake (main), and a broken release (canary).
                """);
            return 0;
        }

        var shared = BenchmarkArgs.Int(args, "--shared", 40);
        var premium = BenchmarkArgs.Int(args, "--premium", 10);
        var instances = BenchmarkArgs.Int(args, "--instances", 2);
        var workers = BenchmarkArgs.Int(args, "--workers", 8);
        var bake = BenchmarkArgs.Int(args, "--bake", 5);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        var ct = cancel.Token;

        var setup = Stopwatch.StartNew();
        await using var host = await TenantryHost.StartAsync(
            TenantryHostOptions.Platform(SampleApps.NoDefaultApp, "--Logging:LogLevel:Default=Warning") with { Output = _ => { } }, ct);
        using var op = await host.OperatorClientAsync();
        await RegisterAsync(op, host, instances);

        var tenants = new List<TenantHandle>();
        var tiers = Enumerable.Range(0, shared).Select(i => (Slug: $"shared-{i:D3}", Tier: i % 2 == 0 ? "basic" : "standard"))
            .Concat(Enumerable.Range(0, premium).Select(i => (Slug: $"silo-{i:D3}", Tier: "premium")));
        foreach (var batch in tiers.Chunk(5))
        {
            tenants.AddRange(await Task.WhenAll(batch.Select(t => host.OnboardAsync(op, t.Slug, t.Tier))));
        }

        var silos = tenants.Where(t => t.Tier == "premium").ToList();
        Console.WriteLine($"Set-up: {tenants.Count} tenants ({shared} pool/bridge on {instances} shared instances, {premium} premium with a dedicated instance each) in {setup.Elapsed.TotalSeconds:0} s.");
        Console.WriteLine();

        await using var load = new LoadGenerator(tenants, workers);
        await Task.Delay(TimeSpan.FromSeconds(3), ct);

        var baseline = await RunAsync(op, load, new { app = "orders", version = "1.1.0", bakeSeconds = 0 }, null, ct);
        var main = await RunAsync(op, load, new
        {
            app = "orders",
            version = "1.2.0",
            waves = new object[] { new { tenants = new[] { silos[0].Id } }, new { percent = 50 }, new { percent = 100 } },
            bakeSeconds = bake,
            gates = new { maxErrorRate = 0.05 },
        }, null, ct);
        var broken = await RunAsync(op, load, new
        {
            app = "orders",
            version = "1.3.0",
            waves = new object[] { new { tenants = new[] { silos[0].Id } }, new { percent = 100 } },
            bakeSeconds = Math.Max(bake, 8),
            gates = new { maxErrorRate = 0.2 },
        }, silos[0].Id, ct);

        var swaps = instances + premium;
        Console.WriteLine($"## Rollout across {tenants.Count} tenants under load (embedded default, {Environment.ProcessorCount} cores, loopback)");
        Console.WriteLine();
        Console.WriteLine($"Load: {workers} loops sending GET /orders?limit=5 through the gateway, each tenant in turn with its own token. Every rollout moves {instances} shared instances (one slot at a time) and {premium} dedicated ones (three at a time within a wave).");
        Console.WriteLine();
        Console.WriteLine("| rollout | status | time | per instance swap | requests | failed (non-2xx but 429, errors) | goal |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        Row("baseline: no-gate update (one wave, no bake)", baseline, swaps, "");
        Row($"main: 3 waves, {bake} s bake, gates", main, swaps, $"≤ {FleetGoalSeconds:0} s, 0 failed");
        Row("broken release, canary wave", broken, 0, "stops at the canary; failures on the canary only");
        Console.WriteLine();
        Console.WriteLine($"Main rollout time vs the baseline: {main.Seconds / baseline.Seconds:0.00}× ({main.Seconds:0.0} s vs {baseline.Seconds:0.0} s); goal ≤ {FleetGoalSeconds:0} s: {(main.Seconds <= FleetGoalSeconds && main.Failed == 0 && main.Status == "succeeded" ? "met" : "not met")}.");
        var otherFailed = broken.FailedByTenant.Where(f => f.Key != silos[0].Id).Sum(f => f.Value);
        Console.WriteLine($"Broken release: status {broken.Status}; gate failed {Fmt(broken.GateFailedAt)} s after the start, every tenant back on 1.2.0 {Fmt(broken.BackAt - broken.GateFailedAt)} s after the gate failed " +
            $"(goal ≤ {RollbackGoalSeconds:0} s: {(broken.BackAt - broken.GateFailedAt <= RollbackGoalSeconds ? "met" : "not met")}); failed requests: {broken.FailedByTenant.GetValueOrDefault(silos[0].Id)} to the canary, {otherFailed} to the other tenants.");
        return main.Failed == 0 && main.Status == "succeeded" && broken.Status == "rolled-back" && otherFailed == 0 ? 0 : 1;
    }

    private static void Row(string name, RolloutRun run, int swaps, string goal) =>
        Console.WriteLine($"| {name} | {run.Status} | {run.Seconds:0.0} s | {(swaps > 0 ? $"{run.Seconds / swaps:0.00} s" : "")} | {run.Requests:N0} | {run.Failed} | {goal} |");

    private static string Fmt(double? seconds) => seconds is { } s ? s.ToString("0.0", CultureInfo.InvariantCulture) : "–";

    private static async Task<RolloutRun> RunAsync(HttpClient op, LoadGenerator load, object request, Guid? canary, CancellationToken ct)
    {
        var before = load.Snapshot();
        var clock = Stopwatch.StartNew();
        using var started = await op.PostAsJsonAsync("/v1/rollouts", request, ct);
        if (!started.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"POST /v1/rollouts answered {(int)started.StatusCode}: {await started.Content.ReadAsStringAsync(ct)}");
        }

        var id = (await started.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetGuid();
        double? gateFailed = null;
        var status = "running";
        while (clock.Elapsed < RolloutTimeout)
        {
            var rollout = await op.GetFromJsonAsync<JsonElement>($"/v1/rollouts/{id}", ct);
            status = rollout.GetProperty("status").GetString()!;
            if (canary is not null && gateFailed is null && rollout.GetProperty("waves").EnumerateArray().Any(w =>
                    w.GetProperty("gates").ValueKind == JsonValueKind.Object && !w.GetProperty("gates").GetProperty("passed").GetBoolean()))
            {
                gateFailed = clock.Elapsed.TotalSeconds;
            }

            if (status is not ("running" or "paused"))
            {
                break;
            }

            await Task.Delay(100, ct);
        }

        var seconds = clock.Elapsed.TotalSeconds;
        // Requests still in flight when the rollout ended count for it.
        await Task.Delay(500, ct);
        var after = load.Snapshot();
        var failed = after.Failed.ToDictionary(f => f.Key, f => f.Value - before.Failed.GetValueOrDefault(f.Key));
        return new RolloutRun(status, seconds, after.Requests - before.Requests, failed.Values.Sum(), failed, gateFailed, canary is null ? null : seconds);
    }

    private static async Task RegisterAsync(HttpClient op, TenantryHost host, int instances)
    {
        var folder = Path.GetDirectoryName(SampleApps.OrdersDll)!;
        var migrations = Path.Combine(folder, "migrations");
        using (var app = await op.PostAsJsonAsync("/v1/apps", new { name = "orders", routePrefix = "/", healthPath = "/healthz", shared = new { instances } }))
        {
            app.EnsureSuccessStatusCode();
        }

        foreach (var version in new[] { "1.0.0", "1.1.0", "1.2.0" })
        {
            using var release = await op.PostAsJsonAsync("/v1/apps/orders/releases", new
            {
                version,
                process = new { command = TenantryHost.DotnetPath(), args = new[] { SampleApps.OrdersDll }, workingDirectory = folder },
                migrationsPath = migrations,
            });
            release.EnsureSuccessStatusCode();
        }

        // Healthy (its health endpoint needs no database), but on a dedicated instance every /orders call fails: its
        // database cannot be opened. Shared instances run it as it is, so the canary wave is the first to fail.
        const string script = "[ -n \"$TENANTRY_TENANT_ID\" ] && export TENANTRY_DATABASE='Data Source=/nonexistent-folder/broken.db'; exec \"$@\"";
        using var broken = await op.PostAsJsonAsync("/v1/apps/orders/releases", new
        {
            version = "1.3.0",
            process = new
            {
                command = "/bin/sh",
                args = new[] { "-c", script, "broken", TenantryHost.DotnetPath(), SampleApps.OrdersDll, "--Tenantry:App:DataDir=" + host.DataDir },
                workingDirectory = folder,
            },
            migrationsPath = migrations,
        });
        broken.EnsureSuccessStatusCode();
    }

    private sealed record RolloutRun(string Status, double Seconds, long Requests, long Failed, Dictionary<Guid, long> FailedByTenant, double? GateFailedAt, double? BackAt);

    /// <summary><c>workers</c> loops, each sending <c>GET /orders?limit=5</c> to every tenant in turn, counting requests and failures per tenant.</summary>
    private sealed class LoadGenerator : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentDictionary<Guid, long> _failed = new();
        private readonly Task[] _loops;
        private readonly HttpClient _http;
        private long _requests;

        public LoadGenerator(IReadOnlyList<TenantHandle> tenants, int workers)
        {
            _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = workers * 2, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
            {
                BaseAddress = tenants[0].Host.Gateway,
                Timeout = TimeSpan.FromSeconds(30),
            };
            foreach (var tenant in tenants)
            {
                _failed[tenant.Id] = 0;
            }

            _loops = [.. Enumerable.Range(0, workers).Select(w => Task.Run(() => LoopAsync(tenants, w)))];
        }

        public (long Requests, Dictionary<Guid, long> Failed) Snapshot() => (Interlocked.Read(ref _requests), _failed.ToDictionary(f => f.Key, f => f.Value));

        private async Task LoopAsync(IReadOnlyList<TenantHandle> tenants, int offset)
        {
            for (var i = offset; !_stop.IsCancellationRequested; i++)
            {
                var tenant = tenants[i % tenants.Count];
                using var request = new HttpRequestMessage(HttpMethod.Get, "/orders?limit=5");
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Token);
                var ok = false;
                try
                {
                    using var response = await _http.SendAsync(request, _stop.Token);
                    ok = response.IsSuccessStatusCode || response.StatusCode == HttpStatusCode.TooManyRequests;
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (HttpRequestException)
                {
                }

                Interlocked.Increment(ref _requests);
                if (!ok)
                {
                    _failed.AddOrUpdate(tenant.Id, 1, (_, n) => n + 1);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_loops);
            _http.Dispose();
            _stop.Dispose();
        }
    }
}
