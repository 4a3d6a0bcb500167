using System.Buffers;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Tenantry.AspNetCore;

/// <summary>
/// Files in the tenant's storage prefix (<c>{DataDir}/tenants/{slug}/uploads/…</c>). Names are
/// checked before any path is built: one path segment, no dot segments, no separators or control
/// characters, at most <see cref="MaxNameBytes"/> bytes of UTF-8 (what file systems allow in a name),
/// and the resolved path must stay inside the tenant's folder.
/// </summary>
public static class TenantUploads
{
    /// <summary>The longest name in UTF-8 bytes: ext4, XFS, Btrfs and APFS allow 255 per path segment.</summary>
    public const int MaxNameBytes = 255;

    /// <summary>The longest resolved path in UTF-8 bytes (Linux's PATH_MAX is 4096 with the terminator).</summary>
    public const int MaxPathBytes = 4095;

    private static readonly SearchValues<char> Punctuation = SearchValues.Create("._-+=,@() ");

    /// <summary>What <see cref="IsSafeName"/> allows, for problem details.</summary>
    public static string SafeNameRule { get; } =
        $"A name is 1-128 characters and at most {MaxNameBytes} bytes of UTF-8: letters, digits and ._-+=,@() without path separators, control characters, a leading dot or space or a trailing space.";

    /// <summary>
    /// True for a safe file name: 1-128 letters, digits and <c>._-+=,@() </c> and at most
    /// <see cref="MaxNameBytes"/> bytes of UTF-8, not starting with a dot or space and not ending
    /// with a space. Separators, <c>%</c>, control characters and dot segments are never allowed.
    /// </summary>
    public static bool IsSafeName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= 128 && name[0] is not ('.' or ' ') && name[^1] != ' '
        && name.All(c => char.IsLetterOrDigit(c) || Punctuation.Contains(c))
        && (name.Length <= MaxNameBytes / 3 || Encoding.UTF8.GetByteCount(name) <= MaxNameBytes);

    /// <summary>The absolute path of <paramref name="segments"/> under the tenant's uploads folder; throws for an unsafe segment.</summary>
    public static string UploadPath(string dataDir, ITenantContext tenant, params string[] segments)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDir);
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(segments);
        if (!IsSafeName(tenant.Slug) || segments.Any(s => !IsSafeName(s)))
        {
            throw new ArgumentException("Unsafe storage name.", nameof(segments));
        }

        var root = Path.GetFullPath(Path.Combine(dataDir, "tenants", tenant.Slug, "uploads")) + Path.DirectorySeparatorChar;
        var path = Path.GetFullPath(Path.Combine([root, .. segments]));
        if (!path.StartsWith(root, StringComparison.Ordinal))
        {
            throw new ArgumentException("The name resolves outside the tenant's storage.", nameof(segments));
        }

        if (Encoding.UTF8.GetByteCount(path) > MaxPathBytes)
        {
            throw new ArgumentException($"The path is over {MaxPathBytes} bytes.", nameof(segments));
        }

        return path;
    }

    /// <summary>
    /// Reads and discards what is left of <paramref name="content"/> (a refused request's body), at most
    /// <paramref name="maxBytes"/>, so that an answer sent next reaches a client or proxy that reads it only
    /// after sending the whole body. A body that breaks off or goes past what the server takes ends the draining quietly.
    /// </summary>
    /// <returns>True when the body was read to its end.</returns>
    public static async Task<bool> DrainAsync(Stream content, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            long drained = 0;
            while (drained <= maxBytes)
            {
                var read = await content.ReadAsync(buffer, cancellationToken);
                if (read == 0)
                {
                    return true;
                }

                drained += read;
            }

            return false;
        }
        catch (IOException)
        {
            // The client went away, or the server refused more (its own body limit): there is no more to read.
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Stores <paramref name="content"/> at <paramref name="path"/> (from <see cref="UploadPath"/>),
    /// counting bytes as they are copied: past <paramref name="maxBytes"/> it throws
    /// <see cref="UploadTooLargeException"/>, past the tenant's storage quota
    /// <see cref="StorageQuotaExceededException"/>. The bytes go to a staging file outside every
    /// tenant's folder and are renamed into place when complete; on any failure (a limit, the client
    /// going away, an I/O error) the staging file is deleted and what was reserved of the quota is given back.
    /// </summary>
    /// <returns>The bytes stored.</returns>
    public static async Task<long> SaveAsync(
        string dataDir, ITenantContext tenant, string path, Stream content, long maxBytes, ITenantStorageQuota? quota, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDir);
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(content);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);

        // Staged beside the tenants' folders, in none of them, so no listing or export sees half a file.
        var staging = StagingFiles.Folder(dataDir);
        Directory.CreateDirectory(staging);
        var temp = Path.Combine(staging, Guid.NewGuid().ToString("N") + ".upload");
        // The file it replaces is counted already: its size is credit the new bytes use first.
        var credit = quota is not null && File.Exists(path) ? new FileInfo(path).Length : 0;
        long reserved = 0;
        var kept = false;
        try
        {
            long bytes = 0;
            var buffer = ArrayPool<byte>.Shared.Rent(81920);
            try
            {
                // FileShare.None locks the file while it is written and renamed: start-up clean-up leaves it alone.
                await using var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous);
                int read;
                while ((read = await content.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    bytes += read;
                    if (bytes > maxBytes)
                    {
                        throw new UploadTooLargeException(maxBytes);
                    }

                    var beyondCredit = Math.Min(read, bytes - credit);
                    if (quota is not null && beyondCredit > 0)
                    {
                        var check = await quota.TryReserveAsync(tenant.TenantId, tenant.Slug, beyondCredit, cancellationToken);
                        if (!check.Allowed)
                        {
                            throw new StorageQuotaExceededException(check.Limit ?? 0, check.Used);
                        }

                        reserved += beyondCredit;
                    }

                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }

                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.Move(temp, path, overwrite: true);
                kept = true;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            if (quota is not null && credit > bytes)
            {
                quota.Release(tenant.TenantId, credit - bytes);
            }

            return bytes;
        }
        finally
        {
            if (!kept)
            {
                File.Delete(temp);
                if (quota is not null && reserved > 0)
                {
                    quota.Release(tenant.TenantId, reserved);
                }
            }
        }
    }
}

/// <summary>
/// At start, deletes what uploads of a crashed process (kill -9 mid-upload) left in the staging folder:
/// files that no live upload holds.
/// </summary>
internal sealed partial class StagingCleanup(IOptions<TenantryAppOptions> options, TimeProvider time, ILogger<StagingCleanup> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var deleted = StagingFiles.DeleteLeftovers(StagingFiles.Folder(options.Value.DataPath), "*", time.GetUtcNow());
        if (deleted > 0)
        {
            Log.Deleted(logger, deleted);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Deleted {Count} staging files left by an interrupted upload")]
        public static partial void Deleted(ILogger logger, int count);
    }
}

/// <summary>An upload over its size limit, however it was sent (with a length or chunked); nothing of it is kept.</summary>
public sealed class UploadTooLargeException(long limit) : Exception($"The upload is over {limit} bytes.")
{
    /// <summary>The problem-details <c>type</c> of the refusal.</summary>
    public const string ProblemType = "https://tenantry.dev/problems/payload-too-large";

    /// <summary>The size limit in bytes.</summary>
    public long Limit { get; } = limit;
}
