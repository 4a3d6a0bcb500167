using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Tenantry.Testing;

/// <summary>
/// The real host as a child process (<c>dotnet Tenantry.Host.dll …</c>, next to the test assembly),
/// configured by its command line alone: Tenantry settings in this process's environment are not
/// passed on. Its output goes to <c>output</c>; it can be waited for, killed (SIGKILL, as a crash)
/// or terminated (SIGTERM, as a service manager stops it).
/// </summary>
public sealed class ChildHost : IDisposable
{
    private readonly Process _process;
    private bool _gone;

    private ChildHost(Process process) => _process = process;

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The exit code once the process is known to have exited.</summary>
    public int? ExitCode { get; private set; }

    /// <summary>Path of the host assembly the test project copies next to itself (it must reference Tenantry.Host).</summary>
    public static string HostDll => Path.Combine(AppContext.BaseDirectory, "Tenantry.Host.dll");

    /// <summary>Starts the host with <paramref name="arguments"/>; each line it writes (stderr prefixed <c>stderr: </c>) goes to <paramref name="output"/>.</summary>
    /// <param name="environment">Variables set in the host's environment (after the Tenantry ones of this process are removed).</param>
    public static ChildHost Start(IEnumerable<string> arguments, Action<string>? output = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        if (!File.Exists(HostDll))
        {
            throw new FileNotFoundException($"{HostDll} is missing: the test project must reference Tenantry.Host.", HostDll);
        }

        var info = new ProcessStartInfo(DotnetPath())
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        info.ArgumentList.Add(HostDll);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("Tenantry__", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("TENANTRY_", StringComparison.OrdinalIgnoreCase) || k.StartsWith("ASPNETCORE_URLS", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            info.Environment.Remove(name);
        }

        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                output?.Invoke(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                output?.Invoke("stderr: " + e.Data);
            }
        };
        if (!process.Start())
        {
            throw new InvalidOperationException("The host process did not start.");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ChildHost(process);
    }

    /// <summary>
    /// Null once every <paramref name="bases"/>' <c>/healthz</c> answers 2xx; else why not (the host
    /// exited, or the time ran out). A cold host on a loaded machine may take seconds per request.
    /// </summary>
    public async Task<string?> WaitHealthyAsync(TimeSpan timeout, params Uri[] bases)
    {
        ArgumentNullException.ThrowIfNull(bases);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
        var clock = Stopwatch.StartNew();
        var pending = bases.ToList();
        while (clock.Elapsed < timeout)
        {
            if (_process.HasExited)
            {
                ExitCode = _process.ExitCode;
                return $"the host exited with code {ExitCode}";
            }

            try
            {
                using var response = await http.GetAsync(new Uri(pending[0], "/healthz"));
                if (response.IsSuccessStatusCode)
                {
                    pending.RemoveAt(0);
                    if (pending.Count == 0)
                    {
                        return null;
                    }

                    continue;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(50);
        }

        return $"{pending[0]}healthz did not answer within {timeout.TotalSeconds} s";
    }

    /// <summary>The exit code once the process exits by itself (its output drained), or null if it still runs after <paramref name="timeout"/>.</summary>
    public int? WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            return null;
        }

        _process.WaitForExit();
        ExitCode = _process.ExitCode;
        _gone = true;
        return ExitCode;
    }

    /// <summary>SIGKILL, then waits until the process is gone and its output drained.</summary>
    /// <param name="entireProcessTree">False keeps what the host started (its dedicated instances) running, as a real crash would.</param>
    public void Kill(bool entireProcessTree = true)
    {
        if (_gone)
        {
            return;
        }

        try
        {
            _process.Kill(entireProcessTree);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }

        if (_process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            _process.WaitForExit();
            ExitCode ??= _process.ExitCode;
            _gone = true;
        }
    }

    /// <summary>SIGTERM; the exit code, or null if it did not exit within <paramref name="timeout"/>.</summary>
    public int? Terminate(TimeSpan timeout)
    {
        if (SendSignal(_process.Id, 15) != 0)
        {
            throw new InvalidOperationException($"kill -TERM {_process.Id} failed.");
        }

        if (!_process.WaitForExit(timeout))
        {
            return null;
        }

        _process.WaitForExit();
        ExitCode = _process.ExitCode;
        _gone = true;
        return ExitCode;
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    /// <summary><paramref name="count"/> distinct loopback ports free right now (the host may still lose one to a race: it exits with code 4, port unavailable).</summary>
    public static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        try
        {
            listeners.ForEach(l => l.Start());
            return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        }
        finally
        {
            listeners.ForEach(l => l.Stop());
        }
    }

    /// <summary>An operator access token (client credentials, scope <c>tenantry:admin</c>) from the host at <paramref name="client"/>'s base address.</summary>
    public static async Task<string> OperatorTokenAsync(HttpClient client, string secret, string clientId = "operator")
    {
        ArgumentNullException.ThrowIfNull(client);
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = clientId,
            ["client_secret"] = secret,
            ["scope"] = "tenantry:admin",
        });
        using var response = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"token: {(int)response.StatusCode} {body}");
        }

        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("access_token").GetString()!;
    }

    /// <summary>The <c>dotnet</c> program running the tests (the one that runs the host).</summary>
    public static string DotnetPath()
    {
        var current = Environment.ProcessPath;
        if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet")
        {
            return current;
        }

        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
