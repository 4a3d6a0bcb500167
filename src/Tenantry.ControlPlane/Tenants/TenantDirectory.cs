using System.Data.Common;
using Tenantry.Billing;

namespace Tenantry.ControlPlane.Tenants;

/// <summary>
/// The tenant registry as the other features (<see cref="ITenantRegistry"/>) and billing
/// (<see cref="ITenantDirectory"/>) read it: lookups over <see cref="TenantStore"/>.
/// </summary>
internal sealed class TenantDirectory : ITenantRegistry, ITenantDirectory
{
    public Task<Tenant?> FindAsync(DbConnection connection, DbTransaction? transaction, string idOrSlug) =>
        TenantStore.FindAsync(connection, transaction, idOrSlug);

    public Task<Tenant?> GetAsync(DbConnection connection, DbTransaction? transaction, Guid id) =>
        TenantStore.GetAsync(connection, transaction, id);

    public Task<List<Tenant>> ListAsync(DbConnection connection, TenantFilter filter) =>
        TenantStore.ListAsync(connection, filter);

    async Task<BilledTenant?> ITenantDirectory.FindAsync(DbConnection connection, DbTransaction? transaction, string idOrSlug) =>
        ToBilled(await TenantStore.FindAsync(connection, transaction, idOrSlug));

    async Task<BilledTenant?> ITenantDirectory.GetAsync(DbConnection connection, DbTransaction? transaction, Guid id) =>
        ToBilled(await TenantStore.GetAsync(connection, transaction, id));

    async Task<IReadOnlyList<BilledTenant>> ITenantDirectory.ListAsync(DbConnection connection, DbTransaction? transaction) =>
        [.. (await TenantStore.ListAsync(connection, new TenantFilter(null, null, null, null, int.MaxValue))).Select(t => ToBilled(t)!)];

    private static BilledTenant? ToBilled(Tenant? t) =>
        t is null ? null : new BilledTenant(t.Id, t.Slug, t.Tier, t.Status, t.CreatedAt, t.UpdatedAt);
}
