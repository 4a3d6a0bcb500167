namespace Tenantry.Data;

/// <summary>
/// Finds where a tenant's data lives and the credentials its session uses, from the placement and
/// secrets the control plane keeps. A host that runs an app next to its control plane registers one
/// in the app's services; an app without one uses its own configuration.
/// </summary>
public interface ITenantDataLocator
{
    /// <summary>The tenant's data context, or null when it has no database (yet or any more).</summary>
    Task<TenantDataContext?> LocateAsync(Guid tenantId, string slug, IsolationModel isolation, CancellationToken cancellationToken = default);
}
