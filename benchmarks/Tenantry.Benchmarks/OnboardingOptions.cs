using System.Globalization;
using System.Text;

namespace Tenantry.Benchmarks;

/// <summary>Options of the <c>onboarding</c> benchmark. Every count and time is bounded.</summary>
internal sealed class OnboardingOptions
{
    public const string Help = """
        onboarding: onboarding latency and throughput of basic (pool) tenants on the embedded default.

        Two runs, each against a fresh host and data directory, each after --warmup unmeasured tenants:
          1. baseline  --baseline-tenants tenants created one at a time (concurrency 1): the floor of one
                       onboarding with no contention;
          2. main      --tenants tenants created by --concurrency workers.
        For every tenant, time from POST /v1/tenants to active, two ways:
          server  the onboarding operation's finishedAt minus the tenant's createdAt (both from the API);
          client  from sending the POST until GET /v1/operations/{id} (long-poll ?wait=10, or polled every --poll-ms) first
                  answers 'succeeded' (the tenant turns active in the same transaction).
        Reports tenants/second, p50/p95/p99/max of both, the main p99 against the 50 ms goal and against the
        baseline p50, and where the time goes, from the per-step timestamps of each operation.

        Usage: dotnet run -c Release --project benchmarks/Tenantry.Benchmarks -- onboarding [options]

        Options:
          --tenants <n>            tenants in the main run (default 1000, 1-100000)
          --concurrency <n>        tenants in flight at once in the main run (default 8, 1-256)
          --baseline-tenants <n>   tenants in the one-at-a-time baseline run (default 200, 0-100000; 0 skips it)
          --warmup <n>             unmeasured tenants onboarded before each run, at its concurrency, so the host's
                                   JIT has tiered up (default 200, 0-10000)
          --poll-ms <n>            0: long-poll GET /v1/operations/{id}?wait=10 (default); n: poll every n ms (1-1000)
          --timeout-seconds <n>    longest one tenant may take to turn active (default 120, 1-3600)
          --max-minutes <n>        longest the whole benchmark may run (default 30, 1-240)
          --host-arg <arg>         passed to the host as is; repeatable (e.g. --host-arg --Tenantry:Operations:MaxParallel=8)
          --csv <path>             also write one line per measured tenant (times, polls, phases) to this CSV file
          --keep-data              keep the hosts' temporary data directories (their paths are printed)
          --allow-debug            run even when this program or the host was built in Debug
          -h, --help               this text
        """;

    public int Tenants { get; private set; } = 1000;

    public int Concurrency { get; private set; } = 8;

    public int BaselineTenants { get; private set; } = 200;

    public int Warmup { get; private set; } = 200;

    public int PollMs { get; private set; }

    public int TimeoutSeconds { get; private set; } = 120;

    public int MaxMinutes { get; private set; } = 30;

    public List<string> HostArgs { get; } = [];

    public string? CsvPath { get; private set; }

    public bool KeepData { get; private set; }

    public bool AllowDebug { get; private set; }

    public bool ShowHelp { get; private set; }

