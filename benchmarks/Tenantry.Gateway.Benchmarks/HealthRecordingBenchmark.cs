using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Tenantry.Testing;

namespace Tenantry.Gateway.Benchmarks;

/// <summary>
/// The cost of per-tenant health recording: two real hosts alike but for <c>Tenantry:Health:Enabled</c>,
/// each with the same tenant and orders, driven in alternated wrk runs (on, off, on, off, …) so the
/// machine's drift falls on both sides. Reports throughput and host CPU per request on each side.
/// </summary>
internal static class HealthRecordingBenchmark
{
    public static async Task RunAsync(TenantryHost on, TenantryHost off, TimeSpan duration, int rounds)
    {
        var sides = new[] { ("on", on, await SeedAsync(on)), ("off", off, await SeedAsync(off)) };
        foreach (var path in new[] { "/orders?limit=10", "/instance" })
        {
            Console.WriteLine($"GET {path}: warming up both hosts...");
            foreach (var (_, host, token) in sides)
            {
                await Wrk.RunAsync(new Uri(host.Gateway, path), 16, TimeSpan.FromSeconds(5), [("Authorization", "Bearer " + token)]);
            }

            var runs = sides.ToDictionary(s => s.Item1, _ => new List<(WrkResult Run, double CpuUs)>());
            for (var round = 0; round < rounds; round++)
            {
                // Alternate which side goes first, so neither always follows the other.
                foreach (var (name, host, token) in round % 2 == 0 ? sides : sides.Reverse())
                {
                    var cpu = host.CpuTime;
                    var run = await Wrk.RunAsync(new Uri(host.Gateway, path), 32, duration, [("Authorization", "Bearer " + token)]);
                    var cpuUs = (host.CpuTime - cpu).TotalMicroseconds / run.Requests;
                    runs[name].Add((run, cpuUs));
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  recording {name,-3} c=32: {run}  host CPU {cpuUs:0.0} µs/request"));
                }
            }

            var onRps = runs["on"].Average(r => r.Run.RequestsPerSecond);
            var offRps = runs["off"].Average(r => r.Run.RequestsPerSecond);
            var pairs = runs["on"].Zip(runs["off"], (a, b) => a.Run.RequestsPerSecond / b.Run.RequestsPerSecond).Order().ToList();
            var median = pairs[pairs.Count / 2];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  GET {path}: recording on {onRps:0} req/s, off {offRps:0} req/s = {onRps / offRps:P1} of off (cost {1 - (onRps / offRps):P1}; goal <= 2 %); " +
                $"round ratios {string.Join(", ", pairs.Select(p => p.ToString("P1", CultureInfo.InvariantCulture)))}, median {median:P1}; " +
                $"host CPU per request {runs["on"].Average(r => r.CpuUs):0.0} µs on, {runs["off"].Average(r => r.CpuUs):0.0} µs off; non-2xx {runs["on"].Sum(r => r.Run.Non2xx)} / {runs["off"].Sum(r => r.Run.Non2xx)}"));
        }

        // What the recording side stored adds up to what it served (wrk's requests plus the warm-up's), as a check that it ran.
        using var op = await on.OperatorClientAsync();
        await Task.Delay(TimeSpan.FromSeconds(3));
        var worst = await op.GetFromJsonAsync<System.Text.Json.JsonElement>("/v1/health/worst?by=p99&window=1h&limit=1");
        Console.WriteLine($"  recording side stored: {worst.GetProperty("items")[0]}");
    }

    private static async Task<string> SeedAsync(TenantryHost host)
    {
        using var op = await host.OperatorClientAsync();
        var tenant = await host.OnboardAsync(op, "bench-h", "bench");
        using var seed = new HttpClient { BaseAddress = host.Gateway };
        seed.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Token);
        for (var i = 0; i < 10; i++)
        {
            using var r = await seed.PostAsJsonAsync("/orders", new { amount = 10 + i, note = "seed" });
            r.EnsureSuccessStatusCode();
        }

        return tenant.Token;
    }
}
