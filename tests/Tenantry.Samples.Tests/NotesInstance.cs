using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Tenantry.Testing;

namespace Tenantry.Samples.Tests;

/// <summary>
/// The notes sample as Tenantry runs it: <c>python3 app.py</c> in its folder, a child process whose environment
/// holds only what the test gives it (nothing of the test's own), on a free loopback port. Stopped by its pid.
/// </summary>
internal sealed class NotesInstance : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan ExitTimeout = TimeSpan.FromSeconds(20);

    private readonly Process _process;
    private readonly StringBuilder _output;

    private NotesInstance(Process process, StringBuilder output, int port)
    {
        _process = process;
        _output = output;
        Port = port;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public int Port { get; }

    public int ProcessId => _process.Id;

    public HttpClient Http { get; }

    /// <summary>What the instance wrote on stdout and stderr so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// The variables of an instance: <c>TENANTRY_APP</c> notes, release 1.0.0, the test key's JWKS, and
    /// <paramref name="database"/> (a file path, given as <c>Data Source=</c>); dedicated to <paramref name="tenant"/> when given.
    /// </summary>
    public static Dictionary<string, string> Environment(string jwks, string database, Guid? tenant = null, string release = "1.0.0") => new(StringComparer.Ordinal)
    {
        ["TENANTRY_APP"] = "notes",
        ["TENANTRY_RELEASE"] = release,
        ["TENANTRY_CONTEXT_JWKS"] = jwks,
        ["TENANTRY_DATABASE"] = "Data Source=" + database,
        ["TENANTRY_TENANT_ID"] = tenant?.ToString() ?? "",
    };

    /// <summary>Starts the instance with <paramref name="environment"/> (and PORT) and waits until it listens.</summary>
    public static async Task<NotesInstance> StartAsync(IReadOnlyDictionary<string, string> environment)
    {
        // A free port can be taken by another process between the probe and the bind: then the instance exits, and another port is tried.
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort();
            var output = new StringBuilder();
            var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var process = Launch(environment, port, [], output, line =>
            {
                if (line.Contains("listening on", StringComparison.Ordinal))
                {
                    listening.TrySetResult();
                }
            });
            var exited = process.WaitForExitAsync();
            var first = await Task.WhenAny(listening.Task, exited, Task.Delay(StartTimeout));
            if (first == listening.Task)
            {
                return new NotesInstance(process, output, port);
            }

            if (first != exited)
            {
                process.Kill();
                await process.WaitForExitAsync();
                throw new TimeoutException($"The notes sample did not listen within {StartTimeout}:\n{Text(output)}");
            }

            await exited;
            if (attempt == 3 || !Text(output).Contains("cannot listen", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"The notes sample exited with {process.ExitCode}:\n{Text(output)}");
            }
        }
    }

    /// <summary>Runs <c>python3 app.py</c> with <paramref name="args"/> to its end: exit code, stdout, stderr.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        using var process = new Process { StartInfo = StartInfo(environment, args) };
        process.OutputDataReceived += (_, e) => Append(stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(stderr, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(ExitTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw new TimeoutException($"python3 app.py {string.Join(' ', args)} did not end within {ExitTimeout}.");
        }

        process.WaitForExit(); // the rest of the redirected output
        return (process.ExitCode, Text(stdout), Text(stderr));
    }

    /// <summary>Sends SIGTERM (as Tenantry stops an instance) and waits for the exit code.</summary>
    public async Task<int> TerminateAsync()
    {
        Assert.True(LocalProcesses.Signal(_process.Id, LocalProcesses.SigTerm), "the instance was gone before SIGTERM");
        using var timeout = new CancellationTokenSource(ExitTimeout);
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill();
            using var timeout = new CancellationTokenSource(ExitTimeout);
            await _process.WaitForExitAsync(timeout.Token);
        }

        _process.Dispose();
    }

    private static Process Launch(IReadOnlyDictionary<string, string> environment, int port, string[] args, StringBuilder output, Action<string> onLine)
    {
        var variables = new Dictionary<string, string>(environment, StringComparer.Ordinal) { ["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var process = new Process { StartInfo = StartInfo(variables, args) };
        void Line(string? line)
        {
            if (line is not null)
            {
                Append(output, line);
                onLine(line);
            }
        }

        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static ProcessStartInfo StartInfo(IReadOnlyDictionary<string, string> environment, string[] args)
    {
        var info = new ProcessStartInfo("python3")
        {
            WorkingDirectory = NotesSample.Folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("app.py");
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        // Only what Tenantry would give the instance: none of the test process's variables.
        info.Environment.Clear();
        foreach (var (name, value) in environment)
        {
            if (value.Length > 0)
            {
                info.Environment[name] = value;
            }
        }

        return info;
    }

    private static void Append(StringBuilder text, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (text)
        {
            text.AppendLine(line);
        }
    }

    private static string Text(StringBuilder text)
    {
        lock (text)
        {
            return text.ToString();
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
