using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary>
/// At start, deletes what writes cut short by a crash (kill -9) left in the tenants' storage: staged
/// objects and uploads (<c>tenants/.staging</c>), half-written export archives (<c>exports/*.partial</c>)
/// and owner files' temporary copies. Each is a file that no live writer holds; the whole file was never renamed into place, so nothing refers to it.
/// </summary>
internal sealed partial class StorageLeftovers(IOptions<TenantryOptions> options, TimeProvider time, ILogger<StorageLeftovers> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var dataDir = options.Value.DataPath;
        var before = time.GetUtcNow();
        var deleted = StagingFiles.DeleteLeftovers(StagingFiles.Folder(dataDir), "*", before);
        var tenants = Path.Combine(dataDir, "tenants");
        if (Directory.Exists(tenants))
        {
            foreach (var folder in Directory.EnumerateDirectories(tenants, "*", new EnumerationOptions { AttributesToSkip = FileAttributes.ReparsePoint }))
            {
                if (Path.GetFileName(folder) == StagingFiles.FolderName)
                {
                    continue;
                }

                deleted += StagingFiles.DeleteLeftovers(folder, ObjectKeys.OwnerFile + ".tmp", before);
                deleted += StagingFiles.DeleteLeftovers(Path.Combine(folder, ObjectKeys.ExportsFolder), "*.partial", before);
            }
        }

        if (deleted > 0)
        {
            Log.Deleted(logger, deleted);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(7101, LogLevel.Information, "Deleted {Count} temporary storage files left by interrupted writes")]
        public static partial void Deleted(ILogger logger, int count);
    }
}
