using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Tenantry.Benchmarks;

/// <summary>The markdown the <c>onboarding</c> benchmark prints.</summary>
internal static class OnboardingReport
{
    public const double GoalP99Ms = 50;

    /// <summary>CPU of other processes during a run above which its figures are flagged as disturbed.</summary>
    private const double NoisyCores = 0.25;

    private const string Queued = "queued (created → first step started)";
    private const string Between = "between steps (5 gaps)";
    private const string Finalize = "finalize (last step finished → operation finished)";

    public static string Markdown(OnboardingOptions options, string hostConfiguration, RunResult? baseline, RunResult main)
    {
        var md = new StringBuilder();
        var hostOptions = options.HostArgs.Count == 0 ? "host defaults" : "host args `" + string.Join(' ', options.HostArgs) + "`";
        md.AppendLine(CultureInfo.InvariantCulture, $"## Onboarding: {main.Tenants} basic (pool) tenants, concurrency {main.Concurrency}");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Reproduce from the repository root: `{options.Command()}`");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Real host (Tenantry.Host.dll, {hostConfiguration}) as a child process on 127.0.0.1, embedded default (SQLite, local folders), {hostOptions}; " +
            $"a fresh host and data directory per run, {options.Warmup} unmeasured warm-up tenants first (at the run's concurrency). " +
            $"{Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription.Trim()}, {RuntimeInformation.FrameworkDescription}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.");
        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Latencies in ms, POST to active. **server** = the onboarding operation's `finishedAt` − the tenant's `createdAt` (API timestamps); " +
            $"**client** = from sending `POST /v1/tenants` until `GET /v1/operations/{{id}}`, {(options.PollMs == 0 ? "long-polled with ?wait=10 (the host answers when it finishes)," : $"polled every {options.PollMs} ms,")} first answers `succeeded` " +
            $"(the tenant turns `active` in that same transaction). tenants/s = tenants / wall time from the first POST to the last tenant seen active.");
        md.AppendLine();
        md.AppendLine("| run | tenants | concurrency | wall (s) | tenants/s | server p50 | server p95 | server p99 | server max | client p50 | client p95 | client p99 | client max |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var run in Runs(baseline, main))
        {
            var b = run.Batch;
            var s = b.Server;
            var c = b.Client;
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {Name(run)} | {b.Samples.Count} | {run.Concurrency} | {Format.Number(b.WallSeconds, "0.00")} | {Format.Number(b.TenantsPerSecond, "0.0")} | " +
                $"{Format.Ms(s.P50)} | {Format.Ms(s.P95)} | {Format.Ms(s.P99)} | {Format.Ms(s.Max)} | " +
                $"{Format.Ms(c.P50)} | {Format.Ms(c.P95)} | {Format.Ms(c.P99)} | {Format.Ms(c.Max)} |");
        }

        md.AppendLine();
        md.AppendLine("| main p99 against | server | client |");
        md.AppendLine("|---|---:|---:|");
        md.AppendLine(CultureInfo.InvariantCulture,
            $"| the {GoalP99Ms:0} ms goal (p99 / {GoalP99Ms:0} ms) | {Format.Ratio(main.Batch.Server.P99 / GoalP99Ms)} | {Format.Ratio(main.Batch.Client.P99 / GoalP99Ms)} |");
        if (baseline is not null)
        {
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| the one-at-a-time p50 (p99 / baseline p50: {Format.Ms(baseline.Batch.Server.P50)} server, {Format.Ms(baseline.Batch.Client.P50)} client) | " +
                $"{Format.Ratio(main.Batch.Server.P99 / baseline.Batch.Server.P50)} | {Format.Ratio(main.Batch.Client.P99 / baseline.Batch.Client.P50)} |");
        }

        md.AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"| run | POST p50 | POST p99 | polls per tenant | host CPU (cores; in kernel) | benchmark CPU (cores) | other processes' CPU (cores, of {Environment.ProcessorCount}) | listed active | failed | host warn / error lines |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var run in Runs(baseline, main))
        {
            var b = run.Batch;
            var polls = b.Samples.Count == 0 ? double.NaN : b.Samples.Average(x => x.Polls);
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {Name(run)} | {Format.Ms(b.Post.P50)} | {Format.Ms(b.Post.P99)} | {Format.Number(polls, "0.0")} | " +
                $"{Format.Number(run.HostCores, "0.00")} ({Format.Number(run.HostKernelCores, "0.00")}) | {Format.Number(run.ClientCores, "0.00")} | {Format.Number(Math.Max(0, run.MachineCores - run.HostCores - run.ClientCores), "0.00")} | " +
                $"{run.VerifiedActive} / {b.Samples.Count} | " +
                $"{b.Failures.Count} | {run.HostWarnings} / {run.HostErrors} |");
        }

        foreach (var run in Runs(baseline, main))
        {
            var others = run.MachineCores - run.HostCores - run.ClientCores;
            if (others > NoisyCores)
            {
                md.AppendLine();
                md.AppendLine(CultureInfo.InvariantCulture,
                    $"**Disturbed:** other processes kept {Format.Number(others, "0.00")} of {Environment.ProcessorCount} cores busy during the {run.Label} run; its figures are not clean. Run again on a quiet machine.");
            }
        }

        md.AppendLine();
        md.AppendLine("### Where the time goes (server, from each operation's step timestamps, ms)");
        md.AppendLine();
        md.AppendLine("The host takes these timestamps inside its write transactions, before they commit, so a step's time (`startedAt` → `finishedAt`) " +
            "holds the step's own work plus a commit and a wait for the store's single write lock. Where the worker records a step's finish in the " +
            "transaction that starts the next step (one commit per step), 'between steps' is about 0 (slightly negative: both times come from one transaction).");
        md.AppendLine();
        var mainPhases = Phases(main.Batch);
        var basePhases = baseline is null ? null : Phases(baseline.Batch);
        var mainTotal = main.Batch.Server.Mean;
        md.AppendLine("| phase | baseline mean | baseline p99 | main mean | main p50 | main p99 | main share |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var (phase, values) in mainPhases)
        {
            var m = Distribution.Of(values);
            var bd = basePhases is not null && basePhases.TryGetValue(phase, out var bv) ? Distribution.Of(bv) : Distribution.Empty;
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {phase} | {Format.Ms(bd.Mean)} | {Format.Ms(bd.P99)} | {Format.Ms(m.Mean)} | {Format.Ms(m.P50)} | {Format.Ms(m.P99)} | {Format.Percent(100 * m.Mean / mainTotal)} |");
        }

        var baseServer = baseline?.Batch.Server ?? Distribution.Empty;
        md.AppendLine(CultureInfo.InvariantCulture,
            $"| **server total** | {Format.Ms(baseServer.Mean)} | {Format.Ms(baseServer.P99)} | {Format.Ms(mainTotal)} | {Format.Ms(main.Batch.Server.P50)} | {Format.Ms(main.Batch.Server.P99)} | 100.0 % |");
        var mainOutside = Distribution.Of(main.Batch.Samples.Select(s => s.ClientMs - s.ServerMs));
        var baseOutside = baseline is null ? Distribution.Empty : Distribution.Of(baseline.Batch.Samples.Select(s => s.ClientMs - s.ServerMs));
        md.AppendLine(CultureInfo.InvariantCulture,
            $"| client − server (POST before `createdAt`, its commit and response, poll lag) | {Format.Ms(baseOutside.Mean)} | {Format.Ms(baseOutside.P99)} | " +
            $"{Format.Ms(mainOutside.Mean)} | {Format.Ms(mainOutside.P50)} | {Format.Ms(mainOutside.P99)} | |");

        foreach (var run in Runs(baseline, main))
        {
            if (run.Batch.Failures.Count > 0)
            {
                md.AppendLine();
                md.AppendLine(CultureInfo.InvariantCulture, $"Failures in the {run.Label} run (first {Math.Min(10, run.Batch.Failures.Count)}):");
                foreach (var failure in run.Batch.Failures.Take(10))
                {
                    md.AppendLine(CultureInfo.InvariantCulture, $"- {failure}");
                }
            }

            if (run.HostTail is not null)
            {
                md.AppendLine();
                md.AppendLine(CultureInfo.InvariantCulture, $"Last host output of the {run.Label} run:");
                md.AppendLine("```");
                md.AppendLine(run.HostTail);
                md.AppendLine("```");
            }
        }

        return md.ToString();
    }

    /// <summary>One line per measured tenant: when it was sent (ms from its run's start), its times, polls and phases.</summary>
    public static string Csv(RunResult? baseline, RunResult main)
    {
        var csv = new StringBuilder();
        var phaseNames = Phases(main.Batch).Keys.ToList();
        csv.AppendLine("run,index,tenant_id,sent_ms,post_ms,client_ms,server_ms,polls," + string.Join(',', phaseNames.Select(n => "\"" + n + "\"")));
        foreach (var run in Runs(baseline, main))
        {
            foreach (var sample in run.Batch.Samples.OrderBy(x => x.Index))
            {
                var phases = Phases(run.Batch with { Samples = [sample] });
                csv.Append(CultureInfo.InvariantCulture, $"{run.Label},{sample.Index},{sample.TenantId},");
                csv.Append(CultureInfo.InvariantCulture, $"{Stopwatch.GetElapsedTime(run.Batch.Started, sample.PostSent).TotalMilliseconds:0.###},");
                csv.Append(CultureInfo.InvariantCulture, $"{sample.PostMs:0.###},{sample.ClientMs:0.###},{sample.ServerMs:0.###},{sample.Polls}");
                foreach (var name in phaseNames)
                {
                    csv.Append(',');
                    if (phases.TryGetValue(name, out var values) && values.Count == 1)
                    {
                        csv.Append(values[0].ToString("0.###", CultureInfo.InvariantCulture));
                    }
                }

                csv.AppendLine();
            }
        }

        return csv.ToString();
    }

    /// <summary>Per phase of onboarding, its duration in each operation, in the order they happen.</summary>
    public static Dictionary<string, List<double>> Phases(Batch batch)
    {
        var phases = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        void Add(string phase, DateTimeOffset? from, DateTimeOffset? to)
        {
            if (from is { } f && to is { } t)
            {
                if (!phases.TryGetValue(phase, out var list))
                {
                    phases[phase] = list = [];
                }

                list.Add((t - f).TotalMilliseconds);
            }
        }

        foreach (var sample in batch.Samples)
        {
            var op = sample.Operation;
            if (op.Steps.Count == 0)
            {
                continue;
            }

            Add(Queued, sample.CreatedAt, op.Steps[0].StartedAt);
            foreach (var step in op.Steps)
            {
                Add(step.Name, step.StartedAt, step.FinishedAt);
            }

            var gaps = 0.0;
            for (var i = 1; i < op.Steps.Count; i++)
            {
                if (op.Steps[i].StartedAt is { } next && op.Steps[i - 1].FinishedAt is { } previous)
                {
                    gaps += (next - previous).TotalMilliseconds;
                }
            }

            Add(Between, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddMilliseconds(gaps));
            Add(Finalize, op.Steps[^1].FinishedAt, op.FinishedAt);
        }

        // Keep the order of onboarding: queued, the steps, the gaps between them, finalize.
        var ordered = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        foreach (var key in phases.Keys.Where(k => k == Queued)
            .Concat(phases.Keys.Where(k => k is not (Queued or Between or Finalize)))
            .Concat(phases.Keys.Where(k => k is Between or Finalize)))
        {
            ordered[key] = phases[key];
        }

        return ordered;
    }

    private static IEnumerable<RunResult> Runs(RunResult? baseline, RunResult main) =>
        baseline is null ? [main] : [baseline, main];

    private static string Name(RunResult run) => run.Label == "baseline" ? "baseline (one at a time)" : "main";
}
