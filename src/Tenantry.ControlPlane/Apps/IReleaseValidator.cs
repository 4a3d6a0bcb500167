using Tenantry.ControlPlane.Http;

namespace Tenantry.ControlPlane.Apps;

/// <summary>
/// Tries a release's SQL before the release is stored: its migrations, in order, then its seed, on
/// a throw-away database of the engine tenants use, shaped like the pool (the strictest model).
/// </summary>
public interface IReleaseValidator
{
    /// <returns>
    /// Null when everything ran and the result keeps the pool's rules; else the problem: 422
    /// <c>migration-failed</c> (with the migration and the database's message),
    /// <c>pool-rules-violated</c>, <c>seed-failed</c>; 503 when the database cannot be reached.
    /// </returns>
    Task<ApiError?> ValidateAsync(IReadOnlyList<ReleaseMigration> migrations, ReleaseSeed? seed, CancellationToken cancellationToken);
}
