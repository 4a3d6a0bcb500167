using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Tenantry;
using Tenantry.AspNetCore;
using Tenantry.Gateway.Benchmarks;

// Gateway benchmarks on loopback with wrk against the real host (control plane + gateway + shared Orders.Api):
//  1. GET /orders?limit=10 on Orders.Api directly vs through the gateway (JWT validation, tenant checks,
//     per-tenant token bucket + daily quota, YARP forwarding): throughput at saturation and p99 at a paced load.
//  2. Noisy neighbour: five basic tenants at half their limit (25 r/s each), alone and then next to a sixth
//     at ten times its limit (500 r/s): their p99, and how soon the flooder gets 429s.
var seconds = args.Length > 1 && args[0] == "--seconds" ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10;
var duration = TimeSpan.FromSeconds(seconds);
Wrk.EnsureInstalled();
Console.WriteLine($"Gateway benchmark: {Environment.ProcessorCount} cores, {seconds} s per wrk run, loopback, host in Release as a child process.");

using var host = await BenchHost.StartAsync(
[
    // An unlimited plan for the overhead comparison: the limiter runs on every request but never rejects.
    "--Tenantry:Tiers:bench=pool",
    "--Tenantry:Gateway:Plans:bench:RequestsPerSecond=1000000",
    "--Tenantry:Gateway:Plans:bench:DailyQuota=0",
    "--Logging:LogLevel:Default=Warning",
]);
using var op = await host.OperatorAsync();
var (benchId, benchToken) = await host.OnboardAsync(op, "bench-a", "bench");
using (var seed = new HttpClient { BaseAddress = host.Gateway })
{
    seed.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", benchToken);
    for (var i = 0; i < 10; i++)
    {
        using var r = await seed.PostAsJsonAsync("/orders", new { amount = 10 + i, note = "seed" });
        if (!r.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"Seeding an order through the gateway answered {(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
        }
    }
}

// Direct calls carry the context the gateway would add, signed with the same key.
var key = Convert.FromBase64String(File.ReadAllText(Path.Combine(host.DataDir, "keys", "tenant-context.key")).Trim());
var direct = new List<(string, string)>();
new TenantContextHeaders(key).Write((n, v) => direct.Add((n, v)), new TenantContext
{
    TenantId = benchId, Slug = "bench-a", Tier = "bench", Isolation = IsolationModel.Pool, Subject = $"{benchId}:admin@bench-a.test", Roles = ["admin"],
});
(string, string)[] viaGateway = [("Authorization", "Bearer " + benchToken)];
var gatewayUrl = new Uri(host.Gateway, "/orders?limit=10");
var comparisons = new List<Comparison>();
foreach (var path in new[] { "/orders?limit=10", "/instance" })
{
    comparisons.Add(await CompareAsync(new Uri(host.SharedApp, path), new Uri(host.Gateway, path), path));
}

// Noisy neighbour: six basic tenants (50 r/s, burst 50).
var quiet = new List<string>();
for (var i = 1; i <= 5; i++)
{
    quiet.Add((await host.OnboardAsync(op, $"quiet-{i}", "basic")).Token);
}

var flooderToken = (await host.OnboardAsync(op, "flooder", "basic")).Token;
async Task<WrkResult[]> QuietAsync() => await Task.WhenAll(quiet.Select(t =>
    Wrk.RunAsync(gatewayUrl, 1, duration, [("Authorization", "Bearer " + t)], delayMs: 40)));

var alone = await QuietAsync();
var flood = Flood(host.Gateway, flooderToken, ratePerSecond: 500, duration + TimeSpan.FromSeconds(1));
await Task.Delay(500);
var beside = await QuietAsync();
var flooded = await flood;

var aloneP99 = alone.Average(r => r.P99Ms);
var besideP99 = beside.Average(r => r.P99Ms);
var p99Rise = besideP99 / aloneP99 - 1;
var quietRejected = beside.Sum(r => r.Non2xx);

