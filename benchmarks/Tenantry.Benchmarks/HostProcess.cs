using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;

namespace Tenantry.Benchmarks;

/// <summary>
/// The real Tenantry host, run as a child process (<c>dotnet Tenantry.Host.dll</c> from this program's
/// folder) on a free loopback port with a temporary data directory. Disposing kills it and removes
/// the data directory.
/// </summary>
internal sealed class HostProcess : IDisposable
{
    private const string HostAssembly = "Tenantry.Host.dll";
    private const int KeptLines = 200;
    private const int StartAttempts = 3;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly bool _keepData;
    private readonly ConcurrentQueue<string> _tail = new();
    private int _warnings;
    private int _errors;
    private int _disposed;

    private HostProcess(Process process, Uri address, string dataDir, string secret, bool keepData)
    {
        _process = process;
        Address = address;
        DataDir = dataDir;
        Secret = secret;
        _keepData = keepData;
        process.OutputDataReceived += (_, e) => Record(e.Data);
        process.ErrorDataReceived += (_, e) => Record(e.Data);
    }

    public Uri Address { get; }

    public string DataDir { get; }

    public string Secret { get; }

    /// <summary>Log lines the host wrote at warning level.</summary>
    public int Warnings => Volatile.Read(ref _warnings);

    /// <summary>Log lines the host wrote at error or critical level.</summary>
    public int Errors => Volatile.Read(ref _errors);

    /// <summary>CPU time the host process has used so far in the kernel (system calls, fsync, sockets).</summary>
    public TimeSpan KernelCpuTime
    {
        get
        {
            _process.Refresh();
            return _process.HasExited ? TimeSpan.Zero : _process.PrivilegedProcessorTime;
        }
    }

    /// <summary>CPU time the host process has used so far.</summary>
    public TimeSpan CpuTime
    {
        get
        {
            _process.Refresh();
            return _process.HasExited ? TimeSpan.Zero : _process.TotalProcessorTime;
        }
    }

    /// <summary>The configuration Tenantry.Host.dll was built in ("Release", "Debug"), from its assembly attribute.</summary>
    public static string? HostBuildConfiguration()
    {
        var path = Path.Combine(AppContext.BaseDirectory, HostAssembly);
        return File.Exists(path)
            ? Assembly.LoadFrom(path).GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration
            : null;
    }

    public static async Task<HostProcess> StartAsync(IReadOnlyList<string> hostArgs, bool keepData, CancellationToken cancellationToken)
    {
        var hostDll = Path.Combine(AppContext.BaseDirectory, HostAssembly);
        if (!File.Exists(hostDll))
        {
            throw new InvalidOperationException($"{hostDll} is missing: build this project, which references src/Tenantry.Host.");
        }

        for (var attempt = 1; ; attempt++)
        {
            var port = FreeLoopbackPort();
            var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-bench", Guid.NewGuid().ToString("N"));
            var secret = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
            var start = new ProcessStartInfo(DotnetPath())
            {
                WorkingDirectory = AppContext.BaseDirectory,
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = false,
            };
            start.ArgumentList.Add(hostDll);
            start.ArgumentList.Add("--data-dir");
            start.ArgumentList.Add(dataDir);
            start.ArgumentList.Add("--port");
            start.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
            start.ArgumentList.Add("--operator-secret");
            start.ArgumentList.Add(secret);
            // The control plane alone (no gateway on the fixed port 5081, no app processes), unless hostArgs say otherwise.
            start.ArgumentList.Add("--Tenantry:ApplicationPlane:Enabled=false");
            foreach (var arg in hostArgs)
            {
                start.ArgumentList.Add(arg);
            }

            // The host as an operator would run it: production settings, its own address only.
            start.Environment["DOTNET_ENVIRONMENT"] = "Production";
            start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
            foreach (var inherited in new[] { "ASPNETCORE_URLS", "DOTNET_URLS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS", "TENANTRY_OPERATOR_SECRET" })
            {
                start.Environment.Remove(inherited);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException("The host process did not start.");
            var host = new HostProcess(process, new Uri($"http://127.0.0.1:{port}/"), dataDir, secret, keepData);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                if (await host.WaitHealthyAsync(cancellationToken))
                {
                    return host;
                }
            }
            catch
            {
                host.Dispose();
                throw;
            }

            // Exit code 4: the port was taken between picking it and binding it; try another.
            var exited = process.HasExited ? $"it exited with code {process.ExitCode}" : $"it did not answer GET /healthz within {StartTimeout.TotalSeconds:0} s";
            var portTaken = process.HasExited && process.ExitCode == 4;
            var tail = host.Tail();
            host.Dispose();
            if (!portTaken || attempt >= StartAttempts)
            {
                throw new InvalidOperationException($"The host on port {port} did not start: {exited}. Its last output:\n{tail}");
            }
        }
    }

    /// <summary>The last lines the host wrote to stdout and stderr.</summary>
    public string Tail() => string.Join('\n', _tail);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        _process.Dispose();
        if (!_keepData)
        {
            for (var attempt = 0; attempt < 5 && Directory.Exists(DataDir); attempt++)
            {
                try
                {
                    Directory.Delete(DataDir, recursive: true);
                }
                catch (IOException)
                {
                    Thread.Sleep(200);
                }
                catch (UnauthorizedAccessException)
                {
                    Thread.Sleep(200);
                }
            }
        }
    }

    private async Task<bool> WaitHealthyAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.GetTimestamp() + (long)(StartTimeout.TotalSeconds * Stopwatch.Frequency);
        for (var probe = 0; probe < 1200 && Stopwatch.GetTimestamp() < deadline; probe++)
        {
            if (_process.HasExited)
            {
                return false;
            }

            try
            {
                using var response = await http.GetAsync(new Uri("healthz", UriKind.Relative), cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return true;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The probe itself timed out; try again.
            }

            await Task.Delay(50, cancellationToken);
        }

        return false;
    }

    private void Record(string? line)
    {
        if (line is null)
        {
            return;
        }

        // The host's console format is "HH:mm:ss.fff level: Category[id] message".
        if (line.Contains(" warn: ", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref _warnings);
        }
        else if (line.Contains(" fail: ", StringComparison.Ordinal) || line.Contains(" crit: ", StringComparison.Ordinal))
        {
            Interlocked.Increment(ref _errors);
        }

        _tail.Enqueue(line);
        while (_tail.Count > KeptLines && _tail.TryDequeue(out _))
        {
        }
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>The dotnet muxer running this program, else the one on PATH.</summary>
    private static string DotnetPath()
    {
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        var root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(root))
        {
            var candidate = Path.Combine(root, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return "dotnet";
    }
}
