using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.ObjectStorage;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// Tenant storage as local folders: <c>{DataDir}/tenants/{slug}/{uploads,exports}</c>, where export
/// archives are kept. The tenant's objects are exported and deleted through
/// <see cref="IObjectStoreProvider"/>, so offboarding works the same on local folders and on S3.
/// </summary>
internal sealed class LocalFolderStorageProvider(IOptions<TenantryOptions> options, IObjectStoreProvider objects, TenantStorageUsage? usage = null) : ITenantStorageProvider
{
    private const string OwnerFile = ObjectKeys.OwnerFile;
    private const string ExportsFolder = ObjectKeys.ExportsFolder;
    private readonly string _root = Path.Combine(options.Value.DataPath, "tenants");

    public async Task<JsonObject> ProvisionAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var folder = TenantFolder(tenant);
        var owner = Path.Combine(folder, OwnerFile);
        var existing = File.Exists(owner) ? (await File.ReadAllTextAsync(owner, cancellationToken)).Trim() : "";
        if (existing.Length > 0)
        {
            if (existing != tenant.Id.ToString())
            {
                throw new PermanentStepException($"The storage prefix tenants/{tenant.Slug}/ belongs to another tenant ({existing}).");
            }
        }
        else
        {
            Directory.CreateDirectory(folder);
            AtomicFile.Write(owner, tenant.Id.ToString());
        }

        Directory.CreateDirectory(Path.Combine(folder, "uploads"));
        Directory.CreateDirectory(Path.Combine(folder, ExportsFolder));
        return new JsonObject
        {
            ["provider"] = "local",
            ["prefix"] = $"tenants/{tenant.Slug}/",
            ["path"] = folder,
        };
    }

    public async Task ExportAsync(TenantRef tenant, ZipArchive archive, CancellationToken cancellationToken)
    {
        await foreach (var key in ObjectKeysAsync(tenant, cancellationToken))
        {
            if (!ObjectKeys.IsValid(key.FullKey))
            {
                continue;
            }

            await using var content = await objects.GetAsync(key, cancellationToken);
            if (content is null)
            {
                continue; // Deleted since it was listed.
            }

            var entry = archive.CreateEntry("files/" + key.Path, CompressionLevel.Fastest);
            entry.LastWriteTime = content.Info.LastModified;
            await using var target = await entry.OpenAsync(cancellationToken);
            await content.Stream.CopyToAsync(target, cancellationToken);
        }
    }

    public async Task<string> SaveExportAsync(TenantRef tenant, string name, Func<Stream, Task> write, CancellationToken cancellationToken)
    {
        var exports = Path.Combine(TenantFolder(tenant), ExportsFolder);
        Directory.CreateDirectory(exports);
        var target = Path.Combine(exports, name);
        if (File.Exists(target))
        {
            return target; // Written whole before a crash: the rename below is the commit point.
        }

        // Held (FileShare.None: a lock on Unix) until renamed, so start-up clean-up only takes a crash's leftover.
        var temp = target + ".partial";
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            await write(stream);
            await stream.FlushAsync(cancellationToken);
            stream.Flush(flushToDisk: true);
            File.Move(temp, target, overwrite: true);
        }

        return target;
    }

    public async Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        // Listed first, then deleted: a listing is not paged over keys being removed.
        var keys = new List<ObjectKey>();
        await foreach (var key in ObjectKeysAsync(tenant, cancellationToken))
        {
            keys.Add(key);
        }

        foreach (var key in keys)
        {
            await objects.DeleteAsync(key, cancellationToken);
        }

        usage?.Forget(tenant.Id);

        // What is left of the folder (empty folders; with S3, the provisioned ones) goes too.
        var folder = TenantFolder(tenant);
        if (!Directory.Exists(folder))
        {
            return;
        }

        foreach (var directory in Directory.EnumerateDirectories(folder))
        {
            if (Path.GetFileName(directory) != ExportsFolder)
            {
                Directory.Delete(directory, recursive: true);
            }
        }

        foreach (var file in Directory.EnumerateFiles(folder))
        {
            if (Path.GetFileName(file) != OwnerFile)
            {
                File.Delete(file);
            }
        }
    }

    /// <summary>
    /// The tenant's objects but its exports. Keys are taken as listed, so an object written to the
    /// bucket by other means (a key Tenantry would refuse) is deleted too; it is not exported, as
    /// its name could climb out of the archive's folder.
    /// </summary>
    private async IAsyncEnumerable<ObjectKey> ObjectKeysAsync(TenantRef tenant, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var prefix = ObjectKeys.TenantPrefix(tenant.Slug);
        await foreach (var o in objects.EnumerateAsync(new ObjectKey(prefix, tenant.Slug.Length), cancellationToken))
        {
            var path = o.Key[prefix.Length..];
            if (path.StartsWith(ExportsFolder + "/", StringComparison.Ordinal))
            {
                continue;
            }

            yield return new ObjectKey(o.Key, tenant.Slug.Length);
        }
    }

    private string TenantFolder(TenantRef tenant)
    {
        // The slug is validated ([a-z0-9-]), so it cannot climb out; check anyway, cheaply.
        var folder = Path.GetFullPath(Path.Combine(_root, tenant.Slug));
        if (!folder.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new PermanentStepException("The tenant's storage prefix resolves outside the storage root.");
        }

        return folder;
    }
}
