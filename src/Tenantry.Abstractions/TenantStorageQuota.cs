namespace Tenantry;

/// <summary>
/// The bytes a tenant stores, held against the hard <c>storage_bytes</c> quota of its plan. A write
/// reserves its bytes as they arrive, so one past the quota stops there and stores nothing;
/// whatever a write does not keep (it failed, or it replaced or deleted an object) is released.
/// </summary>
public interface ITenantStorageQuota
{
    /// <summary>Takes <paramref name="bytes"/> more of the tenant's quota; when they would pass it, takes nothing and says so.</summary>
    ValueTask<StorageQuotaCheck> TryReserveAsync(Guid tenantId, string slug, long bytes, CancellationToken cancellationToken = default);

    /// <summary>Gives back bytes taken earlier or freed since (a failed write, a replaced or deleted object).</summary>
    void Release(Guid tenantId, long bytes);
}

/// <summary>The answer to a reservation: <see cref="Limit"/> is null when the tenant's plan has no hard storage quota.</summary>
public readonly record struct StorageQuotaCheck(bool Allowed, long? Limit, long Used)
{
    /// <summary>The answer for a tenant without a hard storage quota.</summary>
    public static StorageQuotaCheck Unlimited { get; } = new(true, null, 0);
}

/// <summary>A write refused because it would take the tenant past its storage quota; nothing of it is kept.</summary>
public sealed class StorageQuotaExceededException(long limit, long used)
    : Exception($"The write would pass the storage quota of {limit} bytes ({used} in use).")
{
    /// <summary>The problem-details <c>type</c> of the refusal.</summary>
    public const string ProblemType = "https://tenantry.dev/problems/storage-quota-exceeded";

    /// <summary>The tenant's quota in bytes.</summary>
    public long Limit { get; } = limit;

    /// <summary>The bytes the tenant used when the write was refused.</summary>
    public long Used { get; } = used;
}