    /// <summary>Parses <paramref name="args"/>; on a mistake returns null and says why in <paramref name="error"/>.</summary>
    public static OnboardingOptions? Parse(IReadOnlyList<string> args, out string? error)
    {
        var o = new OnboardingOptions();
        error = null;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            var (name, inline) = arg.IndexOf('=', StringComparison.Ordinal) is var eq and > 0 && arg.StartsWith("--", StringComparison.Ordinal)
                ? (arg[..eq], arg[(eq + 1)..])
                : (arg, null);
            string? Value()
            {
                if (inline is not null)
                {
                    return inline;
                }

                return i + 1 < args.Count ? args[++i] : null;
            }

            int? Number(int min, int max)
            {
                var text = Value();
                if (text is null || !int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n < min || n > max)
                {
                    return null;
                }

                return n;
            }

            int? parsed;
            switch (name)
            {
                case "-h" or "--help" or "-?":
                    o.ShowHelp = true;
                    break;
                case "--tenants":
                    if ((parsed = Number(1, 100_000)) is null)
                    {
                        error = "--tenants is a whole number from 1 to 100000.";
                        return null;
                    }

                    o.Tenants = parsed.Value;
                    break;
                case "--concurrency":
                    if ((parsed = Number(1, 256)) is null)
                    {
                        error = "--concurrency is a whole number from 1 to 256.";
                        return null;
                    }

                    o.Concurrency = parsed.Value;
                    break;
                case "--baseline-tenants":
                    if ((parsed = Number(0, 100_000)) is null)
                    {
                        error = "--baseline-tenants is a whole number from 0 to 100000.";
                        return null;
                    }

                    o.BaselineTenants = parsed.Value;
                    break;
                case "--warmup":
                    if ((parsed = Number(0, 10_000)) is null)
                    {
                        error = "--warmup is a whole number from 0 to 10000.";
                        return null;
                    }

                    o.Warmup = parsed.Value;
                    break;
                case "--poll-ms":
                    if ((parsed = Number(0, 1000)) is null)
                    {
                        error = "--poll-ms is a whole number from 0 to 1000.";
                        return null;
                    }

                    o.PollMs = parsed.Value;
                    break;
                case "--timeout-seconds":
                    if ((parsed = Number(1, 3600)) is null)
                    {
                        error = "--timeout-seconds is a whole number from 1 to 3600.";
                        return null;
                    }

                    o.TimeoutSeconds = parsed.Value;
                    break;
                case "--max-minutes":
                    if ((parsed = Number(1, 240)) is null)
                    {
                        error = "--max-minutes is a whole number from 1 to 240.";
                        return null;
                    }

                    o.MaxMinutes = parsed.Value;
                    break;
                case "--host-arg":
                    var hostArg = Value();
                    if (string.IsNullOrEmpty(hostArg))
                    {
                        error = "--host-arg needs a value, e.g. --host-arg --Tenantry:Operations:MaxParallel=8.";
                        return null;
                    }

                    if (hostArg is "--port" or "--data-dir" or "--operator-secret"
                        || hostArg.StartsWith("--port=", StringComparison.Ordinal)
                        || hostArg.StartsWith("--data-dir=", StringComparison.Ordinal)
                        || hostArg.StartsWith("--operator-secret=", StringComparison.Ordinal))
                    {
                        error = $"--host-arg {hostArg}: the benchmark sets the host's port, data directory and operator secret itself.";
                        return null;
                    }

                    o.HostArgs.Add(hostArg);
                    break;
                case "--csv":
                    var csv = Value();
                    if (string.IsNullOrWhiteSpace(csv))
                    {
                        error = "--csv needs a file path.";
                        return null;
                    }

                    o.CsvPath = csv;
                    break;
                case "--keep-data":
                    o.KeepData = true;
                    break;
                case "--allow-debug":
                    o.AllowDebug = true;
                    break;
                default:
                    error = $"Unknown option '{arg}'.";
                    return null;
            }
        }

        return o;
    }

    /// <summary>The command that runs this benchmark again with these options, from the repository root.</summary>
    public string Command()
    {
        var command = new StringBuilder("dotnet run -c Release --project benchmarks/Tenantry.Benchmarks -- onboarding");
        command.Append(CultureInfo.InvariantCulture, $" --tenants {Tenants} --concurrency {Concurrency} --baseline-tenants {BaselineTenants}");
        if (Warmup != 200)
        {
            command.Append(CultureInfo.InvariantCulture, $" --warmup {Warmup}");
        }

        if (PollMs != 0)
        {
            command.Append(CultureInfo.InvariantCulture, $" --poll-ms {PollMs}");
        }

        if (TimeoutSeconds != 120)
        {
            command.Append(CultureInfo.InvariantCulture, $" --timeout-seconds {TimeoutSeconds}");
        }

        if (MaxMinutes != 30)
        {
            command.Append(CultureInfo.InvariantCulture, $" --max-minutes {MaxMinutes}");
        }

        foreach (var hostArg in HostArgs)
        {
            command.Append(" --host-arg ").Append(hostArg);
        }

        return command.ToString();
    }
}
