using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Tenantry.Testing;

namespace Tenantry.Benchmarks;

/// <summary>One tenant taken from POST /v1/tenants to active.</summary>
internal sealed record TenantSample(
    int Index,
    string TenantId,
    long PostSent,
    long ActiveSeen,
    double PostMs,
    double ClientMs,
    double ServerMs,
    int Polls,
    DateTimeOffset CreatedAt,
    OperationView Operation);

/// <summary>Tenants onboarded together at one concurrency.</summary>
internal sealed record Batch(IReadOnlyList<TenantSample> Samples, IReadOnlyList<string> Failures, int Attempted, long Started, double WallSeconds)
{
    public double TenantsPerSecond => WallSeconds > 0 ? Samples.Count / WallSeconds : double.NaN;

    public Distribution Server => Distribution.Of(Samples.Select(s => s.ServerMs));

    public Distribution Client => Distribution.Of(Samples.Select(s => s.ClientMs));

    public Distribution Post => Distribution.Of(Samples.Select(s => s.PostMs));
}

/// <summary>One measured run against its own host.</summary>
internal sealed record RunResult(
    string Label,
    int Tenants,
    int Concurrency,
    Batch Batch,
    int VerifiedActive,
    double HostCores,
    double HostKernelCores,
    double ClientCores,
    double MachineCores,
    int HostWarnings,
    int HostErrors,
    string? HostTail);

internal sealed class TenantFailedException(string message) : Exception(message);

/// <summary>The <c>onboarding</c> benchmark: see <see cref="OnboardingOptions.Help"/>.</summary>
internal static class OnboardingBenchmark
{
    /// <summary>A run stops handing out tenants after this many failures: the host is likely broken.</summary>
    private const int MaxFailures = 10;

