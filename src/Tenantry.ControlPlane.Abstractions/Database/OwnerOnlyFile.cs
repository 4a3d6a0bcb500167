namespace Tenantry.ControlPlane.Database;

/// <summary>
/// Creates a file its owner alone can read and write (0600) before another library opens it: SQLite
/// creates a database with the process's default mode, and its -wal and -shm files take the database's.
/// </summary>
public static class OwnerOnlyFile
{
    public static void Ensure(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (OperatingSystem.IsWindows() || File.Exists(path))
        {
            return;
        }

        try
        {
            using var created = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        catch (IOException) when (File.Exists(path))
        {
            // Created meanwhile by whoever else opens it; its mode is theirs to set.
        }
    }
}
