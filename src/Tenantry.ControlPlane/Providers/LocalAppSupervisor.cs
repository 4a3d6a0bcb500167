using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Routing;
using Tenantry.Data;

namespace Tenantry.ControlPlane.Providers;

/// <summary>Settings of the local compute provider, under <c>Tenantry:Compute</c>.</summary>
public sealed class LocalComputeOptions
{
    public const string Section = "Tenantry:Compute";

    /// <summary>
    /// The program a silo tenant's dedicated instance runs (with <see cref="AppArguments"/>). Unset:
    /// no process is started and deploy-compute only writes the deployment manifest.
    /// </summary>
    public string? AppCommand { get; set; }

    public IList<string> AppArguments { get; } = [];

    /// <summary>Dedicated instances get ports from here up (skipping the control-plane and gateway ports).</summary>
    [Range(1024, 65000)]
    public int FirstDedicatedPort { get; set; } = 5300;

    /// <summary>Stop the dedicated instances when the host stops gracefully (they are started again on the next start).</summary>
    public bool StopAppsOnShutdown { get; set; } = true;

    /// <summary>How long a new instance may take to answer its health probe.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How often each instance is checked; a dead one is started again.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The app's health endpoint: a new instance gets traffic once it answers 2xx here, and it is probed for liveness from then on.</summary>
    [Required]
    [RegularExpression("^/[^?#]*$", ErrorMessage = "Tenantry:Compute:HealthPath is a path such as /healthz.")]
    public string HealthPath { get; set; } = "/healthz";

    /// <summary>How often a running instance's health endpoint is probed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:10:00")]
    public TimeSpan LivenessInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long one liveness probe may take before it counts as failed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00")]
    public TimeSpan LivenessTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// An instance that fails this many liveness probes in a row (a hung process: alive, not answering)
    /// is killed and started again. A new instance is not counted until it first answers or
    /// <see cref="StartTimeout"/> has passed.
    /// </summary>
    [Range(1, 100)]
    public int LivenessFailures { get; set; } = 3;

    /// <summary>
    /// When instances are stopped (host shutdown, suspension, offboarding) they all get SIGTERM at once
    /// and this long, together, to exit; those still running then get SIGKILL.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan StopGracePeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Names of more host environment variables an instance gets (<c>SSL_CERT_FILE</c>, an OpenTelemetry
    /// endpoint, say). Otherwise it gets only its <c>Tenantry:App</c> settings and what a process needs
    /// to run (<see cref="LocalAppSupervisor.BaseEnvironment"/>): never the host's secrets.
    /// </summary>
    public IList<string> PassEnvironment { get; } = [];
}

