using System.Collections.Concurrent;
using Tenantry.Billing.Entitlements;

namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary>
/// The bytes each tenant stores, held against the hard <c>storage_bytes</c> quota of its plan.
/// A tenant's total is counted once (listing its prefix, on its first write after a start, so it
/// is right after a restart), then kept up to date by the writes and deletes themselves: no write
/// walks the tenant's folder. Tenants whose plan has no hard storage quota are not tracked at all.
/// </summary>
internal sealed class TenantStorageUsage(IObjectStoreProvider objects, ITenantQuotas entitlements) : ITenantStorageQuota
{
    private readonly ConcurrentDictionary<Guid, Lazy<Task<Usage>>> _usage = new();

    /// <summary>The tenant's hard storage quota in bytes; null when its plan has none.</summary>
    public Task<long?> LimitAsync(Guid tenantId, CancellationToken cancellationToken) => entitlements.StorageLimitAsync(tenantId, cancellationToken);

    public async ValueTask<StorageQuotaCheck> TryReserveAsync(Guid tenantId, string slug, long bytes, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (await LimitAsync(tenantId, cancellationToken) is not { } limit)
        {
            // Untracked: a quota added later counts the tenant afresh.
            _usage.TryRemove(tenantId, out _);
            return StorageQuotaCheck.Unlimited;
        }

        var usage = await UsageAsync(tenantId, slug, cancellationToken);
        lock (usage)
        {
            if (usage.Bytes + bytes > limit)
            {
                return new StorageQuotaCheck(false, limit, usage.Bytes);
            }

            usage.Bytes += bytes;
            return new StorageQuotaCheck(true, limit, usage.Bytes);
        }
    }

    public void Release(Guid tenantId, long bytes)
    {
        if (bytes > 0 && _usage.TryGetValue(tenantId, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
        {
            var usage = lazy.Value.Result;
            lock (usage)
            {
                usage.Bytes = Math.Max(0, usage.Bytes - bytes);
            }
        }
    }

    /// <summary>Drops what is known of the tenant (its files were deleted): a tenant of the same id starts from a fresh count.</summary>
    public void Forget(Guid tenantId) => _usage.TryRemove(tenantId, out _);

    private async Task<Usage> UsageAsync(Guid tenantId, string slug, CancellationToken cancellationToken)
    {
        var lazy = _usage.GetOrAdd(tenantId, _ => new Lazy<Task<Usage>>(() => CountAsync(slug)));
        try
        {
            return await lazy.Value.WaitAsync(cancellationToken);
        }
        catch (Exception) when (lazy.Value.IsFaulted)
        {
            _usage.TryRemove(KeyValuePair.Create(tenantId, lazy));
            throw;
        }
    }

    private async Task<Usage> CountAsync(string slug)
    {
        var prefix = ObjectKeys.ParsePrefix(ObjectKeys.TenantPrefix(slug));
        var usage = new Usage();
        await foreach (var o in objects.EnumerateAsync(prefix, CancellationToken.None))
        {
            usage.Bytes += o.Size;
        }

        return usage;
    }

    private sealed class Usage
    {
        public long Bytes { get; set; }
    }
}

/// <summary>
/// Reserves the tenant's quota for the bytes read through it, after the first <paramref name="credit"/>
/// (the size of the object it replaces, already counted). <see cref="Reserved"/> is what to give back
/// if the write fails, <see cref="UnusedCredit"/> what the stored object frees once it is in place.
/// </summary>
internal sealed class QuotaStream(Stream inner, ITenantStorageQuota quota, Guid tenantId, string slug, long credit = 0) : ReadThroughStream(inner)
{
    public long Reserved { get; private set; }

    public long UnusedCredit => Math.Max(0, credit - Position);

    protected override async ValueTask CheckAsync(long before, int read, CancellationToken cancellationToken)
    {
        var beyondCredit = Math.Min(read, before + read - credit);
        if (beyondCredit <= 0)
        {
            return;
        }

        var check = await quota.TryReserveAsync(tenantId, slug, beyondCredit, cancellationToken);
        if (!check.Allowed)
        {
            throw new StorageQuotaExceededException(check.Limit ?? 0, check.Used);
        }

        Reserved += beyondCredit;
    }
}
