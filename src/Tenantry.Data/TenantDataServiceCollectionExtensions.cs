using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Tenantry.Data;

/// <summary>Registers Tenantry's tenant data access in an app's services.</summary>
public static class TenantDataServiceCollectionExtensions
{
    /// <summary>Registers the singleton <see cref="ITenantDataSource"/> (it owns the connection pools, so there is one per process).</summary>
    public static IServiceCollection AddTenantryData(this IServiceCollection services, Action<TenantDataSourceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new TenantDataSourceOptions();
        configure?.Invoke(options);
        options.Validate();
        services.TryAddSingleton(_ => TenantDataSource.Create(options));
        return services;
    }
}
