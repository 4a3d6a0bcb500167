using Microsoft.Extensions.Options;
using Tenantry.Billing;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Routing;

/// <summary>The tenants billing's built-in meters sample (<see cref="IRunningTenants"/>), with their folders in the data dir.</summary>
internal sealed class RunningTenants(IControlPlaneDatabase db, IOptions<TenantryOptions> options) : IRunningTenants
{
    public async Task<IReadOnlyList<RunningTenant>> ListAsync(CancellationToken cancellationToken)
    {
        var root = Path.Combine(options.Value.DataPath, "tenants");
        var tenants = await db.ReadAsync(RouteStore.RunningTenantsAsync, cancellationToken);
        return [.. tenants.Select(t => new RunningTenant(t.Id, t.Slug, Path.Combine(root, t.Slug), t.Dedicated))];
    }
}
