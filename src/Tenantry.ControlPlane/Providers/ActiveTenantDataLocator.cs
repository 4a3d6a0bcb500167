using Tenantry.ControlPlane.Database;
using Tenantry.Data;

namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// Where an app next to the control plane finds a tenant's data: the placement and credentials the
/// database provider keeps, for an active tenant only. A tenant that is unknown, still provisioning,
/// suspended, being offboarded or gone has none (the app answers 503), even with a validly signed
/// context: its database may be half made, being exported, or deleted, and a pool tenant's rows
/// written then would outlive it.
/// </summary>
internal sealed class ActiveTenantDataLocator(IControlPlaneDatabase db, ITenantRegistry tenants, ITenantDatabaseProvider databases) : ITenantDataLocator
{
    public async Task<TenantDataContext?> LocateAsync(Guid tenantId, string slug, IsolationModel isolation, CancellationToken cancellationToken = default)
    {
        var tenant = await db.ReadAsync(c => tenants.GetAsync(c, null, tenantId), cancellationToken);
        if (tenant is not { Status: TenantStatus.Active } || tenant.Slug != slug || tenant.Isolation != isolation)
        {
            return null;
        }

        return await databases.ConnectAsync(TenantRef.ForData(tenantId, slug, isolation), cancellationToken);
    }
}
