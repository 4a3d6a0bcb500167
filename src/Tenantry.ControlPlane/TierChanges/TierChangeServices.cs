using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Routing;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>The tenants frozen by a tier change, for the routing table.</summary>
internal sealed class FrozenTenants(IControlPlaneDatabase db) : IFrozenTenants
{
    public Task<HashSet<Guid>> ListAsync(CancellationToken cancellationToken) => db.ReadAsync(TierChangeStore.FrozenAsync, cancellationToken);
}

public static class TierChangeServiceCollectionExtensions
{
    /// <summary>Tier changes that move a tenant's data: the operation's steps, the retirement of old copies, the freeze the gateway sees.</summary>
    public static IServiceCollection AddTenantryTierChanges(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<TierChangeOptions>().BindConfiguration(TierChangeOptions.Section).ValidateSettings(TierChangeOptions.Section).ValidateOnStart();
        services.TryAddSingleton<TierChangeHooks>();
        services.TryAddSingleton<TierChangeSteps>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IOperationSteps, TierChangeSteps>(sp => sp.GetRequiredService<TierChangeSteps>()));
        services.TryAddSingleton<IFrozenTenants, FrozenTenants>();
        services.TryAddSingleton<TierChangeRetirer>();
        services.AddHostedService(sp => sp.GetRequiredService<TierChangeRetirer>());
        return services;
    }
}
