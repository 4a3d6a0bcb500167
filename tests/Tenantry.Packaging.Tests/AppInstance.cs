using System.Diagnostics;
using System.Globalization;
using System.Net;
using Tenantry.Testing;

namespace Tenantry.Packaging.Tests;

/// <summary>
/// A built app started as Tenantry starts an instance: the manifest's command, arguments and working
/// directory, and an environment of the instance contract (<c>PORT</c>, <c>TENANTRY_*</c>) plus what a
/// process needs to run, nothing else of the test's. Stopped (by its process id) on dispose.
/// </summary>
internal sealed class AppInstance : IAsyncDisposable
{
    private static readonly string[] BaseEnvironment = ["PATH", "HOME", "DOTNET_ROOT", "LANG", "TMPDIR"];
    private readonly Process _process;
    private readonly string _log;

    private AppInstance(Process process, string log, Uri address)
    {
        _process = process;
        _log = log;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    public HttpClient Http { get; }

    /// <summary>What the instance wrote to stdout and stderr.</summary>
    public string Log => File.Exists(_log) ? File.ReadAllText(_log) : "";

    /// <summary>Starts <paramref name="app"/> with <paramref name="environment"/> (which names no <c>PORT</c>: a free one is given) and waits until its health path answers 200.</summary>
    public static async Task<AppInstance> StartAsync(TemplateApp app, IReadOnlyDictionary<string, string> environment)
    {
        var manifest = app.ReadManifest();
        var process = manifest["release"]!["process"]!;
        var workingDirectory = Path.GetFullPath(Path.Combine(app.Folder, process["workingDirectory"]!.GetValue<string>()));
        var port = TenantryHost.FreePorts(1)[0];
        var log = Path.Combine(app.WorkFolder, $"instance-{port}.log");
        var command = process["command"]!.GetValue<string>();
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = workingDirectory };
        // exec: the shell becomes the app (same pid), its output appended to the log, as the supervisor runs instances.
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("log=$1; shift; exec \"$@\" >>\"$log\" 2>&1 </dev/null");
        start.ArgumentList.Add("tenantry-app");
        start.ArgumentList.Add(log);
        start.ArgumentList.Add(command == "dotnet" ? TenantryHost.DotnetPath() : command);
        foreach (var argument in process["args"]!.AsArray())
        {
            start.ArgumentList.Add(argument!.GetValue<string>());
        }

        start.Environment.Clear();
        foreach (var name in BaseEnvironment)
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                start.Environment[name] = value;
            }
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        start.Environment[TenantryEnvironment.Port] = port.ToString(CultureInfo.InvariantCulture);
        var instance = new AppInstance(Process.Start(start)!, log, new Uri($"http://127.0.0.1:{port}"));
        try
        {
            await instance.WaitHealthyAsync(manifest["healthPath"]!.GetValue<string>());
            return instance;
        }
        catch
        {
            await instance.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private async Task WaitHealthyAsync(string healthPath)
    {
        // Bounded in count and time: a cold start of a Release build, on a busy machine, well within a minute.
        for (var attempt = 0; attempt < 240; attempt++)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The app exited with {_process.ExitCode} before it answered {healthPath}:\n{Log}");
            }

            try
            {
                using var probe = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                using var response = await Http.GetAsync(new Uri(healthPath, UriKind.Relative), probe.Token);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250));
        }

        throw new InvalidOperationException($"The app did not answer {healthPath} with 200:\n{Log}");
    }
}
