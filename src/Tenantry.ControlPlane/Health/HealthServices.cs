using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Health;

public static class HealthServices
{
    /// <summary>Per-tenant health: the store's writer and readers (<see cref="ITenantHealthWriter"/>, <see cref="ITenantHealth"/>) and the roll-up and retention loop.</summary>
    public static IServiceCollection AddTenantryHealth(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<HealthOptions>().BindConfiguration(HealthOptions.Section).ValidateSettings(HealthOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HealthOptions>, HealthOptionsValidator>());
        services.TryAddSingleton<TenantHealthService>();
        services.TryAddSingleton<ITenantHealth>(sp => sp.GetRequiredService<TenantHealthService>());
        services.TryAddSingleton<ITenantHealthWriter>(sp => sp.GetRequiredService<TenantHealthService>());
        services.TryAddSingleton<HealthMaintenance>();
        services.AddHostedService(sp => sp.GetRequiredService<HealthMaintenance>());
        return services;
    }
}
