using System.Globalization;
using Tenantry.Testing;

namespace Tenantry.Benchmarks;

/// <summary>
/// The console's pages are thin over the API, so their server time is the time of these calls.
/// Each is measured with a small fleet (the baseline) and again after growing it to the full
/// fleet, in the same run on the same host; the goal is p99 ≤ 300 ms at 10,000 tenants.
/// </summary>
internal static class ConsoleBenchmark
{
    private const double GoalMs = 300;

    private static readonly (string Name, string Path)[] Calls =
    [
        ("first page of the tenant list", "v1/tenants?limit=25"),
        ("search (slug/name substring)", "v1/tenants?limit=25&q=c-012"),
        ("search + status + tier filters", "v1/tenants?limit=25&q=c-01&status=active&tier=basic"),
        ("search with no match (full scan)", "v1/tenants?limit=25&q=no-such-tenant"),
        ("fleet overview", "v1/fleet"),
    ];

    public static async Task<int> MainAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine("""
                console [--tenants 10000] [--baseline 100] [--requests 200] [--concurrency 16]
                  Onboards --baseline tenants through the API, times each console call --requests times,
                  grows the fleet to --tenants, times them again; prints p50/p99 and the ratios.
                """);
            return 0;
        }

        var tenants = Int(args, "--tenants", 10_000);
        var baseline = Int(args, "--baseline", 100);
        var requests = Int(args, "--requests", 200);
        var concurrency = Int(args, "--concurrency", 16);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(30));
        var ct = cancel.Token;

        using var host = await TenantryHost.StartAsync(new TenantryHostOptions(), ct);
        using var api = new TenantryApi(host.ControlPlane);
        await api.AuthenticateAsync(host.OperatorSecret, ct);

        await GrowAsync(api, 0, baseline, concurrency, ct);
        var small = await MeasureAsync(api, requests, ct);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await GrowAsync(api, baseline, tenants, concurrency, ct);
        var seeding = clock.Elapsed;
        var large = await MeasureAsync(api, requests, ct);

        Console.WriteLine($"## Console API with {tenants:N0} tenants vs {baseline:N0} (same host, same run)");
        Console.WriteLine();
        Console.WriteLine($"{requests} sequential requests per call, timed at the client on loopback (send → whole body read), so an upper bound of server time. Fleet grown through the API: {tenants - baseline:N0} onboardings in {seeding.TotalSeconds:0.0} s.");
        Console.WriteLine();
        Console.WriteLine($"| call | {baseline:N0} tenants p50 / p99 | {tenants:N0} tenants p50 / p99 | p99 ratio | p99 vs goal ({GoalMs:0} ms) |");
        Console.WriteLine("|---|---|---|---|---|");
        var worst = 0.0;
        foreach (var (name, _) in Calls)
        {
            var s = small[name];
            var l = large[name];
            worst = Math.Max(worst, l.P99);
            Console.WriteLine($"| {name} | {Format.Ms(s.P50)} / {Format.Ms(s.P99)} ms | {Format.Ms(l.P50)} / {Format.Ms(l.P99)} ms | {Format.Ratio(l.P99 / s.P99)} | {Format.Ratio(l.P99 / GoalMs)} |");
        }

        Console.WriteLine();
        Console.WriteLine(worst <= GoalMs ? $"Goal met: worst p99 {Format.Ms(worst)} ms ≤ {GoalMs:0} ms." : $"Goal NOT met: worst p99 {Format.Ms(worst)} ms > {GoalMs:0} ms.");
        return 0;
    }

    private static async Task GrowAsync(TenantryApi api, int from, int to, int concurrency, CancellationToken ct)
    {
        await Parallel.ForEachAsync(Enumerable.Range(from, to - from), new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = ct }, async (i, token) =>
        {
            var slug = $"c-{i:D5}";
            await api.CreateTenantAsync($"Console Bench {i:D5}", slug, $"admin@{slug}.test", token);
        });

        // Measured on a quiet fleet: every onboarding finished.
        var deadline = DateTime.UtcNow.AddMinutes(20);
        while (DateTime.UtcNow < deadline)
        {
            var fleet = await api.GetJsonAsync("v1/fleet", ct);
            var active = fleet.GetProperty("byStatus").TryGetProperty("active", out var a) ? a.GetInt64() : 0;
            if (active >= to)
            {
                return;
            }

            await Task.Delay(500, ct);
        }

        throw new TimeoutException($"The fleet did not reach {to} active tenants in 20 minutes.");
    }

    private static async Task<Dictionary<string, Distribution>> MeasureAsync(TenantryApi api, int requests, CancellationToken ct)
    {
        var result = new Dictionary<string, Distribution>(StringComparer.Ordinal);
        foreach (var (name, path) in Calls)
        {
            for (var i = 0; i < 10; i++)
            {
                await api.TimeGetAsync(path, ct);
            }

            var samples = new List<double>(requests);
            for (var i = 0; i < requests; i++)
            {
                samples.Add(await api.TimeGetAsync(path, ct));
            }

            result[name] = Distribution.Of(samples);
        }

        return result;
    }

    private static int Int(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
    }
}
