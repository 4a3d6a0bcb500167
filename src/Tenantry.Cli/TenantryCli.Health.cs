using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Tenantry.Cli;

/// <summary><c>tenantry health</c>: a tenant's requests, errors, 429s and latency, and the fleet's worst tenants now.</summary>
internal static partial class TenantryCli
{
    private static Command HealthCommand()
    {
        var tenant = new Argument<string>("tenant") { Description = "tenant id or slug (a tenant whose slug is 'worst': give its id)" };
        var range = new Option<string?>("--range") { Description = "how far back from now: 1h (default), 6h, 24h, 7d … (or --from)" };
        var from = new Option<string?>("--from") { Description = "start (ISO 8601)" };
        var to = new Option<string?>("--to") { Description = "end (ISO 8601; default now)" };
        var step = new Option<string?>("--step") { Description = "one row per step: 1m, 5m, 1h, 1d (default: about 60-700 rows)" };
        var all = new Option<bool>("--all") { Description = "print steps without traffic too" };
        var health = new Command("health", "A tenant's requests, 4xx, 5xx, 429s and p50/p95/p99 latency per step, as the gateways recorded them.") { tenant, range, from, to, step, all };
        health.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var end = parse.GetValue(to);
            var start = parse.GetValue(from);
            if (start is null)
            {
                var back = Span(parse.GetValue(range) ?? "1h");
                var until = end is null ? DateTimeOffset.UtcNow
                    : DateTimeOffset.TryParse(end, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) ? parsed
                    : throw new CliException(ExitCodes.Usage, $"--to '{end}' is not an ISO 8601 time.");
                start = (until - back).UtcDateTime.ToString("O", CultureInfo.InvariantCulture);
            }
            else if (parse.GetValue(range) is not null)
            {
                throw new CliException(ExitCodes.Usage, "Give --range or --from, not both.");
            }

            var series = await api.GetAsync(
                "/v1/tenants/" + Escape(parse.GetValue(tenant)!) + "/health" + Query(("from", start), ("to", end), ("step", parse.GetValue(step))), ct);
            if (ctx.IsJson)
            {
                ctx.Json(series);
                return ExitCodes.Ok;
            }

            var items = series.GetProperty("items").EnumerateArray().ToList();
            var shown = parse.GetValue(all) ? items : [.. items.Where(p => p.GetProperty("requests").GetInt64() > 0)];
            ctx.Table(["AT", "REQUESTS", "4XX", "5XX", "429", "P50 MS", "P95 MS", "P99 MS"], shown.Select(p => (IReadOnlyList<string>)
                [Output.Time(p.Str("at")), p.Str("requests"), p.Str("status4xx"), p.Str("status5xx"), p.Str("throttled"), p.Str("p50Ms"), p.Str("p95Ms"), p.Str("p99Ms")]));
            long Total(string field) => items.Sum(p => p.GetProperty(field).GetInt64());
            var requests = Total("requests");
            ctx.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Output.Time(series.Str("from"))} to {Output.Time(series.Str("to"))} UTC, step {series.Str("step")}: {requests} requests, {Total("status4xx")} 4xx, {Total("status5xx")} 5xx ({(requests == 0 ? 0 : 100.0 * Total("status5xx") / requests):0.##} %), {Total("throttled")} throttled."));
            return ExitCodes.Ok;
        }));

        var window = new Option<string?>("--window") { Description = "how far back: 1m to 24h (default 15m)" };
        var by = new Option<string?>("--by") { Description = "errorRate (5xx/requests, default), p99 or throttled (429s)" };
        var limit = new Option<int?>("--limit") { Description = "tenants (1-100, default 10)" };
        var worst = new Command("worst", "The worst tenants now, by error rate, p99 latency or throttling.") { window, by, limit };
        worst.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.GetAsync("/v1/health/worst" + Query(
                ("window", parse.GetValue(window)), ("by", parse.GetValue(by)), ("limit", parse.GetValue(limit)?.ToString(CultureInfo.InvariantCulture))), ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
                return ExitCodes.Ok;
            }

            ctx.Table(["TENANT", "TIER", "REQUESTS", "5XX", "ERROR RATE", "429", "P99 MS"], result.GetProperty("items").EnumerateArray().Select(t => (IReadOnlyList<string>)
                [t.Str("slug"), t.Str("tier"), t.Str("requests"), t.Str("status5xx"),
                 (t.GetProperty("errorRate").GetDouble() * 100).ToString("0.00", CultureInfo.InvariantCulture) + " %", t.Str("throttled"), t.Str("p99Ms")]));
            ctx.Err.WriteLine($"By {result.Str("by")} over the last {result.Str("window")}.");
            return ExitCodes.Ok;
        }));
        health.Subcommands.Add(worst);
        return health;
    }

    /// <summary>A --range: a number and s, m, h or d.</summary>
    private static TimeSpan Span(string text)
    {
        if (text.Length >= 2 && long.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 && n <= 400 * 24)
        {
            switch (text[^1])
            {
                case 'm': return TimeSpan.FromMinutes(n);
                case 'h': return TimeSpan.FromHours(n);
                case 'd': return TimeSpan.FromDays(n);
            }
        }

        throw new CliException(ExitCodes.Usage, $"--range '{text}' is a number and m, h or d: 30m, 6h, 7d.");
    }
}
