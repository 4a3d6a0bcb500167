using System.Data.Common;
using System.Text.Json.Nodes;
using Tenantry.Billing;

namespace Tenantry.ControlPlane.Tenants;

/// <summary>
/// The tenant registry as the other features (<see cref="ITenantRegistry"/>) and billing
/// (<see cref="ITenantDirectory"/>) read it: lookups over <see cref="TenantStore"/>.
/// </summary>
internal sealed class TenantDirectory : ITenantRegistry, ITenantDirectory, IDedicatedResources
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

    async Task<IReadOnlyList<DedicatedHoldings>> IDedicatedResources.ListAsync(DbConnection connection, DbTransaction? transaction) =>
        [.. (await TenantStore.ListAsync(connection, new TenantFilter(null, null, null, null, int.MaxValue))).Select(Holdings)];

    /// <summary>
    /// What the tenant holds by its resources; an offboarded tenant's resources are cleared, so what it held
    /// until then follows from its isolation model (silo: a database and a dedicated instance; bridge: a schema).
    /// </summary>
    private static DedicatedHoldings Holdings(Tenant t)
    {
        if (t.Status == TenantStatus.Offboarded)
        {
            return new DedicatedHoldings(t.Id, t.Isolation == IsolationModel.Silo, t.Isolation == IsolationModel.Bridge, t.Isolation == IsolationModel.Silo);
        }

        var database = t.Resources["database"] is JsonNode node && node.GetValueKind() != System.Text.Json.JsonValueKind.Null;
        var dedicated = t.Resources["compute"] is JsonObject compute && compute["mode"]?.GetValue<string>() == "dedicated";
        return new DedicatedHoldings(t.Id, database && t.Isolation == IsolationModel.Silo, database && t.Isolation == IsolationModel.Bridge, dedicated);
    }

    private static BilledTenant? ToBilled(Tenant? t) =>
        t is null ? null : new BilledTenant(t.Id, t.Slug, t.Tier, t.Status, t.CreatedAt, t.UpdatedAt);
}
