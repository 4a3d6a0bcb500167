using System.Data.Common;
using Tenantry.Billing;

namespace Tenantry.ControlPlane.Tenants;

/// <summary>The tenant registry as billing reads it (<see cref="ITenantDirectory"/>).</summary>
internal sealed class TenantDirectory : ITenantDirectory
{
    public async Task<BilledTenant?> FindAsync(DbConnection connection, DbTransaction? transaction, string idOrSlug) =>
        ToBilled(await TenantStore.FindAsync(connection, transaction, idOrSlug));

    public async Task<BilledTenant?> GetAsync(DbConnection connection, DbTransaction? transaction, Guid id) =>
        ToBilled(await TenantStore.GetAsync(connection, transaction, id));

    public async Task<IReadOnlyList<BilledTenant>> ListAsync(DbConnection connection, DbTransaction? transaction) =>
        [.. (await TenantStore.ListAsync(connection, new TenantFilter(null, null, null, null, int.MaxValue))).Select(t => ToBilled(t)!)];

    private static BilledTenant? ToBilled(Tenant? t) =>
        t is null ? null : new BilledTenant(t.Id, t.Slug, t.Tier, t.Status, t.CreatedAt, t.UpdatedAt);
}
