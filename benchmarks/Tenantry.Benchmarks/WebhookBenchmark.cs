using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Benchmarks;

/// <summary>
/// Events → webhook deliveries: a real host, 100 endpoints on one loopback receiver, events committed
/// at a steady rate (tier changes of many tenants, one event each). Reports deliveries per second and
/// the time from an event's commit (its CloudEvents <c>time</c>) to its arrival at the receiver, per
/// delivery, against the goal p99 ≤ 250 ms.
/// </summary>
internal static class WebhookBenchmark
{
    private const double GoalMs = 250;
    private static readonly string[] Subscribed = ["tenant.tier-changed"];
    private static readonly string[] EveryTenantEvent = ["tenant.*"];

    public static async Task<int> MainAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine("""
                webhooks [--endpoints 100] [--tenants 32] [--rate 20] [--seconds 10] [--onboard 40] [--rounds 2]
                  Onboarding throughput without endpoints and with --endpoints endpoints subscribed to
                  tenant.* (--onboard tenants per block, 8 clients, --rounds alternating pairs of blocks).
                  Then commits --rate events/s for --seconds (tier changes spread over --tenants tenants);
                  every event goes to every endpoint (all on one loopback receiver). Prints deliveries/s
                  and commit → received p50/p99.
                """);
            return 0;
        }

        var endpoints = BenchmarkArgs.Int(args, "--endpoints", 100);
        var tenants = BenchmarkArgs.Int(args, "--tenants", 32);
        var rate = BenchmarkArgs.Int(args, "--rate", 20);
        var seconds = BenchmarkArgs.Int(args, "--seconds", 10);
        var onboard = BenchmarkArgs.Int(args, "--onboard", 40);
        var rounds = BenchmarkArgs.Int(args, "--rounds", 2);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        var ct = cancel.Token;

        await using var receiver = await WebhookReceiver.StartAsync();
        var arrivals = new ConcurrentQueue<(string Id, DateTimeOffset Committed, DateTimeOffset Received)>();
        var received = 0L;
        receiver.Answer = r =>
        {
            Interlocked.Increment(ref received);
            var body = JsonDocument.Parse(r.Body).RootElement;
            if (body.GetProperty("type").GetString() == Subscribed[0])
            {
                arrivals.Enqueue((r.Id, body.GetProperty("time").GetDateTimeOffset(), r.At));
            }

            return 200;
        };

        using var host = await TenantryHost.StartAsync(
            new TenantryHostOptions
            {
                Settings =
                [
                    "--Tenantry:Tiers:starter=pool", "--Tenantry:Webhooks:AllowPrivateNetworks=true",
                    "--Tenantry:Webhooks:MaxConcurrency=256", "--Tenantry:Webhooks:PollInterval=00:00:00.100",
                ],
            },
            ct);
        using var client = await host.OperatorClientAsync();
        var ids = new List<string>();
        for (var i = 0; i < tenants; i++)
        {
            ids.Add(await client.CreateActiveTenantAsync($"wh-bench-{i:D3}"));
        }

        // Onboarding with and without subscribed endpoints, in alternating blocks (the endpoints are
        // disabled for the blocks without), so both see the same machine and the same store size.
        var hooks = new List<string>();
        for (var i = 0; i < endpoints; i++)
        {
            using var created = await client.PostAsJsonAsync("/v1/webhooks", new { url = receiver.Url($"/e{i}").ToString(), events = EveryTenantEvent }, ct);
            created.EnsureSuccessStatusCode();
            hooks.Add((await created.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetString()!);
        }

        var without = new List<double>();
        var with = new List<double>();
        var made = 0;
        for (var round = 0; round < rounds; round++)
        {
            foreach (var enabled in new[] { false, true })
            {
                foreach (var hook in hooks)
                {
                    using var toggled = await client.PatchAsJsonAsync($"/v1/webhooks/{hook}", new { enabled }, ct);
                    toggled.EnsureSuccessStatusCode();
                }

                await QuietAsync(() => Interlocked.Read(ref received), ct);
                var block = Stopwatch.StartNew();
                var next = -1;
                await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
                {
                    while (Interlocked.Increment(ref next) < onboard)
                    {
                        await client.CreateActiveTenantAsync($"wh-onb-{Interlocked.Increment(ref made):D4}");
                    }
                }));
                (enabled ? with : without).Add(onboard / block.Elapsed.TotalSeconds);
            }
        }

        await QuietAsync(() => Interlocked.Read(ref received), ct);
        foreach (var hook in hooks)
        {
            using var narrowed = await client.PatchAsJsonAsync($"/v1/webhooks/{hook}", new { events = Subscribed, enabled = true }, ct);
            narrowed.EnsureSuccessStatusCode();
        }

        // A steady offered rate: each tenant flips its tier in turn; a tick that finds its tenant busy is skipped.
        var total = rate * seconds;
        var sent = 0;
        var busy = new int[tenants];
        var versions = new ConcurrentDictionary<int, string>();
        var clock = Stopwatch.StartNew();
        var inflight = new List<Task>();
        for (var n = 0; n < total; n++)
        {
            var due = TimeSpan.FromSeconds((double)n / rate);
            if (due > clock.Elapsed)
            {
                await Task.Delay(due - clock.Elapsed, ct);
            }

            var t = n % tenants;
            if (Interlocked.Exchange(ref busy[t], 1) == 1)
            {
                continue;
            }

            var flip = n / tenants;
            inflight.Add(Task.Run(
                async () =>
                {
                    try
                    {
                        using var read = await client.GetAsync(new Uri($"/v1/tenants/{ids[t]}", UriKind.Relative), ct);
                        using var patch = new HttpRequestMessage(HttpMethod.Patch, $"/v1/tenants/{ids[t]}") { Content = JsonContent.Create(new { tier = flip % 2 == 0 ? "starter" : "basic" }) };
                        patch.Headers.TryAddWithoutValidation("If-Match", read.Headers.ETag!.Tag);
                        using var response = await client.SendAsync(patch, ct);
                        if (response.IsSuccessStatusCode && (await response.Content.ReadFromJsonAsync<JsonElement>(ct)).TryGetProperty("tier", out _))
                        {
                            Interlocked.Increment(ref sent);
                        }
                    }
                    finally
                    {
                        Volatile.Write(ref busy[t], 0);
                    }
                },
                ct));
        }

        await Task.WhenAll(inflight);
        var offered = clock.Elapsed;
        var expected = sent * endpoints;
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (arrivals.Count < expected && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, ct);
        }

        var all = arrivals.ToList();
        var latencies = Distribution.Of(all.Select(a => (a.Received - a.Committed).TotalMilliseconds));
        var first = all.Count == 0 ? DateTimeOffset.UtcNow : all.Min(a => a.Committed);
        var last = all.Count == 0 ? DateTimeOffset.UtcNow : all.Max(a => a.Received);
        var perSecond = all.Count / Math.Max(0.001, (last - first).TotalSeconds);

        Console.WriteLine($"## Webhooks: events → deliveries to {endpoints} endpoints");
        Console.WriteLine();
        Console.WriteLine($"{sent} events committed in {offered.TotalSeconds:0.0} s ({sent / offered.TotalSeconds:0.0} events/s offered, {tenants} tenants), each to every endpoint: {expected:N0} deliveries expected, {all.Count:N0} received ({all.Select(a => a.Id).Distinct().Count()} distinct events).");
        Console.WriteLine();
        Console.WriteLine("| deliveries/s | commit → received p50 | p99 | max | p99 vs goal (250 ms) |");
        Console.WriteLine("|---|---|---|---|---|");
        Console.WriteLine($"| {perSecond:0} | {Format.Ms(latencies.P50)} ms | {Format.Ms(latencies.P99)} ms | {Format.Ms(latencies.Max)} ms | {Format.Ratio(latencies.P99 / GoalMs)} |");
        Console.WriteLine();
        Console.WriteLine(latencies.P99 <= GoalMs ? "Goal met." : "Goal NOT met.");
        Console.WriteLine();
        var ratio = with.Sum() / without.Sum();
        Console.WriteLine($"## Onboarding with {endpoints} subscribed endpoints (tenant.*) against none, {rounds} × {onboard} tenants each, 8 clients");
        Console.WriteLine();
        Console.WriteLine("| without endpoints | with endpoints | ratio | goal (≥ 0.95×) |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| {string.Join(", ", without.Select(v => v.ToString("0.0", CultureInfo.InvariantCulture)))} tenants/s | {string.Join(", ", with.Select(v => v.ToString("0.0", CultureInfo.InvariantCulture)))} tenants/s | {ratio:0.00}× | {(ratio >= 0.95 ? "met" : "not met")} |");
        return all.Count >= expected ? 0 : 1;
    }

    /// <summary>Waits until the receiver has had nothing new for a second (at most two minutes): the backlog is delivered.</summary>
    private static async Task QuietAsync(Func<long> count, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        var last = count();
        while (deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            await Task.Delay(1000, ct);
            var now = count();
            if (now == last)
            {
                return;
            }

            last = now;
        }
    }
}
