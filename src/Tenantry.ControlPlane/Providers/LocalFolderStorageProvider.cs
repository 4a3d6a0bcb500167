using System.IO.Compression;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Storage;

namespace Tenantry.ControlPlane.Providers;

/// <summary>Tenant storage as local folders: <c>{DataDir}/tenants/{slug}/{uploads,exports}</c>.</summary>
internal sealed class LocalFolderStorageProvider(IOptions<TenantryOptions> options) : ITenantStorageProvider
{
    private const string OwnerFile = ".tenant-id";
    private const string ExportsFolder = "exports";
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

    public Task ExportAsync(TenantRef tenant, ZipArchive archive, CancellationToken cancellationToken)
    {
        var folder = TenantFolder(tenant);
        if (!Directory.Exists(folder))
        {
            return Task.CompletedTask;
        }

        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var relative = Path.GetRelativePath(folder, file).Replace('\\', '/');
            if (relative.StartsWith(ExportsFolder + "/", StringComparison.Ordinal) || relative == OwnerFile)
            {
                continue;
            }

            archive.CreateEntryFromFile(file, "files/" + relative, CompressionLevel.Fastest);
        }

        return Task.CompletedTask;
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

        var temp = target + ".partial";
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            await write(stream);
            await stream.FlushAsync(cancellationToken);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, target, overwrite: true);
        return target;
    }

    public Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var folder = TenantFolder(tenant);
        if (!Directory.Exists(folder))
        {
            return Task.CompletedTask;
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

        return Task.CompletedTask;
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
