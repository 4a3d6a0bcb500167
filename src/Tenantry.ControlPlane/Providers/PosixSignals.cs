using System.Runtime.InteropServices;

namespace Tenantry.ControlPlane.Providers;

/// <summary>Signals to processes: .NET sends SIGKILL only (<see cref="System.Diagnostics.Process.Kill()"/>), a graceful stop needs SIGTERM.</summary>
internal static class PosixSignals
{
    private const int SigTerm = 15;

    /// <summary>Asks <paramref name="pid"/> to stop; false when it is gone (or not ours to signal).</summary>
    public static bool Terminate(int pid) => pid > 0 && Kill(pid, SigTerm) == 0;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Kill(int pid, int signal);
}
