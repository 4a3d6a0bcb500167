using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Tenantry.Gateway.Benchmarks;

/// <summary>One wrk run's figures; <see cref="QuantilesMs"/>, when asked for, is its latency at each 0.1 % step (0.05 %, 0.15 %, … 99.95 %).</summary>
internal sealed record WrkResult(double RequestsPerSecond, double P50Ms, double P99Ms, long Requests, long Non2xx, IReadOnlyList<double>? QuantilesMs = null)
{
    /// <summary>
    /// A percentile of several runs' requests pooled: each run's 1,000 quantiles stand for its requests
    /// in equal shares, so a run counts by its number of requests.
    /// </summary>
    public static double PooledPercentile(IReadOnlyCollection<WrkResult> runs, double percent)
    {
        var points = runs.SelectMany(r => (r.QuantilesMs ?? throw new InvalidOperationException("The run kept no quantiles."))
            .Select(q => (Ms: q, Weight: r.Requests / (double)r.QuantilesMs.Count))).OrderBy(p => p.Ms).ToList();
        var target = points.Sum(p => p.Weight) * percent / 100;
        var cumulative = 0.0;
        foreach (var (ms, weight) in points)
        {
            cumulative += weight;
            if (cumulative >= target)
            {
                return ms;
            }
        }

        return points[^1].Ms;
    }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{RequestsPerSecond,9:0} req/s  p50 {P50Ms,6:0.00} ms  p99 {P99Ms,6:0.00} ms  ({Requests} requests, {Non2xx} non-2xx)");
}

/// <summary>Runs <c>wrk</c> (installing the Debian package when it is missing) and parses its report.</summary>
internal static partial class Wrk
{
    public static void EnsureInstalled()
    {
        if (Which("wrk") is not null)
        {
            return;
        }

        Console.WriteLine("wrk is missing: installing the Debian package (apt-get install wrk)...");
        var sudo = Environment.UserName == "root" ? "" : "sudo ";
        Run("/bin/sh", "-c", $"{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq wrk >/dev/null");
        if (Which("wrk") is null)
        {
            throw new InvalidOperationException("wrk could not be installed; install it with: apt-get install wrk");
        }
    }

    /// <summary>Runs wrk; <paramref name="delayMs"/> &gt; 0 paces each connection (a Lua delay between its requests).</summary>
    public static async Task<WrkResult> RunAsync(Uri url, int connections, TimeSpan duration, IEnumerable<(string Name, string Value)> headers, int delayMs = 0, int threads = 1)
    {
        var args = new List<string>
        {
            "-t", threads.ToString(CultureInfo.InvariantCulture),
            "-c", connections.ToString(CultureInfo.InvariantCulture),
            "-d", ((int)duration.TotalSeconds).ToString(CultureInfo.InvariantCulture) + "s",
            "--latency",
        };
        foreach (var (name, value) in headers)
        {
            args.Add("-H");
            args.Add($"{name}: {value}");
        }

        string? script = null;
        // Counts non-2xx responses (wrk prints only non-2xx/3xx) and, when asked, paces each connection.
        script = Path.Combine(Path.GetTempPath(), $"wrk-{Guid.NewGuid():N}.lua");
        await File.WriteAllTextAsync(script, delayMs > 0 ? $"function delay() return {delayMs} end\n" : "-- unpaced\n");
        args.Add("-s");
        args.Add(script);
        args.Add(url.ToString());
        try
        {
            var output = await RunAsync("wrk", args);
            return Parse(output);
        }
        finally
        {
            File.Delete(script);
        }
    }

    /// <summary>
    /// One wrk run with one paced connection per tenant (each its own thread and bearer token), so
    /// the percentiles are over all the tenants' requests together rather than averaged per tenant.
    /// </summary>
    public static async Task<WrkResult> RunTenantsAsync(Uri url, IReadOnlyList<string> tokens, TimeSpan duration, int delayMs)
    {
        var script = Path.Combine(Path.GetTempPath(), $"wrk-{Guid.NewGuid():N}.lua");
        var list = string.Join(", ", tokens.Select(t => "\"" + t + "\""));
        await File.WriteAllTextAsync(script, $$"""
            local tokens = { {{list}} }
            local n = 0
            function setup(thread)
              n = n + 1
              thread:set("token", tokens[n])
            end
            function init(args)
              wrk.headers["Authorization"] = "Bearer " .. token
            end
            function delay() return {{delayMs}} end
            function done(summary, latency, requests)
              local q = {}
              for i = 0, 999 do q[#q + 1] = string.format("%d", latency:percentile((i + 0.5) / 10)) end
              io.write("quantiles-us " .. table.concat(q, ",") .. "\n")
            end
            """);
        try
        {
            var count = tokens.Count.ToString(CultureInfo.InvariantCulture);
            var output = await RunAsync("wrk",
            [
                "-t", count, "-c", count, "-d", ((int)duration.TotalSeconds).ToString(CultureInfo.InvariantCulture) + "s", "--latency", "-s", script, url.ToString(),
            ]);
            var quantiles = QuantilesLine().Match(output).Groups[1].Value.Split(',')
                .Select(v => double.Parse(v, CultureInfo.InvariantCulture) / 1000).ToArray();
            return Parse(output) with { QuantilesMs = quantiles };
        }
        finally
        {
            File.Delete(script);
        }
    }

    internal static WrkResult Parse(string output)
    {
        var rps = double.Parse(RequestsPerSecondLine().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
        var requests = long.Parse(RequestsLine().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
        var non2xx = NonSuccessLine().Match(output) is { Success: true } m ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        return new WrkResult(rps, Percentile(output, "50%"), Percentile(output, "99%"), requests, non2xx);
    }

    private static double Percentile(string output, string label)
    {
        var match = Regex.Match(output, @"^\s*" + Regex.Escape(label) + @"\s+([0-9.]+)(us|ms|s)\s*$", RegexOptions.Multiline);
        if (!match.Success)
        {
            throw new FormatException($"wrk printed no {label} latency:\n{output}");
        }

        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        return match.Groups[2].Value switch
        {
            "us" => value / 1000,
            "s" => value * 1000,
            _ => value,
        };
    }

    private static async Task<string> RunAsync(string file, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} exited with {process.ExitCode}: {await stderr}");
        }

        return await stdout;
    }

    private static void Run(string file, params string[] args) => RunAsync(file, args).GetAwaiter().GetResult();

    private static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex RequestsPerSecondLine();

    [GeneratedRegex(@"([0-9]+) requests in")]
    private static partial Regex RequestsLine();

    [GeneratedRegex(@"^quantiles-us ([0-9,]+)$", RegexOptions.Multiline)]
    private static partial Regex QuantilesLine();

    [GeneratedRegex(@"Non-2xx or 3xx responses:\s+([0-9]+)")]
    private static partial Regex NonSuccessLine();
}