Console.WriteLine();
Console.WriteLine("Results");
foreach (var c in comparisons)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"  GET {c.Path}: direct {c.DirectRps:0} req/s, through gateway {c.GatewayRps:0} req/s = {c.GatewayRps / c.DirectRps:P1} of direct (goal >= 85%); paced p99 direct {c.PacedDirect.P99Ms:0.00} ms, gateway {c.PacedGateway.P99Ms:0.00} ms, added {c.PacedGateway.P99Ms - c.PacedDirect.P99Ms:0.00} ms (goal <= 1 ms)"));
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"  noisy neighbour: 5 quiet tenants' mean p99 {aloneP99:0.00} ms alone, {besideP99:0.00} ms beside the flooder = {p99Rise:+0.0%;-0.0%} (goal <= +10%); quiet tenants' non-2xx: {quietRejected}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"  flooder at 500 req/s (10x its 50 r/s plan): first 429 after {flooded.FirstRejection.TotalMilliseconds:0} ms (goal <= 1000 ms), {flooded.Rejected}/{flooded.Sent} refused, {flooded.Accepted / (double)seconds:0} accepted/s"));
return 0;

async Task<Comparison> CompareAsync(Uri directUrl, Uri viaUrl, string path)
{
    Console.WriteLine($"GET {path}: warming up...");
    await Wrk.RunAsync(directUrl, 16, TimeSpan.FromSeconds(3), direct);
    await Wrk.RunAsync(viaUrl, 16, TimeSpan.FromSeconds(3), viaGateway);
    const int Connections = 32;
    var directRuns = new List<WrkResult>();
    var gatewayRuns = new List<WrkResult>();
    // Alternated, so drift on a shared machine hits both sides alike.
    for (var round = 0; round < 2; round++)
    {
        directRuns.Add(await Wrk.RunAsync(directUrl, Connections, duration, direct));
        Console.WriteLine($"  direct   c={Connections}: {directRuns[^1]}");
        gatewayRuns.Add(await Wrk.RunAsync(viaUrl, Connections, duration, viaGateway));
        Console.WriteLine($"  gateway  c={Connections}: {gatewayRuns[^1]}");
    }

    // Paced: 8 connections, 5 ms between each one's requests (below saturation), for latency.
    var pacedDirect = await Wrk.RunAsync(directUrl, 8, duration, direct, delayMs: 5);
    Console.WriteLine($"  direct   paced: {pacedDirect}");
    var pacedGateway = await Wrk.RunAsync(viaUrl, 8, duration, viaGateway, delayMs: 5);
    Console.WriteLine($"  gateway  paced: {pacedGateway}");
    return new Comparison(path, directRuns.Average(r => r.RequestsPerSecond), gatewayRuns.Average(r => r.RequestsPerSecond), pacedDirect, pacedGateway);
}

static async Task<(int Sent, int Accepted, int Rejected, TimeSpan FirstRejection)> Flood(Uri gateway, string token, int ratePerSecond, TimeSpan duration)
{
    using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 64 };
    using var client = new HttpClient(handler) { BaseAddress = gateway };
    client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    const int Loops = 10;
    var interval = TimeSpan.FromSeconds(Loops / (double)ratePerSecond);
    var clock = Stopwatch.StartNew();
    int sent = 0, accepted = 0, rejected = 0;
    long firstRejection = long.MaxValue;
    await Task.WhenAll(Enumerable.Range(0, Loops).Select(async _ =>
    {
        using var timer = new PeriodicTimer(interval);
        while (clock.Elapsed < duration && await timer.WaitForNextTickAsync())
        {
            Interlocked.Increment(ref sent);
            using var response = await client.GetAsync(new Uri("/orders?limit=10", UriKind.Relative));
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Interlocked.Increment(ref rejected);
                var at = clock.ElapsedTicks;
                long seen;
                while (at < (seen = Interlocked.Read(ref firstRejection)) && Interlocked.CompareExchange(ref firstRejection, at, seen) != seen)
                {
                }
            }
            else if (response.IsSuccessStatusCode)
            {
                Interlocked.Increment(ref accepted);
            }
        }
    }));
    return (sent, accepted, rejected, firstRejection == long.MaxValue ? TimeSpan.MaxValue : TimeSpan.FromTicks(firstRejection * TimeSpan.TicksPerSecond / Stopwatch.Frequency));
}

internal sealed record Comparison(string Path, double DirectRps, double GatewayRps, WrkResult PacedDirect, WrkResult PacedGateway);
