using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
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
}

/// <summary>
/// Runs silo tenants' dedicated app instances as local processes and keeps them running: a dead
/// instance is started again (with back-off), an instance left running by an earlier host (after a
/// crash) is adopted, and on start every deployed, enabled instance is brought back. Each instance
/// gets <c>Tenantry:App:*</c> settings naming its tenant (and, when the tenant's database is on
/// PostgreSQL, its connection string with the tenant's own role, in the environment, never on the
/// command line) and writes its log to
/// <c>compute/{slug}/app.log</c>; its pid is kept in <c>compute/{slug}/app.pid</c>.
/// </summary>
internal sealed partial class LocalAppSupervisor(
    IOptions<LocalComputeOptions> options,
    IOptions<TenantryOptions> tenantry,
    IControlPlaneDatabase db,
    ITenantDatabaseProvider databases,
    ILogger<LocalAppSupervisor> logger) : IHostedService, IDisposable
{
    private readonly ConcurrentDictionary<string, Instance> _instances = new(StringComparer.Ordinal);
    private readonly string _root = Path.Combine(tenantry.Value.DataPath, "compute");
    private readonly HttpClient _probe = new() { Timeout = TimeSpan.FromSeconds(2) };
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

    /// <summary>Stops the tenant's instance and stops watching it.</summary>
    public async Task StopAsync(string slug, CancellationToken cancellationToken)
    {
        var manifest = ReadManifest(slug);
        if (_instances.TryRemove(slug, out var instance))
        {
            await instance.Gate.WaitAsync(cancellationToken);
            try
            {
                instance.Stopped = true;
                Kill(instance.Pid, instance.Manifest.Path);
            }
            finally
            {
                instance.Gate.Release();
            }
        }
        else if (manifest is not null && ReadPid(manifest.Folder) is { } pid)
        {
            Kill(pid, manifest.Path);
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

        // Bring back every deployed instance whose route is on, without holding up the host's start.
        _ = Task.Run(
            async () =>
            {
                var enabled = await db.ReadAsync(RouteStore.EnabledDedicatedSlugsAsync);
                foreach (var slug in enabled)
                {
                    try
                    {
                        await EnsureRunningAsync(slug, _stopping.Token);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        Log.RestoreFailed(logger, slug, ex);
                    }
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
        if (options.Value.StopAppsOnShutdown)
        {
            foreach (var instance in _instances.Values)
            {
                instance.Stopped = true;
                Kill(instance.Pid, instance.Manifest.Path);
            }
        }
    }

    public void Dispose()
    {
        Volatile.Write(ref _disposed, true);
        _probe.Dispose();
        _stopping.Dispose();
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
        start.ArgumentList.Add("exec \"$@\" >>\"$TENANTRY_APP_LOG\" 2>&1 </dev/null");
        start.ArgumentList.Add("tenantry-app");
        start.ArgumentList.Add(o.AppCommand!);
        foreach (var argument in o.AppArguments)
        {
            start.ArgumentList.Add(argument);
        }

        // Names the manifest on the command line, so a pid found later can be recognised as this instance.
        start.ArgumentList.Add($"--Tenantry:App:Manifest={m.Path}");
        start.Environment["TENANTRY_APP_LOG"] = Path.Combine(m.Folder, "app.log");
        start.Environment["ASPNETCORE_URLS"] = $"http://127.0.0.1:{m.Upstream.Port}";
        start.Environment["Tenantry__App__DataDir"] = tenantry.Value.DataPath;
        start.Environment["Tenantry__App__TenantId"] = m.TenantId.ToString();
        start.Environment["Tenantry__App__Slug"] = m.Slug;
        if (instance.Database is not null)
        {
            start.Environment["Tenantry__App__Database"] = instance.Database;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {o.AppCommand}.");
        instance.Pid = process.Id;
        instance.StartedAt = DateTimeOffset.UtcNow;
        AtomicFile.Write(Path.Combine(m.Folder, "app.pid"), process.Id.ToString(CultureInfo.InvariantCulture));
        Log.Started(logger, m.TenantId, process.Id, m.Upstream.Port);
    }

    private async Task WatchAsync(Instance instance, CancellationToken stopping)
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!stopping.IsCancellationRequested && !instance.Stopped)
        {
            try
            {
                await Task.Delay(options.Value.CheckInterval, stopping);
                await instance.Gate.WaitAsync(stopping);
                try
                {
                    if (instance.Stopped || IsAlive(instance.Pid, instance.Manifest.Path))
                    {
                        if (DateTimeOffset.UtcNow - instance.StartedAt > TimeSpan.FromMinutes(1))
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

                await Task.Delay(backoff, stopping);
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

    private async Task WaitHealthyAsync(Instance instance, CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + options.Value.StartTimeout;
        var probe = new Uri(instance.Manifest.Upstream, "/healthz");
        while (true)
        {
            try
            {
                using var response = await _probe.GetAsync(probe, cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }

            if (DateTimeOffset.UtcNow > deadline)
            {
                throw new TimeoutException($"The dedicated instance of '{instance.Manifest.Slug}' did not answer {probe} within {options.Value.StartTimeout}; see {Path.Combine(instance.Manifest.Folder, "app.log")}.");
            }

            await Task.Delay(100, cancellationToken);
        }
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
            Log.Stopped(logger, pid);
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
    }
}
