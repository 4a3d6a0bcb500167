using Microsoft.Extensions.Options;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary>
/// Objects as files in the tenant's storage folder (<c>{DataDir}/tenants/{slug}/…</c>, the folder
/// the local folder storage provider provisions). Writes land in a staging file
/// and are renamed into place, so a reader never sees half an object.
/// </summary>
internal sealed class LocalObjectStore(IOptions<TenantryOptions> options) : IObjectStoreProvider
{
    private readonly string _root = Path.GetFullPath(Path.Combine(options.Value.DataPath, "tenants"));

    public string Name => "local";

    public async Task<StoredObject> PutAsync(ObjectKey key, Stream content, CancellationToken cancellationToken)
    {
        var path = FilePath(key);
        var staging = Path.Combine(_root, StagingFiles.FolderName);
        Directory.CreateDirectory(staging);
        var temp = Path.Combine(staging, Guid.NewGuid().ToString("N"));
        try
        {
            // Held (FileShare.None: a lock on Unix) until renamed, so start-up clean-up never takes it for a crash's leftover.
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024, FileOptions.Asynchronous))
            {
                await content.CopyToAsync(file, cancellationToken);
                await file.FlushAsync(cancellationToken);
                try
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    if (Directory.Exists(path))
                    {
                        throw new ObjectConflictException($"'{key.FullKey}' is a folder of other objects.");
                    }

                    File.Move(temp, path, overwrite: true);
                }
                catch (IOException ex) when (ex is not FileNotFoundException)
                {
                    throw new ObjectConflictException($"'{key.FullKey}' cannot be stored: a parent of it is an object.");
                }
            }

            var info = new FileInfo(path);
            return new StoredObject(key.FullKey, info.Length, info.LastWriteTimeUtc);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    public Task<ObjectContent?> GetAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        var path = FilePath(key);
        try
        {
            // Unbuffered (callers copy in large blocks) and no read-ahead hint (a syscall that
            // small objects do not need); length and time both come from the open file, so
            // they describe the content read even when the object is replaced meanwhile.
            var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, bufferSize: 0);
            var modified = File.GetLastWriteTimeUtc(stream.SafeFileHandle);
            return Task.FromResult<ObjectContent?>(new ObjectContent(new StoredObject(key.FullKey, stream.Length, modified), stream));
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            // UnauthorizedAccess: the key names a folder; for an object store that is "no such object".
            return Task.FromResult<ObjectContent?>(null);
        }
    }

    public Task<IReadOnlyList<StoredObject>> ListAsync(ObjectKey prefix, int limit, CancellationToken cancellationToken)
    {
        var result = Files(prefix, cancellationToken).ToList();
        result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return Task.FromResult<IReadOnlyList<StoredObject>>(result.Count > limit ? result[..limit] : result);
    }

    public IAsyncEnumerable<StoredObject> EnumerateAsync(ObjectKey prefix, CancellationToken cancellationToken) =>
        Files(prefix, cancellationToken).ToAsyncEnumerable();

    private IEnumerable<StoredObject> Files(ObjectKey prefix, CancellationToken cancellationToken)
    {
        // Start from the deepest folder the prefix names, then filter by the rest.
        var slug = prefix.Slug;
        var path = prefix.Path;
        var keyPrefix = ObjectKeys.TenantPrefix(slug);
        var folder = TenantFolder(slug);
        var lastSlash = path.LastIndexOf('/');
        var start = lastSlash < 0 ? folder : Path.Combine(folder, path[..lastSlash]);
        if (!Directory.Exists(start))
        {
            yield break;
        }

        foreach (var file in Directory.EnumerateFiles(start, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint }))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var relative = Path.GetRelativePath(folder, file).Replace(Path.DirectorySeparatorChar, '/');
            if (relative.StartsWith(path, StringComparison.Ordinal) && !relative.StartsWith(ObjectKeys.OwnerFile, StringComparison.Ordinal))
            {
                var info = new FileInfo(file);
                yield return new StoredObject(keyPrefix + relative, info.Length, info.LastWriteTimeUtc);
            }
        }
    }

    public Task<bool> DeleteAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        var path = FilePath(key);
        if (!File.Exists(path))
        {
            return Task.FromResult(false);
        }

        File.Delete(path);
        return Task.FromResult(true);
    }

    private string TenantFolder(string slug) => Path.Combine(_root, slug);

    private string FilePath(ObjectKey key)
    {
        // {root}/{slug}/{path}: the key below "tenants/" joined to the root in one string.
        var path = Path.GetFullPath(Path.Join(_root, key.FullKey.AsSpan(ObjectKeys.Root.Length)));
        // Keys are validated already; this is the second lock on the same door.
        var slug = key.SlugSpan;
        var folderEnd = _root.Length + 1 + slug.Length;
        if (path.Length <= folderEnd + 1 || !path.StartsWith(_root, StringComparison.Ordinal) || path[_root.Length] != Path.DirectorySeparatorChar ||
            !path.AsSpan(_root.Length + 1, slug.Length).SequenceEqual(slug) || path[folderEnd] != Path.DirectorySeparatorChar)
        {
            throw new InvalidObjectKeyException("The object key resolves outside the tenant's folder.");
        }

        return path;
    }
}

public static class LocalObjectStorageExtensions
{
    /// <summary>Tenant objects as files under the data dir (the embedded default).</summary>
    public static TenantryBuilder AddLocalObjectStorage(this TenantryBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton<LocalObjectStore>();
        return builder;
    }
}
