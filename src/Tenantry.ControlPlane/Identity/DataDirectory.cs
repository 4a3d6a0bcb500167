using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// The data directory, locked to this process: two hosts writing one embedded store would
/// break its guarantees, so the second fails fast with a clear message. Its files are the
/// owner's alone: the directory is 0700, so nothing in it is reachable by other users.
/// </summary>
internal sealed class DataDirectory : IDisposable
{
    /// <summary>Mode of every folder under the data dir.</summary>
    public const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Mode of every file under the data dir.</summary>
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly FileStream _lock;

    public DataDirectory(IOptions<TenantryOptions> options)
    {
        Root = options.Value.DataPath;
        try
        {
            CreateFolder(Root);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(Root, FolderMode);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new TenantryStartupException(StartupProblem.DataDirectory, $"Tenantry:DataDir: cannot create {Root} ({ex.Message}); start with --data-dir <a folder this user can write>.", ex);
        }

        var lockPath = Path.Combine(Root, ".lock");
        try
        {
            var lockOptions = new FileStreamOptions { Mode = System.IO.FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                lockOptions.UnixCreateMode = FileMode;
            }

            _lock = new FileStream(lockPath, lockOptions);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new TenantryStartupException(StartupProblem.DataDirectory, $"Tenantry:DataDir: cannot write to {Root} ({ex.Message}); start with --data-dir <a folder this user can write>.", ex);
        }
        catch (IOException ex)
        {
            throw new TenantryStartupException(StartupProblem.DataDirectoryInUse, $"Tenantry:DataDir: another Tenantry host is using the data directory {Root}. Stop it, or start this one with --data-dir <other folder>.", ex);
        }
    }

    public string Root { get; }

    /// <summary>Creates <paramref name="path"/> and any missing parents as 0700 folders.</summary>
    public static void CreateFolder(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, FolderMode);
        }
    }

    /// <summary>Writes a secret file readable by its owner only (0600), atomically.</summary>
    public static void WriteSecret(string path, string content) =>
        AtomicFile.Write(path, content, FileMode);

    public void Dispose() => _lock.Dispose();
}
