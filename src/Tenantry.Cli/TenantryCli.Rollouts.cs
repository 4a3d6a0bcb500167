using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace Tenantry.Cli;

/// <summary><c>tenantry rollouts</c>: roll a release out to every tenant in gated waves, follow it, pause, resume or abort it.</summary>
internal static partial class TenantryCli
{
    private static Command RolloutsCommand()
    {
        var rollouts = new Command("rollouts", "Release rollouts: migrations, then the shared instances, then the dedicated instances wave by wave, each wave baked against its gates.");

        var app = new Argument<string>("app") { Description = "app name" };
        var version = new Argument<string>("version") { Description = "the release to roll out" };
        var waves = new Option<string[]>("--wave")
        {
            Description = "a wave, in order (repeat): a percent of the silo tenants left (25 or 25%), or canary tenant ids separated by commas; the last wave takes the rest (default: one wave of 100%)",
        };
        var bake = new Option<int?>("--bake") { Description = "seconds each wave bakes while its gates are checked (default 30)" };
        var maxErrorRate = new Option<double?>("--max-error-rate") { Description = "gate: the highest share of 5xx among a wave's requests, 0-1 (default 0.05)" };
        var maxP99 = new Option<double?>("--max-p99") { Description = "gate: the highest p99 latency of a wave's requests, in ms (default: not checked)" };
        var follow = new Option<bool>("--watch") { Description = "follow it until it ends (exit code 7 when it fails or is rolled back)" };
        var start = new Command("start", "Start a rollout.") { app, version, waves, bake, maxErrorRate, maxP99, follow };
        start.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var body = new Dictionary<string, object?>
            {
                ["app"] = parse.GetValue(app),
                ["version"] = parse.GetValue(version),
                ["waves"] = (parse.GetValue(waves) ?? []).Select(ParseWave).ToList(),
                ["bakeSeconds"] = parse.GetValue(bake),
            };
            if (parse.GetValue(maxErrorRate) is not null || parse.GetValue(maxP99) is not null)
            {
                body["gates"] = new Dictionary<string, object?> { ["maxErrorRate"] = parse.GetValue(maxErrorRate), ["maxP99Ms"] = parse.GetValue(maxP99) };
            }

            var accepted = await api.SendAsync(HttpMethod.Post, "/v1/rollouts", body, null, ct);
            if (parse.GetValue(follow))
            {
                return await WatchRolloutAsync(ctx, api, accepted.Str("id"), ct);
            }

            if (ctx.IsJson)
            {
                ctx.Json(accepted);
            }
            else
            {
                ctx.Out.WriteLine(accepted.Str("id"));
                ctx.Err.WriteLine($"Rollout started; follow it with: tenantry rollouts watch {accepted.Str("id")}");
            }

            return ExitCodes.Ok;
        }));
        rollouts.Subcommands.Add(start);

        var id = new Argument<string>("id") { Description = "rollout id" };
        var watch = new Command("watch", "Follow a rollout until it ends: a progress bar per wave; exit code 7 when it failed or was rolled back.") { id };
        watch.SetAction((parse, ct) => Run(parse, true, (ctx, api) => WatchRolloutAsync(ctx, api, parse.GetValue(id)!, ct)));
        rollouts.Subcommands.Add(watch);

        var get = new Command("get", "A rollout: its waves, each tenant's status and release, and the gate figures.") { id };
        get.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var rollout = await api.GetAsync("/v1/rollouts/" + Escape(parse.GetValue(id)!), ct);
            if (ctx.IsJson)
            {
                ctx.Json(rollout);
            }
            else
            {
                PrintRollout(ctx, rollout);
            }

            return ExitCodes.Ok;
        }));
        rollouts.Subcommands.Add(get);

        foreach (var (name, help) in new[] { ("pause", "Pause before the next instance or wave."), ("resume", "Resume a paused rollout."), ("abort", "Stop and put every instance that moved back on the previous release.") })
        {
            var control = new Command(name, help) { id };
            control.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
            {
                var result = await api.SendAsync(HttpMethod.Post, "/v1/rollouts/" + Escape(parse.GetValue(id)!) + "/" + name, null, null, ct);
                if (ctx.IsJson)
                {
                    ctx.Json(result);
                }
                else
                {
                    ctx.Out.WriteLine($"{result.Str("id")} {result.Str("status")}");
                }

                return ExitCodes.Ok;
            }));
            rollouts.Subcommands.Add(control);
        }

        var appFilter = new Option<string?>("--app") { Description = "only this app's rollouts" };
        var limit = new Option<int>("--limit") { Description = "rollouts per page (1-200)", DefaultValueFactory = _ => 50 };
        var list = new Command("list", "Rollouts, newest first.") { appFilter, limit };
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var page = await api.GetAsync("/v1/rollouts" + Query(("app", parse.GetValue(appFilter)), ("limit", parse.GetValue(limit).ToString(CultureInfo.InvariantCulture))), ct);
            if (ctx.IsJson)
            {
                ctx.Json(page);
                return ExitCodes.Ok;
            }

            ctx.Table(["ID", "APP", "VERSION", "FROM", "STATUS", "WAVES", "CREATED"], page.GetProperty("items").EnumerateArray().Select(r => (IReadOnlyList<string>)
                [r.Str("id"), r.Str("app"), r.Str("version"), r.Str("previousRelease"), r.Str("status"),
                 $"{r.GetProperty("waves").EnumerateArray().Count(w => w.Str("status") == "succeeded")}/{r.GetProperty("waves").GetArrayLength()}",
                 Output.Time(r.Str("createdAt"))]));
            return ExitCodes.Ok;
        }));
        rollouts.Subcommands.Add(list);
        return rollouts;
    }

    /// <summary>A <c>--wave</c>: <c>25</c> or <c>25%</c>, or tenant ids separated by commas.</summary>
    private static Dictionary<string, object> ParseWave(string text)
    {
        var trimmed = text.Trim().TrimEnd('%');
        if (int.TryParse(trimmed, NumberStyles.None, CultureInfo.InvariantCulture, out var percent))
        {
            return new() { ["percent"] = percent };
        }

        var ids = new List<Guid>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            ids.Add(Guid.TryParse(part, out var g) ? g : throw new CliException(ExitCodes.Usage, $"--wave '{text}': '{part}' is neither a percent nor a tenant id."));
        }

        return ids.Count > 0 ? new() { ["tenants"] = ids } : throw new CliException(ExitCodes.Usage, "--wave is a percent or tenant ids separated by commas.");
    }

    /// <summary>Polls the rollout until it ends: a line per change (a redrawn line on a terminal); 7 when it failed or was rolled back.</summary>
    private static async Task<int> WatchRolloutAsync(Output ctx, ApiClient api, string id, CancellationToken ct)
    {
        var interactive = !ctx.IsJson && !Console.IsOutputRedirected && ReferenceEquals(ctx.Out, Console.Out);
        var last = "";
        var deadline = DateTime.UtcNow.AddHours(6);
        JsonElement rollout;
        while (true)
        {
            rollout = await api.GetAsync("/v1/rollouts/" + Escape(id), ct);
            var status = rollout.Str("status");
            var targets = rollout.GetProperty("waves").EnumerateArray()
                .SelectMany(w => w.GetProperty("tenants").EnumerateArray().Concat(w.TryGetProperty("shared", out var s) && s.ValueKind == JsonValueKind.Array ? s.EnumerateArray() : [])).ToList();
            var done = targets.Count(t => t.Str("status") is "updated" or "rolled-back");
            var wave = rollout.GetProperty("waves").EnumerateArray().FirstOrDefault(w => w.Str("status") is "updating" or "baking" or "failed");
            var at = wave.ValueKind == JsonValueKind.Object ? $"wave {wave.Str("index")} {wave.Str("status")}" : rollout.Str("phase");
            var width = 24;
            var filled = targets.Count == 0 ? 0 : done * width / targets.Count;
            var line = $"{rollout.Str("app")} {rollout.Str("previousRelease")} -> {rollout.Str("version")} [{new string('#', filled)}{new string('-', width - filled)}] {done}/{targets.Count} {at} [{status}]";
            if (!ctx.IsJson && line != last)
            {
                if (interactive)
                {
                    ctx.Out.Write("\r" + line.PadRight(Math.Max(last.Length, line.Length)));
                }
                else
                {
                    ctx.Out.WriteLine(line);
                }

                last = line;
            }

            if (status is not ("running" or "paused") || DateTime.UtcNow > deadline)
            {
                break;
            }

            await Task.Delay(TimeSpan.FromSeconds(1), ct);
        }

        if (interactive)
        {
            ctx.Out.WriteLine();
        }

        if (ctx.IsJson)
        {
            ctx.Json(rollout);
        }

        switch (rollout.Str("status"))
        {
            case "succeeded":
                return ExitCodes.Ok;
            case "failed" or "rolled-back":
                await ctx.Err.WriteLineAsync($"error: rollout {rollout.Str("id")} {rollout.Str("status")}: {rollout.Str("error")}");
                return ExitCodes.OperationFailed;
            default:
                return ExitCodes.Failure;
        }
    }

    private static void PrintRollout(Output ctx, JsonElement rollout)
    {
        ctx.Out.WriteLine($"{rollout.Str("app")} {rollout.Str("previousRelease")} -> {rollout.Str("version")}: {rollout.Str("status")} ({rollout.Str("phase")})");
        if (rollout.Str("error") is { Length: > 0 } error)
        {
            ctx.Out.WriteLine("error: " + error);
        }

        var rows = new List<IReadOnlyList<string>>();
        foreach (var wave in rollout.GetProperty("waves").EnumerateArray())
        {
            var gates = wave.TryGetProperty("gates", out var g) && g.ValueKind == JsonValueKind.Object
                ? string.Create(CultureInfo.InvariantCulture, $"{g.Str("requests")} req, 5xx {g.GetProperty("errorRate").GetDouble() * 100:0.##} %, p99 {g.Str("p99Ms")} ms{(g.GetProperty("passed").GetBoolean() ? "" : " FAILED")}")
                : "";
            var members = wave.GetProperty("tenants").EnumerateArray().ToList();
            if (wave.TryGetProperty("shared", out var shared) && shared.ValueKind == JsonValueKind.Array)
            {
                members.InsertRange(0, shared.EnumerateArray());
            }

            foreach (var t in members)
            {
                rows.Add([wave.Str("index"), wave.Str("status"), t.Str("slug") is { Length: > 0 } slug ? slug : "shared-" + t.Str("slot"), t.Str("status"), t.Str("release"), gates]);
                gates = "";
            }
        }

        ctx.Table(["WAVE", "WAVE STATUS", "TARGET", "STATUS", "RELEASE", "GATES"], rows);
    }
}
