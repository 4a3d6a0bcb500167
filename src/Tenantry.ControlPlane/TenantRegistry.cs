using System.Data.Common;

namespace Tenantry.ControlPlane;

/// <summary>
/// The tenant registry as the other features read it; the Tenants feature implements it over
/// the table it owns. Calls take the caller's connection and transaction, so a check of the
/// tenant and the write that follows it see the same state.
/// </summary>
public interface ITenantRegistry
{
    /// <summary>By id or slug, as every <c>{id}</c> in the API accepts both.</summary>
    Task<Tenant?> FindAsync(DbConnection connection, DbTransaction? transaction, string idOrSlug);

    Task<Tenant?> GetAsync(DbConnection connection, DbTransaction? transaction, Guid id);

    Task<List<Tenant>> ListAsync(DbConnection connection, TenantFilter filter);
}
