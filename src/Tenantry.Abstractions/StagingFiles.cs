namespace Tenantry;

/// <summary>
/// Files written under a temporary name and renamed into place when complete (uploads staged in
/// <c>{DataDir}/tenants/.staging</c>, export archives as <c>*.partial</c>). Their writers hold them open
/// with <see cref="FileShare.None"/>, which on Unix is an exclusive lock that dies with the process, until
/// they are renamed; so such a file that no one holds is what a crash (kill -9 mid-write) left behind. Files
/// younger than <see cref="MinimumAge"/> are left alone: a writer in another process takes its lock just after creating the file.
/// </summary>
public static class StagingFiles
{
    /// <summary>The staging folder's name, beside the tenants' folders and in none of them.</summary>
    public const string FolderName = ".staging";

    /// <summary>How old a file must be (since it was last written) before it can be taken for a leftover.</summary>
    public static readonly TimeSpan MinimumAge = TimeSpan.FromSeconds(1);

    /// <summary>The staging folder of <paramref name="dataDir"/>.</summary>
    public static string Folder(string dataDir)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDir);
        return Path.Combine(Path.GetFullPath(dataDir), "tenants", FolderName);
    }

    /// <summary>
    /// Deletes the files of <paramref name="folder"/> matching <paramref name="pattern"/> that were last
    /// written before <paramref name="now"/> less <see cref="MinimumAge"/> and that no live writer holds.
    /// </summary>
    /// <returns>How many were deleted.</returns>
    public static int DeleteLeftovers(string folder, string pattern, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        if (!Directory.Exists(folder))
        {
            return 0;
        }

        var before = (now - MinimumAge).UtcDateTime;
        var deleted = 0;
        foreach (var file in Directory.EnumerateFiles(folder, pattern, new EnumerationOptions { AttributesToSkip = FileAttributes.ReparsePoint }))
        {
            if (File.GetLastWriteTimeUtc(file) < before && TryDeleteUnheld(file))
            {
                deleted++;
            }
        }

        return deleted;
    }

    /// <summary>Deletes the file unless a writer holds it (its lock is taken for the moment of the delete).</summary>
    private static bool TryDeleteUnheld(string file)
    {
        try
        {
            using var held = new FileStream(file, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            File.Delete(file);
            return true;
        }
        catch (IOException)
        {
            // Held by a live writer, or gone already.
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