    public static async Task<int> MainAsync(string[] args)
    {
        var options = OnboardingOptions.Parse(args, out var error);
        if (options is null)
        {
            await Console.Error.WriteLineAsync(error);
            await Console.Error.WriteLineAsync(OnboardingOptions.Help);
            return 2;
        }

        if (options.ShowHelp)
        {
            Console.WriteLine(OnboardingOptions.Help);
            return 0;
        }

        var selfConfiguration = BuildConfiguration();
        var hostConfiguration = TenantryHost.HostBuildConfiguration() ?? "unknown";
        if ((selfConfiguration != "Release" || hostConfiguration != "Release") && !options.AllowDebug)
        {
            await Console.Error.WriteLineAsync(
                $"This benchmark was built in {selfConfiguration} and the host in {hostConfiguration}; measure Release builds: " +
                "dotnet run -c Release --project benchmarks/Tenantry.Benchmarks -- onboarding (or pass --allow-debug).");
            return 2;
        }

        // Ctrl+C or SIGTERM stop the benchmark the orderly way, so the host it started is killed too.
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(options.MaxMinutes));
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }

        using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        try
        {
            RunResult? baseline = null;
            if (options.BaselineTenants > 0)
            {
                baseline = await RunAsync("baseline", "seq", options.BaselineTenants, 1, options, stop.Token);
            }

            var main = await RunAsync("main", "main", options.Tenants, options.Concurrency, options, stop.Token);
            Console.WriteLine(OnboardingReport.Markdown(options, hostConfiguration, baseline, main));
            if (options.CsvPath is not null)
            {
                await File.WriteAllTextAsync(options.CsvPath, OnboardingReport.Csv(baseline, main), CancellationToken.None);
                Progress($"per-tenant figures written to {Path.GetFullPath(options.CsvPath)}");
            }

            var failed = main.Batch.Failures.Count + (baseline?.Batch.Failures.Count ?? 0);
            var unverified = main.Batch.Samples.Count - main.VerifiedActive + (baseline is null ? 0 : baseline.Batch.Samples.Count - baseline.VerifiedActive);
            return failed == 0 && unverified == 0 ? 0 : 1;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync($"Stopped: interrupted, or past --max-minutes {options.MaxMinutes}. No figures.");
            return 1;
        }
        catch (Exception ex) when (ex is InvalidOperationException or HttpRequestException or TenantFailedException or TaskCanceledException)
        {
            await Console.Error.WriteLineAsync($"The benchmark could not run: {ex.Message}");
            return 3;
        }
    }

    private static async Task<RunResult> RunAsync(string label, string slugPrefix, int tenants, int concurrency, OnboardingOptions options, CancellationToken cancellationToken)
    {
        Progress($"[{label}] starting the host");
        using var host = await TenantryHost.StartAsync(new TenantryHostOptions { Settings = options.HostArgs, KeepDataDir = options.KeepData }, cancellationToken);
        Progress($"[{label}] host on {host.ControlPlane} with data directory {host.DataDir}");
        using var api = new TenantryApi(host.ControlPlane);
        await api.AuthenticateAsync(host.OperatorSecret, cancellationToken);

        if (options.Warmup > 0)
        {
            // At the run's own concurrency, so the host's JIT has tiered up the paths the run takes.
            Progress($"[{label}] warming up with {options.Warmup} tenants, {concurrency} at a time");
            var warmup = await OnboardManyAsync(api, $"{slugPrefix}-warm", options.Warmup, concurrency, options, cancellationToken);
            if (warmup.Failures.Count > 0)
            {
                throw new TenantFailedException($"Warm-up failed: {warmup.Failures[0]}\nHost output:\n{host.Tail(200)}");
            }
        }

        var warnings = host.Warnings;
        var errors = host.Errors;
        var hostCpu = host.CpuTime;
        var hostKernelCpu = host.KernelCpuTime;
        var selfCpu = Process.GetCurrentProcess().TotalProcessorTime;
        var machineCpu = MachineCpu.Read();
        Progress($"[{label}] onboarding {tenants} tenants, {concurrency} at a time");
        var batch = await OnboardManyAsync(api, slugPrefix, tenants, concurrency, options, cancellationToken);
        var hostCores = (host.CpuTime - hostCpu).TotalSeconds / batch.WallSeconds;
        var hostKernelCores = (host.KernelCpuTime - hostKernelCpu).TotalSeconds / batch.WallSeconds;
        var clientCores = (Process.GetCurrentProcess().TotalProcessorTime - selfCpu).TotalSeconds / batch.WallSeconds;
        var machineCores = MachineCpu.BusyCores(machineCpu, MachineCpu.Read());
        Progress($"[{label}] {batch.Samples.Count} active, {batch.Failures.Count} failed, {batch.WallSeconds:0.0} s");

        // Every measured tenant must be listed active by the API itself, not only its operation succeeded.
        var active = await api.TenantIdsAsync("active", maxPages: ((tenants + options.Warmup) / 200) + 5, cancellationToken);
        var verified = batch.Samples.Count(s => active.Contains(s.TenantId));
        var newWarnings = host.Warnings - warnings;
        var newErrors = host.Errors - errors;
        return new RunResult(
            label,
            tenants,
            concurrency,
            batch,
            verified,
            hostCores,
            hostKernelCores,
            clientCores,
            machineCores,
            newWarnings,
            newErrors,
            newWarnings + newErrors > 0 || batch.Failures.Count > 0 ? host.Tail(200) : null);
    }

    private static async Task<Batch> OnboardManyAsync(TenantryApi api, string slugPrefix, int count, int concurrency, OnboardingOptions options, CancellationToken cancellationToken)
    {
        var samples = new TenantSample?[count];
        var failures = new ConcurrentQueue<string>();
        var next = -1;
        var started = Stopwatch.GetTimestamp();
        var workers = Enumerable.Range(0, Math.Min(concurrency, count)).Select(_ => Task.Run(
            async () =>
            {
                int i;
                while (failures.Count < MaxFailures && (i = Interlocked.Increment(ref next)) < count)
                {
                    try
                    {
                        samples[i] = await OnboardOneAsync(api, slugPrefix, i, options, cancellationToken);
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TenantFailedException
                        || (ex is TaskCanceledException && !cancellationToken.IsCancellationRequested))
                    {
                        failures.Enqueue(string.Create(CultureInfo.InvariantCulture, $"tenant #{i}: {ex.Message}"));
                    }
                }
            },
            cancellationToken));
        await Task.WhenAll(workers);

        var done = samples.OfType<TenantSample>().ToList();
        var lastActive = done.Count == 0 ? Stopwatch.GetTimestamp() : done.Max(s => s.ActiveSeen);
        return new Batch(done, [.. failures], Math.Min(count, next + 1), started, Stopwatch.GetElapsedTime(started, lastActive).TotalSeconds);
    }

    private static async Task<TenantSample> OnboardOneAsync(TenantryApi api, string slugPrefix, int index, OnboardingOptions options, CancellationToken cancellationToken)
    {
        var slug = string.Create(CultureInfo.InvariantCulture, $"{slugPrefix}-{index:D6}");
        var postSent = Stopwatch.GetTimestamp();
        var created = await api.CreateTenantAsync($"Benchmark tenant {slug}", slug, $"admin@{slug}.bench.test", cancellationToken);
        var postDone = Stopwatch.GetTimestamp();

        var deadline = postSent + (options.TimeoutSeconds * Stopwatch.Frequency);
        var interval = TimeSpan.FromMilliseconds(Math.Max(1, options.PollMs));
        var maxPolls = (options.TimeoutSeconds * 1000 / Math.Max(1, options.PollMs)) + 100;
        for (var polls = 1; polls <= maxPolls; polls++)
        {
            var op = await api.GetOperationAsync(created.OperationId!, options.PollMs == 0 ? 10 : 0, cancellationToken);
            var seen = Stopwatch.GetTimestamp();
            switch (op.Status)
            {
                case "succeeded":
                    var finished = op.FinishedAt ?? throw new TenantFailedException($"{slug}: operation {op.Id} succeeded without finishedAt.");
                    return new TenantSample(
                        index,
                        created.Id,
                        postSent,
                        seen,
                        Stopwatch.GetElapsedTime(postSent, postDone).TotalMilliseconds,
                        Stopwatch.GetElapsedTime(postSent, seen).TotalMilliseconds,
                        (finished - created.CreatedAt).TotalMilliseconds,
                        polls,
                        created.CreatedAt,
                        op);
                case "failed" or "cancelled":
                    throw new TenantFailedException($"{slug}: onboarding {op.Status}: {op.Error}");
            }

            if (seen >= deadline)
            {
                break;
            }

            await Task.Delay(interval, cancellationToken);
        }

        throw new TenantFailedException($"{slug}: not active within {options.TimeoutSeconds} s.");
    }

    private static string BuildConfiguration() =>
        typeof(OnboardingBenchmark).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyConfigurationAttribute), inherit: false)
            .OfType<System.Reflection.AssemblyConfigurationAttribute>()
            .FirstOrDefault()?.Configuration ?? "unknown";

    private static void Progress(string message) =>
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:HH:mm:ss} {message}"));
}
