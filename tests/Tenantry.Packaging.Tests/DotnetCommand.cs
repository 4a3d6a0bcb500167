using System.Diagnostics;
using System.Text;
using Tenantry.Testing;

namespace Tenantry.Packaging.Tests;

/// <summary>
/// The <c>dotnet</c> CLI as a developer runs it in a shell: the SDK that runs these tests, without the
/// MSBuild and test-host variables of the test run, in English, with no build servers left behind.
/// </summary>
internal static class DotnetCommand
{
    /// <summary>Runs <c>dotnet <paramref name="arguments"/></c>; its output, or an exception with the output when it fails or outlasts <paramref name="timeout"/>.</summary>
    public static async Task<string> RunAsync(string workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment, params string[] arguments)
    {
        var start = new ProcessStartInfo(TenantryHost.DotnetPath())
        {
            WorkingDirectory = workingDirectory,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var name in start.Environment.Keys.Where(IsOfTheTestRun).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["DOTNET_CLI_UI_LANGUAGE"] = "en";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new InvalidOperationException($"dotnet {string.Join(' ', arguments)} did not finish within {timeout}:\n{Text(output)}");
        }

        // The asynchronous readers are done once WaitForExit without a timeout returns.
        process.WaitForExit();
        return process.ExitCode == 0
            ? Text(output)
            : throw new InvalidOperationException($"dotnet {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{Text(output)}");
    }

    // What `dotnet test` and MSBuild put in the test's environment, which would steer a nested build.
    private static bool IsOfTheTestRun(string name) =>
        name.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("TESTINGPLATFORM", StringComparison.OrdinalIgnoreCase)
        || name.Equals("DOTNET_HOST_PATH", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("TENANTRY_", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("Tenantry__", StringComparison.OrdinalIgnoreCase);

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
        }
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }
}
