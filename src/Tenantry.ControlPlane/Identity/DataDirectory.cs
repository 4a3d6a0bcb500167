using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// The data directory, locked to this process: two hosts writing one embedded store would
/// break its guarantees, so the second fails fast with a clear message.
/// </summary>
internal sealed class DataDirectory : IDisposable
{
    private readonly FileStream _lock;

    public DataDirectory(IOptions<TenantryOptions> options)
    {
        Root = options.Value.DataPath;
        Directory.CreateDirectory(Root);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        try
        {
            _lock = new FileStream(Path.Combine(Root, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex)
        {
            throw new InvalidOperationException($"Another Tenantry host is using the data directory {Root}. Stop it, or start this one with --data-dir <other folder>.", ex);
        }
    }

    public string Root { get; }

    /// <summary>Writes a secret file readable by its owner only (0600), atomically.</summary>
    public static void WriteSecret(string path, string content) =>
        AtomicFile.Write(path, content, UnixFileMode.UserRead | UnixFileMode.UserWrite);

    public void Dispose() => _lock.Dispose();
}
