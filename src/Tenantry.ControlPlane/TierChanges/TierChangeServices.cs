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

/// <summary>A <c>move</c> operation (to another cell) runs the tier change's steps: its <c>tier_changes</c> row names the target cell.</summary>
internal sealed class MoveSteps(TierChangeSteps steps) : IOperationSteps
{
    public OperationKind Kind => OperationKind.Move;

    public Task<System.Text.Json.Nodes.JsonObject?> ExecuteAsync(Operation operation, Tenant tenant, string step, CancellationToken cancellationToken) =>
        steps.ExecuteAsync(operation, tenant, step, cancellationToken);

    public Task RollBackAsync(Operation operation, Tenant tenant, string failedStep, CancellationToken cancellationToken) =>
        steps.RollBackAsync(operation, tenant, failedStep, cancellationToken);
}

public static class TierChangeServiceCollectionExtensions
{
    /// <summary>Tier changes and moves between cells, which move a tenant's data: the operations' steps, the retirement of old copies, the freeze the gateway sees.</summary>
    public static IServiceCollection AddTenantryTierChanges(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<TierChangeOptions>().BindConfiguration(TierChangeOptions.Section).ValidateSettings(TierChangeOptions.Section).ValidateOnStart();
        services.TryAddSingleton<TierChangeHooks>();
        services.TryAddSingleton<TierChangeSteps>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IOperationSteps, TierChangeSteps>(sp => sp.GetRequiredService<TierChangeSteps>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IOperationSteps, MoveSteps>(sp => new MoveSteps(sp.GetRequiredService<TierChangeSteps>())));
        services.TryAddSingleton<IFrozenTenants, FrozenTenants>();
        services.TryAddSingleton<TierChangeRetirer>();
        services.AddHostedService(sp => sp.GetRequiredService<TierChangeRetirer>());
        return services;
    }
}
