using Microsoft.Extensions.Configuration;
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

    /// <summary>
    /// Registers the singleton <see cref="TenantDatabase"/> of an app instance, read now from
    /// <paramref name="configuration"/> (<c>TENANTRY_DATABASE</c>, and <c>TENANTRY_TENANT_ID</c> on a dedicated
    /// instance), so a missing or malformed database stops the app at start.
    /// </summary>
    /// <exception cref="InvalidOperationException">The database is not set, or a setting is malformed.</exception>
    public static IServiceCollection AddTenantDatabase(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TenantDatabase.FromConfiguration(configuration));
        return services;
    }
}
