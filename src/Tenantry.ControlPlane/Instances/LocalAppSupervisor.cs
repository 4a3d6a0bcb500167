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
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Routing;
using Tenantry.Data;

namespace Tenantry.ControlPlane.Instances;

/// <summary>Settings of the local compute provider, under <c>Tenantry:Compute</c>.</summary>
public sealed class LocalComputeOptions
{
    public const string Section = "Tenantry:Compute";

    /// <summary>Where app instances run: <c>local</c> (processes on this machine) or <c>kubernetes</c> (a cluster, see <c>Tenantry:Compute:Kubernetes</c>).</summary>
    [RegularExpression("^(local|kubernetes)$", ErrorMessage = "Tenantry:Compute:Provider is local or kubernetes.")]
    public string Provider { get; set; } = "local";

    /// <summary>True when instances run on a cluster rather than as local processes.</summary>
    public bool OnKubernetes => Provider == "kubernetes";

    /// <summary>Dedicated instances get ports from here up (shared instances from <c>Tenantry:Ports:SharedApp</c>); ports of the control plane and gateway are skipped.</summary>
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
/// What one app instance runs: its release's process, listening on <see cref="Upstream"/>, probed at
/// <see cref="HealthPath"/>, with its whole <see cref="Environment"/> (the instance contract: PORT,
/// TENANTRY_*; it may carry the tenant's database password, so it is passed to the process only, never written to a file).
/// </summary>
public sealed record InstanceLaunch(string Key, string App, string Release, Guid? TenantId, Uri Upstream, string HealthPath, Apps.ReleaseProcess Process, IReadOnlyDictionary<string, string> Environment);

/// <summary>
/// Runs app instances as local processes and keeps them running: a dead instance is started again
/// (with back-off), a hung one (alive, failing its liveness probes) is killed and started again, and
/// an instance left running by an earlier host (after a crash) is adopted. Each instance has a folder
/// <c>compute/{owner}/{app}@{release}</c> with <c>instance.json</c> (what runs, no secrets), <c>app.pid</c>
/// and <c>app.log</c>; its process carries <c>TENANTRY_INSTANCE</c> = that folder in its environment,
/// which is how a pid found later is recognised as this instance and not a recycled one. The process
/// gets only the environment it is given (<see cref="InstanceLaunch.Environment"/>) plus what a process
/// needs to run (<see cref="BaseEnvironment"/>) and the names the operator lets through: never the host's
/// own environment, which holds the host's secrets.
/// </summary>
public sealed partial class LocalAppSupervisor(
    IOptions<LocalComputeOptions> options,
    IOptions<TenantryOptions> tenantry,
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

    /// <summary>The environment variable that marks an instance's process with its folder.</summary>
    public const string InstanceVariable = TenantryEnvironment.Instance;

    private readonly ConcurrentDictionary<string, Instance> _instances = new(StringComparer.Ordinal);
    private readonly string _root = Path.Combine(tenantry.Value.DataPath, "compute");
    private readonly HttpClient _probe = new() { Timeout = Timeout.InfiniteTimeSpan };
    private readonly CancellationTokenSource _stopping = new();
    private bool _disposed;

    /// <summary>The folder under the data dir that holds every instance's folder.</summary>
    public string Root => _root;

    /// <summary>The process id of the instance's running process, if any.</summary>
    public int? ProcessId(string key) => _instances.TryGetValue(key, out var i) && IsAlive(i.Pid, i.Folder) ? i.Pid : null;

    /// <summary>Restarts of the instance since this host started it (deaths and hangs).</summary>
    public int Restarts(string key) => _instances.TryGetValue(key, out var i) ? i.Restarts : 0;

    public string FolderOf(string key) => Path.Combine(_root, key);

    /// <summary>Starts (or adopts) the instance and waits until its health endpoint answers; throws when it never does.</summary>
    public async Task EnsureRunningAsync(InstanceLaunch launch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(launch);
        var instance = _instances.AddOrUpdate(launch.Key, _ => new Instance(launch, FolderOf(launch.Key)), (_, existing) =>
        {
            existing.Launch = launch;
            return existing;
        });
        await instance.Gate.WaitAsync(cancellationToken);
        try
        {
            instance.Stopped = false;
            if (!IsAlive(instance.Pid, instance.Folder) && !TryAdopt(instance))
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

    /// <summary>Stops the instances (SIGTERM to all at once, SIGKILL after the grace period) and stops watching them.</summary>
    public async Task StopAsync(IReadOnlyCollection<string> keys, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var targets = new List<(int Pid, string Folder)>();
        foreach (var key in keys)
        {
            var folder = FolderOf(key);
            if (_instances.TryRemove(key, out var instance))
            {
                await instance.Gate.WaitAsync(cancellationToken);
                try
                {
                    instance.Stopped = true;
                    targets.Add((instance.Pid, folder));
                }
                finally
                {
                    instance.Gate.Release();
                }
            }
            else if (ReadPid(folder) is { } pid)
            {
                targets.Add((pid, folder));
            }
        }

        await StopProcessesAsync(targets, cancellationToken);
        foreach (var (_, folder) in targets)
        {
            File.Delete(Path.Combine(folder, "app.pid"));
        }
    }

    /// <summary>Stops the instance and deletes its folder (its log included).</summary>
    public async Task RemoveAsync(string key, CancellationToken cancellationToken)
    {
        await StopAsync([key], cancellationToken);
        var folder = FolderOf(key);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

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
                return (instance.Pid, instance.Folder);
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

    /// <summary>The instances this supervisor runs and watches now (keys).</summary>
    public IReadOnlySet<string> SupervisedKeys() => _instances.Keys.ToHashSet(StringComparer.Ordinal);

    /// <summary>Instance folders on disk (keys), for cleaning up what an interrupted host left behind.</summary>
    public IReadOnlyList<string> KeysOnDisk()
    {
        if (!Directory.Exists(_root))
        {
            return [];
        }

        return [.. Directory.EnumerateFiles(_root, "instance.json", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(_root, Path.GetDirectoryName(f)!).Replace('\\', '/'))
            .Order(StringComparer.Ordinal)];
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

    private bool TryAdopt(Instance instance)
    {
        if (ReadPid(instance.Folder) is { } pid && IsAlive(pid, instance.Folder))
        {
            instance.Pid = pid;
            instance.StartedAt = DateTimeOffset.MinValue;
            instance.Answered = false;
            Log.Adopted(logger, instance.Launch.Key, pid);
            return true;
        }

        return false;
    }

    private void Start(Instance instance)
    {
        var launch = instance.Launch;
        Directory.CreateDirectory(instance.Folder);
        AtomicFile.Write(Path.Combine(instance.Folder, "instance.json"), new JsonObject
        {
            ["key"] = launch.Key,
            ["app"] = launch.App,
            ["release"] = launch.Release,
            ["tenantId"] = launch.TenantId?.ToString(),
            ["upstream"] = launch.Upstream.ToString(),
            ["command"] = launch.Process.Command,
            ["args"] = new JsonArray([.. launch.Process.Args.Select(a => JsonValue.Create(a))]),
            ["workingDirectory"] = launch.Process.WorkingDirectory,
        }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));

        var command = Apps.ReleaseCommand.Resolve(launch.Process.Command, launch.Process.WorkingDirectory)
            ?? throw new InvalidOperationException($"The command '{launch.Process.Command}' of {launch.App} {launch.Release} is not an executable file.");
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = launch.Process.WorkingDirectory ?? instance.Folder };
        // exec: the shell becomes the app (same pid), its output appended to the instance's log file.
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("log=$1; shift; exec \"$@\" >>\"$log\" 2>&1 </dev/null");
        start.ArgumentList.Add("tenantry-app");
        start.ArgumentList.Add(Path.Combine(instance.Folder, "app.log"));
        start.ArgumentList.Add(command);
        foreach (var argument in launch.Process.Args)
        {
            start.ArgumentList.Add(argument);
        }

        SetEnvironment(start.Environment, instance);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {command}.");
        instance.Pid = process.Id;
        instance.StartedAt = time.GetUtcNow();
        instance.Answered = false;
        AtomicFile.Write(Path.Combine(instance.Folder, "app.pid"), process.Id.ToString(CultureInfo.InvariantCulture));
        Log.Started(logger, launch.Key, process.Id, launch.Upstream.Port);
    }

    /// <summary>
    /// The instance's whole environment: what a process needs to run, the names the operator lets
    /// through, the release's own variables, and the instance contract. Nothing else of the host's.
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

        foreach (var (name, value) in instance.Launch.Process.Env)
        {
            environment[name] = value;
        }

        foreach (var (name, value) in instance.Launch.Environment)
        {
            environment[name] = value;
        }

        environment[InstanceVariable] = instance.Folder;
    }

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
                    if (instance.Stopped || IsAlive(instance.Pid, instance.Folder))
                    {
                        if (time.GetUtcNow() - instance.StartedAt > TimeSpan.FromMinutes(1))
                        {
                            backoff = TimeSpan.FromMilliseconds(250);
                        }

                        continue;
                    }

                    Log.Died(logger, instance.Launch.Key, instance.Pid);
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
                    if (!instance.Stopped && !IsAlive(instance.Pid, instance.Folder))
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
                Log.RestartFailed(logger, instance.Launch.Key, ex);
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
        if (!IsAlive(pid, instance.Folder))
        {
            return true;
        }

        var o = options.Value;
        if (await ProbeAsync(instance.Launch, o.LivenessTimeout, stopping))
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
            if (instance.Stopped || instance.Pid != pid || !IsAlive(pid, instance.Folder))
            {
                return false;
            }

            Log.Unresponsive(logger, instance.Launch.Key, pid, failures, instance.Launch.HealthPath);
            Kill(pid, instance.Folder);
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
    private async Task<bool> ProbeAsync(InstanceLaunch launch, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            using var response = await _probe.GetAsync(new Uri(launch.Upstream, launch.HealthPath), HttpCompletionOption.ResponseHeadersRead, deadline.Token);
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
        while (!await ProbeAsync(instance.Launch, TimeSpan.FromSeconds(2), cancellationToken))
        {
            if (time.GetUtcNow() > deadline)
            {
                throw new TimeoutException($"The instance {instance.Launch.Key} did not answer {new Uri(instance.Launch.Upstream, instance.Launch.HealthPath)} within {o.StartTimeout}; see {Path.Combine(instance.Folder, "app.log")}.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), time, cancellationToken);
        }

        instance.Answered = true;
    }

    /// <summary>
    /// SIGTERM to every process at once, then waits for them together, up to <see cref="LocalComputeOptions.StopGracePeriod"/>
    /// (or until <paramref name="cancellationToken"/> says time is up); those still running get SIGKILL, with their children.
    /// </summary>
    private async Task StopProcessesAsync(IReadOnlyCollection<(int Pid, string Folder)> processes, CancellationToken cancellationToken)
    {
        var alive = processes.Where(p => IsAlive(p.Pid, p.Folder)).ToList();
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

            running.RemoveAll(p => !IsAlive(p.Pid, p.Folder));
        }

        foreach (var (pid, _) in alive.Except(running))
        {
            Log.Stopped(logger, pid);
        }

        await Task.WhenAll(running.Select(p => Task.Run(() => Kill(p.Pid, p.Folder), CancellationToken.None)));
    }

    private static int? ReadPid(string folder)
    {
        var file = Path.Combine(folder, "app.pid");
        return File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }

    /// <summary>True when <paramref name="pid"/> runs and is the instance of <paramref name="folder"/> (not a recycled pid).</summary>
    private static bool IsAlive(int pid, string folder)
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

            var environment = File.ReadAllText($"/proc/{pid}/environ");
            return environment.Contains("\0" + InstanceVariable + "=" + folder + "\0", StringComparison.Ordinal)
                || environment.StartsWith(InstanceVariable + "=" + folder + "\0", StringComparison.Ordinal);
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
    private void Kill(int pid, string folder)
    {
        if (!IsAlive(pid, folder))
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

    private sealed class Instance(InstanceLaunch launch, string folder)
    {
        public InstanceLaunch Launch { get; set; } = launch;

        public string Folder { get; } = folder;

        public SemaphoreSlim Gate { get; } = new(1, 1);

        public int Pid { get; set; }

        public DateTimeOffset StartedAt { get; set; }

        /// <summary>The running process has answered its health probe at least once.</summary>
        public bool Answered { get; set; }

        public int Restarts { get; set; }

        public bool Stopped { get; set; }

        public Task? Watch { get; set; }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Started instance {Instance}: pid {Pid}, port {Port}")]
        public static partial void Started(ILogger logger, string instance, int pid, int port);

        [LoggerMessage(2, LogLevel.Information, "Adopted the running instance {Instance}: pid {Pid}")]
        public static partial void Adopted(ILogger logger, string instance, int pid);

        [LoggerMessage(3, LogLevel.Warning, "Instance {Instance} (pid {Pid}) died; starting it again")]
        public static partial void Died(ILogger logger, string instance, int pid);

        [LoggerMessage(4, LogLevel.Error, "Could not restart instance {Instance}")]
        public static partial void RestartFailed(ILogger logger, string instance, Exception exception);

        [LoggerMessage(6, LogLevel.Information, "Stopped instance pid {Pid}")]
        public static partial void Stopped(ILogger logger, int pid);

        [LoggerMessage(7, LogLevel.Warning, "Instance {Instance} (pid {Pid}) failed {Failures} liveness probes of {HealthPath} in a row; killing it and starting it again")]
        public static partial void Unresponsive(ILogger logger, string instance, int pid, int failures, string healthPath);

        [LoggerMessage(8, LogLevel.Warning, "Killed instance pid {Pid} (it did not stop in its grace period, or hung)")]
        public static partial void Killed(ILogger logger, int pid);
    }
}
