using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Tenantry.ControlPlane.Tests.Objects;

/// <summary>
/// A private s3rver (an S3-compatible server from npm) on a random loopback port with a temp data
/// directory, for the S3 provider tests. test.sh installs it into tests/.tools; TENANTRY_S3RVER
/// may name another s3rver executable.
/// </summary>
public sealed partial class S3rverServer : IAsyncLifetime
{
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";

    private readonly string _data = Path.Combine(Path.GetTempPath(), "tenantry-s3rver", Guid.NewGuid().ToString("N"));
    private Process? _process;

    public string ServiceUrl { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var executable = Find() ?? throw new InvalidOperationException(
            "s3rver was not found: run ./test.sh (it installs it into tests/.tools) or `npm install --prefix tests/.tools s3rver@3.7.1`, or set TENANTRY_S3RVER.");
        Directory.CreateDirectory(_data);
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "-d", _data, "-a", "127.0.0.1", "-p", "0" })
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("s3rver did not start.");
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        while (true)
        {
            var line = await _process.StandardOutput.ReadLineAsync(timeout.Token)
                ?? throw new InvalidOperationException($"s3rver exited ({(_process.HasExited ? _process.ExitCode : -1)}) before listening.");
            if (Listening().Match(line) is { Success: true } match)
            {
                ServiceUrl = $"http://127.0.0.1:{match.Groups[1].Value}";
                break;
            }
        }

        // Keep draining its log so it never blocks on a full pipe.
        _ = Task.Run(async () =>
        {
            while (await _process.StandardOutput.ReadLineAsync() is not null)
            {
            }
        });
    }

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static string? Find()
    {
        if (Environment.GetEnvironmentVariable("TENANTRY_S3RVER") is { Length: > 0 } configured && File.Exists(configured))
        {
            return configured;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Tenantry.slnx")))
            {
                var local = Path.Combine(dir.FullName, "tests", ".tools", "node_modules", ".bin", "s3rver");
                return File.Exists(local) ? local : null;
            }
        }

        return null;
    }

    [GeneratedRegex(@"listening on [0-9.]+:([0-9]+)")]
    private static partial Regex Listening();
}
