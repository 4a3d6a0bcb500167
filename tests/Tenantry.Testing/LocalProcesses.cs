using System.Globalization;
using System.Runtime.InteropServices;

namespace Tenantry.Testing;

/// <summary>Looks at and signals local processes through <c>/proc</c> and <c>kill(2)</c>, by pid only.</summary>
public static class LocalProcesses
{
    public const int SigKill = 9;
    public const int SigTerm = 15;
    public const int SigCont = 18;
    public const int SigStop = 19;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when it is gone.</summary>
    public static bool Signal(int pid, int signal) => pid > 0 && SendSignal(pid, signal) == 0;

    /// <summary>True while <paramref name="pid"/> exists and has not exited (a zombie has).</summary>
    public static bool IsRunning(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..][0] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>True when <paramref name="pid"/> runs with <paramref name="text"/> on its command line (so it is not a recycled pid).</summary>
    public static bool IsRunning(int pid, string text)
    {
        try
        {
            return IsRunning(pid) && File.ReadAllText($"/proc/{pid}/cmdline").Contains(text, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The environment <paramref name="pid"/> was started with.</summary>
    public static Dictionary<string, string> Environment(int pid) => File.ReadAllText($"/proc/{pid}/environ")
        .Split('\0', StringSplitOptions.RemoveEmptyEntries)
        .Select(entry => entry.Split('=', 2))
        .GroupBy(pair => pair[0], StringComparer.Ordinal)
        .ToDictionary(g => g.Key, g => g.Last().ElementAtOrDefault(1) ?? "", StringComparer.Ordinal);

    /// <summary>The running children of <paramref name="pid"/>.</summary>
    public static List<int> Children(int pid)
    {
        var children = new List<int>();
        foreach (var folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), NumberStyles.None, CultureInfo.InvariantCulture, out var candidate))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(folder, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (fields[1] == pid.ToString(CultureInfo.InvariantCulture) && fields[0] is not ("Z" or "X"))
                {
                    children.Add(candidate);
                }
            }
            catch (IOException)
            {
            }
        }

        return children;
    }

    /// <summary>Waits (at most <paramref name="timeout"/>) until none of <paramref name="pids"/> runs; the ones still running.</summary>
    public static async Task<List<int>> WaitGoneAsync(IEnumerable<int> pids, TimeSpan timeout)
    {
        var running = pids.ToList();
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            running.RemoveAll(pid => !IsRunning(pid));
            if (running.Count == 0 || DateTime.UtcNow > deadline)
            {
                return running;
            }

            await Task.Delay(50);
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SendSignal(int pid, int signal);
}
