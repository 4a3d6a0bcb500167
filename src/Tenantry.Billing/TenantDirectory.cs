using System.Data.Common;

namespace Tenantry.Billing;

/// <summary>A tenant as billing needs it: who it is, its tier (the plan it is on without a plan change) and its life span.</summary>
public sealed record BilledTenant(Guid Id, string Slug, string Tier, TenantStatus Status, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>
/// The tenant registry as billing reads it. Billing publishes it and the control plane's tenant
/// registry implements it. Calls take the caller's connection and transaction, so a check of the
/// tenant and the billing write that follows it see the same state.
/// </summary>
public interface ITenantDirectory
{
    /// <summary>By id or slug, as every <c>{id}</c> in the API accepts both; null when there is no such tenant.</summary>
    Task<BilledTenant?> FindAsync(DbConnection connection, DbTransaction? transaction, string idOrSlug);

    Task<BilledTenant?> GetAsync(DbConnection connection, DbTransaction? transaction, Guid id);

    /// <summary>Every tenant, offboarded ones included.</summary>
    Task<IReadOnlyList<BilledTenant>> ListAsync(DbConnection connection, DbTransaction? transaction);
}

/// <summary>A tenant whose app is deployed: where its files are and whether it runs on dedicated compute.</summary>
public sealed record RunningTenant(Guid Id, string Slug, string Folder, bool Dedicated);

/// <summary>The tenants the built-in meters sample (active or suspended), published by billing and implemented by the control plane.</summary>
public interface IRunningTenants
{
    Task<IReadOnlyList<RunningTenant>> ListAsync(CancellationToken cancellationToken);
}

/// <summary>What a tenant holds of its own, as the price book charges it: a silo database, a bridge schema, a dedicated app instance.</summary>
public sealed record DedicatedHoldings(Guid TenantId, bool Database, bool Schema, bool Instance);

/// <summary>The dedicated resources of every tenant, read from the tenants' resources; published by billing and implemented by the control plane.</summary>
public interface IDedicatedResources
{
    /// <summary>One entry per tenant, offboarded ones included (what they held before offboarding, by their isolation model).</summary>
    Task<IReadOnlyList<DedicatedHoldings>> ListAsync(DbConnection connection, DbTransaction? transaction);
}