/// <summary>
/// Runs silo tenants' dedicated app instances as local processes and keeps them running: a dead
/// instance is started again (with back-off), a hung one (alive, failing its liveness probes) is
/// killed and started again, an instance left running by an earlier host (after a crash) is
/// adopted, and on start every deployed, enabled instance is brought back. Each instance gets the
/// host's <c>Tenantry:App:*</c> settings and its own (its tenant and, when the tenant's database is
/// on PostgreSQL, its connection string with the tenant's own role, in the environment, never on
/// the command line), and otherwise only what a process needs to run: not the host's environment,
/// which holds the host's secrets. It writes its log to <c>compute/{slug}/app.log</c>; its pid is
/// kept in <c>compute/{slug}/app.pid</c>.
/// </summary>
internal sealed partial class LocalAppSupervisor(
    IOptions<LocalComputeOptions> options,
    IOptions<TenantryOptions> tenantry,
    IConfiguration configuration,
    IControlPlaneDatabase db,
    ITenantDatabaseProvider databases,
    TimeProvider time,
    ILogger<LocalAppSupervisor> logger) : IHostedService, IDisposable
{
    /// <summary>The host's environment variables every instance gets (when set): what a process, and dotnet, need to run.</summary>
    public static readonly IReadOnlyList<string> BaseEnvironment =
    [
        "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ",
        "DOTNET_ROOT", "DOTNET_ROOT_X64", "DOTNET_ROOT_ARM64", "DOTNET_BUNDLE_EXTRACT_BASE_DIR", "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT",
        "DOTNET_ENVIRONMENT", "ASPNETCORE_ENVIRONMENT",
    ];

    private const string AppSection = "Tenantry:App";

    /// <summary>How many instances are brought back at once on start.</summary>
    private const int RestoreParallelism = 8;
    private readonly ConcurrentDictionary<string, Instance> _instances = new(StringComparer.Ordinal);
    private readonly string _root = Path.Combine(tenantry.Value.DataPath, "compute");
    private readonly HttpClient _probe = new() { Timeout = Timeout.InfiniteTimeSpan };
    private readonly CancellationTokenSource _stopping = new();
    private bool _disposed;

    public bool Enabled => !string.IsNullOrWhiteSpace(options.Value.AppCommand);

    /// <summary>The process id of the tenant's running instance, if any.</summary>
    public int? ProcessId(string slug) => _instances.TryGetValue(slug, out var i) ? i.Pid : null;

    /// <summary>Starts (or adopts) the instance described by the tenant's manifest and waits until it answers.</summary>
    public async Task EnsureRunningAsync(string slug, CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return;
        }

        var manifest = ReadManifest(slug) ?? throw new InvalidOperationException($"No deployment manifest for '{slug}'.");
        var instance = _instances.GetOrAdd(slug, _ => new Instance(manifest));
        instance.Database ??= await DatabaseAsync(manifest, cancellationToken);
        await instance.Gate.WaitAsync(cancellationToken);
        try
        {
            if (!IsAlive(instance.Pid, manifest.Path) && !TryAdopt(instance))
            {
                Start(instance);
            }

            instance.Watch ??= Task.Run(() => WatchAsync(instance, _stopping.Token), CancellationToken.None);
        }
        finally
        {
            instance.Gate.Release();
        }

        await WaitHealthyAsync(instance, cancellationToken);
    }

    /// <summary>Stops the tenant's instance (SIGTERM, SIGKILL after the grace period) and stops watching it.</summary>
    public async Task StopAsync(string slug, CancellationToken cancellationToken)
    {
        var manifest = ReadManifest(slug);
        if (_instances.TryRemove(slug, out var instance))
        {
            await instance.Gate.WaitAsync(cancellationToken);
            try
            {
                instance.Stopped = true;
                await StopProcessesAsync([(instance.Pid, instance.Manifest.Path)], cancellationToken);
            }
            finally
            {
                instance.Gate.Release();
            }
        }
        else if (manifest is not null && ReadPid(manifest.Folder) is { } pid)
        {
            await StopProcessesAsync([(pid, manifest.Path)], cancellationToken);
        }

        if (manifest is not null)
        {
            File.Delete(Path.Combine(manifest.Folder, "app.pid"));
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!Enabled || !Directory.Exists(_root))
        {
            return Task.CompletedTask;
        }

        // Bring back every deployed instance whose route is on, without holding up the host's start. Several at
        // once: each may wait up to its start timeout, and one that hangs must not hold back the others.
        _ = Task.Run(
            async () =>
            {
                var enabled = await db.ReadAsync(RouteStore.EnabledDedicatedSlugsAsync);
                var parallel = new ParallelOptions { MaxDegreeOfParallelism = RestoreParallelism, CancellationToken = _stopping.Token };
                try
                {
                    await Parallel.ForEachAsync(enabled, parallel, async (slug, cancellationToken) =>
                    {
                        try
                        {
                            await EnsureRunningAsync(slug, cancellationToken);
                        }
                        catch (Exception ex) when (ex is not OperationCanceledException)
                        {
                            Log.RestoreFailed(logger, slug, ex);
                        }
                    });
                }
                catch (OperationCanceledException)
                {
                    // The host is stopping.
                }
            },
            CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // A host disposed before it was stopped (WebApplicationFactory.DisposeAsync does so) has nothing left to stop.
        if (Volatile.Read(ref _disposed))
        {
            return;
        }

        await _stopping.CancelAsync();
        if (!options.Value.StopAppsOnShutdown)
        {
            return;
        }

        // All at once: one by one, many instances (each given its grace period) would outlast the host's stop timeout
        // and be left running unsupervised.
        var targets = await Task.WhenAll(_instances.Values.Select(async instance =>
        {
            // Under the gate, so a restart under way finishes first and its new pid is the one stopped.
            var held = await TryWaitAsync(instance.Gate, cancellationToken);
            try
            {
                instance.Stopped = true;
                return (instance.Pid, instance.Manifest.Path);
            }
            finally
            {
                if (held)
                {
                    instance.Gate.Release();
                }
            }
        }));
        await StopProcessesAsync(targets, cancellationToken);
    }

    public void Dispose()
    {
        Volatile.Write(ref _disposed, true);
        _probe.Dispose();
        _stopping.Dispose();
    }

    private static async Task<bool> TryWaitAsync(SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        try
        {
            await gate.WaitAsync(cancellationToken);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private Manifest? ReadManifest(string slug)
    {
        var folder = Path.Combine(_root, slug);
        var path = Path.Combine(folder, "deployment.json");
        if (!File.Exists(path))
        {
            return null;
        }

        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var upstream = new Uri(json["upstream"]!.GetValue<string>());
        return new Manifest(Guid.Parse(json["tenantId"]!.GetValue<string>()), json["slug"]!.GetValue<string>(), upstream, path, folder);
    }

    /// <summary>The silo tenant's PostgreSQL database as its own role sees it; null on the embedded default (the app finds its file).</summary>
    private async Task<string?> DatabaseAsync(Manifest manifest, CancellationToken cancellationToken)
    {
        var tenant = TenantRef.ForData(manifest.TenantId, manifest.Slug, IsolationModel.Silo);
        return (await databases.ConnectAsync(tenant, cancellationToken))?.Target is PostgresSiloTarget silo ? silo.ToConnectionString() : null;
    }

    private bool TryAdopt(Instance instance)
    {
        if (ReadPid(instance.Manifest.Folder) is { } pid && IsAlive(pid, instance.Manifest.Path))
        {
            instance.Pid = pid;
            instance.StartedAt = DateTimeOffset.MinValue;
            instance.Answered = false;
            Log.Adopted(logger, instance.Manifest.TenantId, pid);
            return true;
        }

        return false;
    }

    private void Start(Instance instance)
    {
        var m = instance.Manifest;
        var o = options.Value;
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        // exec: the shell becomes the app (same pid), its output appended to the tenant's log file.
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("log=$1; shift; exec \"$@\" >>\"$log\" 2>&1 </dev/null");
        start.ArgumentList.Add("tenantry-app");
        start.ArgumentList.Add(Path.Combine(m.Folder, "app.log"));
        start.ArgumentList.Add(o.AppCommand!);
        foreach (var argument in o.AppArguments)
        {
            start.ArgumentList.Add(argument);
        }

        // Names the manifest on the command line, so a pid found later can be recognised as this instance.
        start.ArgumentList.Add($"--Tenantry:App:Manifest={m.Path}");
        SetEnvironment(start.Environment, instance);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {o.AppCommand}.");
        instance.Pid = process.Id;
        instance.StartedAt = time.GetUtcNow();
        instance.Answered = false;
        AtomicFile.Write(Path.Combine(m.Folder, "app.pid"), process.Id.ToString(CultureInfo.InvariantCulture));
        Log.Started(logger, m.TenantId, process.Id, m.Upstream.Port);
    }

    /// <summary>
    /// The instance's whole environment: what a process needs to run, the names the operator lets
    /// through, the host's <c>Tenantry:App</c> settings, and the instance's own. Nothing else of the
    /// host's: its environment holds its own secrets (the operator secret, signing keys, connection strings).
    /// </summary>
    private void SetEnvironment(IDictionary<string, string?> environment, Instance instance)
    {
        environment.Clear();
        foreach (var name in BaseEnvironment.Concat(options.Value.PassEnvironment))
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                environment[name] = value;
            }
        }

        foreach (var (key, value) in configuration.GetSection(AppSection).AsEnumerable(makePathsRelative: true))
        {
            if (value is not null)
            {
                environment[EnvironmentName(key)] = value;
            }
        }

        // The key the gateway signs the tenant context with, wherever it is kept.
        if (configuration["Tenantry:Gateway:ContextKeyFile"] is { Length: > 0 } contextKey)
        {
            environment[EnvironmentName("ContextKeyFile")] = contextKey;
        }

        var m = instance.Manifest;
        environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{m.Upstream.Port}";
        environment[EnvironmentName("DataDir")] = tenantry.Value.DataPath;
        environment[EnvironmentName("TenantId")] = m.TenantId.ToString();
        environment[EnvironmentName("Slug")] = m.Slug;
        if (instance.Database is not null)
        {
            environment[EnvironmentName("Database")] = instance.Database;
        }
    }

    private static string EnvironmentName(string key) => "Tenantry__App__" + key.Replace(":", "__", StringComparison.Ordinal);

    private async Task WatchAsync(Instance instance, CancellationToken stopping)
    {
        var o = options.Value;
        var backoff = TimeSpan.FromMilliseconds(250);
        var nextProbe = time.GetUtcNow() + o.LivenessInterval;
        var failures = 0;
        var probed = 0;
        while (!stopping.IsCancellationRequested && !instance.Stopped)
        {
            try
            {
                await Task.Delay(o.CheckInterval, time, stopping);
                if (time.GetUtcNow() >= nextProbe)
                {
                    nextProbe = time.GetUtcNow() + o.LivenessInterval;
                    var pid = instance.Pid;
                    if (pid != probed)
                    {
                        (probed, failures) = (pid, 0);
                    }

                    if (await CheckLivenessAsync(instance, pid, stopping))
                    {
                        failures = 0;
                    }
                    else if (++failures >= o.LivenessFailures && await RestartUnresponsiveAsync(instance, pid, failures, stopping))
                    {
                        continue;
                    }
                }

                await instance.Gate.WaitAsync(stopping);
                try
                {
                    if (instance.Stopped || IsAlive(instance.Pid, instance.Manifest.Path))
                    {
                        if (time.GetUtcNow() - instance.StartedAt > TimeSpan.FromMinutes(1))
                        {
                            backoff = TimeSpan.FromMilliseconds(250);
                        }

                        continue;
                    }

                    Log.Died(logger, instance.Manifest.TenantId, instance.Pid);
                    instance.Restarts++;
                }
                finally
                {
                    instance.Gate.Release();
                }

                await Task.Delay(backoff, time, stopping);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
                await instance.Gate.WaitAsync(stopping);
                try
                {
                    if (!instance.Stopped && !IsAlive(instance.Pid, instance.Manifest.Path))
                    {
                        Start(instance);
                    }
                }
                finally
                {
                    instance.Gate.Release();
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex)
            {
                Log.RestartFailed(logger, instance.Manifest.TenantId, ex);
            }
        }
    }

    /// <summary>
    /// False when the running process <paramref name="pid"/> did not answer its health probe in time and
    /// should have by now (it answered before, or its start timeout is over). A dead process is the
    /// watch loop's other check; an instance still starting is not held against it.
    /// </summary>
    private async Task<bool> CheckLivenessAsync(Instance instance, int pid, CancellationToken stopping)
    {
        if (!IsAlive(pid, instance.Manifest.Path))
        {
            return true;
        }

        var o = options.Value;
        if (await ProbeAsync(instance.Manifest, o.LivenessTimeout, stopping))
        {
            instance.Answered = true;
            return true;
        }

        return !instance.Answered && time.GetUtcNow() - instance.StartedAt <= o.StartTimeout;
    }

    /// <summary>Kills the hung process <paramref name="pid"/> (it is past handling SIGTERM) and starts the instance again.</summary>
    private async Task<bool> RestartUnresponsiveAsync(Instance instance, int pid, int failures, CancellationToken stopping)
    {
        await instance.Gate.WaitAsync(stopping);
        try
        {
            if (instance.Stopped || instance.Pid != pid || !IsAlive(pid, instance.Manifest.Path))
            {
                return false;
            }

            Log.Unresponsive(logger, instance.Manifest.TenantId, pid, failures, options.Value.HealthPath);
            Kill(pid, instance.Manifest.Path);
            instance.Restarts++;
            Start(instance);
            return true;
        }
        finally
        {
            instance.Gate.Release();
        }
    }

    /// <summary>True when the instance's health endpoint answers 2xx within <paramref name="timeout"/>.</summary>
    private async Task<bool> ProbeAsync(Manifest manifest, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            using var response = await _probe.GetAsync(new Uri(manifest.Upstream, options.Value.HealthPath), HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private async Task WaitHealthyAsync(Instance instance, CancellationToken cancellationToken)
    {
        var o = options.Value;
        var deadline = time.GetUtcNow() + o.StartTimeout;
        while (!await ProbeAsync(instance.Manifest, TimeSpan.FromSeconds(2), cancellationToken))
        {
            if (time.GetUtcNow() > deadline)
            {
                throw new TimeoutException($"The dedicated instance of '{instance.Manifest.Slug}' did not answer {new Uri(instance.Manifest.Upstream, o.HealthPath)} within {o.StartTimeout}; see {Path.Combine(instance.Manifest.Folder, "app.log")}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), time, cancellationToken);
        }

        instance.Answered = true;
    }

    /// <summary>
    /// SIGTERM to every process at once, then waits for them together, up to <see cref="LocalComputeOptions.StopGracePeriod"/>
    /// (or until <paramref name="cancellationToken"/> says time is up); those still running get SIGKILL, with their children.
    /// </summary>
    private async Task StopProcessesAsync(IReadOnlyCollection<(int Pid, string Manifest)> processes, CancellationToken cancellationToken)
    {
        var alive = processes.Where(p => IsAlive(p.Pid, p.Manifest)).ToList();
        foreach (var (pid, _) in alive)
        {
            PosixSignals.Terminate(pid);
        }

        var running = alive.ToList();

        var deadline = time.GetUtcNow() + options.Value.StopGracePeriod;
        while (running.Count > 0 && time.GetUtcNow() < deadline && !cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            running.RemoveAll(p => !IsAlive(p.Pid, p.Manifest));
        }

        foreach (var (pid, _) in alive.Except(running))
        {
            Log.Stopped(logger, pid);
        }

        await Task.WhenAll(running.Select(p => Task.Run(() => Kill(p.Pid, p.Manifest), CancellationToken.None)));
    }

    private static int? ReadPid(string folder)
    {
        var file = Path.Combine(folder, "app.pid");
        return File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }

    /// <summary>True when <paramref name="pid"/> runs and is the instance of <paramref name="manifest"/> (not a recycled pid).</summary>
    private static bool IsAlive(int pid, string manifest)
    {
        if (pid <= 0)
        {
            return false;
        }

        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].FirstOrDefault();
            if (state is 'Z' or 'X')
            {
                return false;
            }

            var commandLine = File.ReadAllText($"/proc/{pid}/cmdline");
            return commandLine.Contains("--Tenantry:App:Manifest=" + manifest, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>SIGKILL to the process and its children, and waits (bounded) until it is gone.</summary>
    private void Kill(int pid, string manifest)
    {
        if (!IsAlive(pid, manifest))
        {
            return;
        }

        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill(entireProcessTree: true);
            process.WaitForExit(5000);
            Log.Killed(logger, pid);
        }
        catch (ArgumentException)
        {
        }
        catch (InvalidOperationException)
        {
        }
    }

    private sealed record Manifest(Guid TenantId, string Slug, Uri Upstream, string Path, string Folder);

    private sealed class Instance(Manifest manifest)
    {
        public Manifest Manifest { get; } = manifest;

        public SemaphoreSlim Gate { get; } = new(1, 1);

        public int Pid { get; set; }

        public DateTimeOffset StartedAt { get; set; }

        /// <summary>The running process has answered its health probe at least once.</summary>
        public bool Answered { get; set; }

        public int Restarts { get; set; }

        public bool Stopped { get; set; }

        /// <summary>The tenant's PostgreSQL connection string, when it has one.</summary>
        public string? Database { get; set; }

        public Task? Watch { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Started the dedicated instance of tenant {TenantId}: pid {Pid}, port {Port}")]
        public static partial void Started(ILogger logger, Guid tenantId, int pid, int port);

        [LoggerMessage(2, LogLevel.Information, "Adopted the running dedicated instance of tenant {TenantId}: pid {Pid}")]
        public static partial void Adopted(ILogger logger, Guid tenantId, int pid);

        [LoggerMessage(3, LogLevel.Warning, "The dedicated instance of tenant {TenantId} (pid {Pid}) died; starting it again")]
        public static partial void Died(ILogger logger, Guid tenantId, int pid);

        [LoggerMessage(4, LogLevel.Error, "Could not restart the dedicated instance of tenant {TenantId}")]
        public static partial void RestartFailed(ILogger logger, Guid tenantId, Exception exception);

        [LoggerMessage(5, LogLevel.Error, "Could not bring back the dedicated instance of '{Slug}' on start")]
        public static partial void RestoreFailed(ILogger logger, string slug, Exception exception);

        [LoggerMessage(6, LogLevel.Information, "Stopped dedicated instance pid {Pid}")]
        public static partial void Stopped(ILogger logger, int pid);

        [LoggerMessage(7, LogLevel.Warning, "The dedicated instance of tenant {TenantId} (pid {Pid}) failed {Failures} liveness probes of {HealthPath} in a row; killing it and starting it again")]
        public static partial void Unresponsive(ILogger logger, Guid tenantId, int pid, int failures, string healthPath);

        [LoggerMessage(8, LogLevel.Warning, "Killed dedicated instance pid {Pid} (it did not stop in its grace period, or hung)")]
        public static partial void Killed(ILogger logger, int pid);
    }
}
