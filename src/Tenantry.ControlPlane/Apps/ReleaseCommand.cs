namespace Tenantry.ControlPlane.Apps;

/// <summary>
/// Where a release's <c>process.command</c> points: a path (absolute, or relative to the working
/// directory) when it holds a directory separator, else a name looked up on the control plane's
/// <c>PATH</c> and then in the working directory. Registration and instance start resolve alike.
/// </summary>
public static class ReleaseCommand
{
    /// <summary>The full path of the executable, or null when none exists.</summary>
    public static string? Resolve(string command, string? workingDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        if (command.Contains('/', StringComparison.Ordinal) || (OperatingSystem.IsWindows() && command.Contains('\\', StringComparison.Ordinal)))
        {
            if (Path.IsPathRooted(command))
            {
                return Executable(command);
            }

            return workingDirectory is null ? null : Executable(Path.GetFullPath(Path.Combine(workingDirectory, command)));
        }

        var directories = (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(Path.IsPathRooted);
        if (workingDirectory is not null)
        {
            directories = directories.Append(workingDirectory);
        }

        foreach (var directory in directories)
        {
            if (Executable(Path.Combine(directory, command)) is { } found)
            {
                return found;
            }
        }

        return null;
    }

    private static string? Executable(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            var extensions = (Environment.GetEnvironmentVariable("PATHEXT") ?? ".EXE;.CMD;.BAT").Split(';', StringSplitOptions.RemoveEmptyEntries);
            return File.Exists(path) ? path : extensions.Select(e => path + e).FirstOrDefault(File.Exists);
        }

        const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        return File.Exists(path) && (File.GetUnixFileMode(path) & anyExecute) != 0 ? path : null;
    }
}
