using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Tenantry.Billing.Costs;
using Tenantry.Billing.Entitlements;
using Tenantry.Billing.Invoices;
using Tenantry.Billing.Plans;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane;

namespace Tenantry.Billing;

/// <summary>
/// Wiring of plans, metering, invoices, costs and entitlements. The host registers the
/// <see cref="ITenantDirectory"/> and <see cref="IRunningTenants"/> billing reads tenants through.
/// </summary>
public static class BillingServices
{
    public static IServiceCollection AddTenantryBilling(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<BillingOptions>().BindConfiguration(BillingOptions.Section).ValidateSettings(BillingOptions.Section).ValidateOnStart();
        services.AddOptions<CostOptions>().BindConfiguration(CostOptions.Section).ValidateSettings(CostOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CostOptions>, CostSettingsValidator>());
        services.TryAddSingleton<BillingCatalog>();
        services.TryAddSingleton<PriceBookRun>();
        services.AddHostedService<PriceBookWorker>();
        services.TryAddSingleton<EntitlementService>();
        services.TryAddSingleton<ITenantQuotas>(sp => sp.GetRequiredService<EntitlementService>());
        services.TryAddSingleton<IRouteEntitlements, RouteEntitlements>();
        services.TryAddSingleton<BuiltInUsageBuffer>();
        services.TryAddSingleton<ApiCallMeter>();
        services.TryAddSingleton<UsageIngestor>();
        services.AddHostedService(sp => sp.GetRequiredService<UsageIngestor>());
        services.AddHostedService<BuiltInUsageWorker>();
        services.AddHostedService<QuotaWatcher>();
        return services;
    }

    /// <summary>Maps the billing endpoints into the operator's <c>/v1</c> group and meters its tenant calls.</summary>
    public static RouteGroupBuilder MapBillingApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.AddEndpointFilter<RouteGroupBuilder, ApiCallMeter>();
        return v1.MapPlansApi().MapUsageApi().MapInvoicesApi().MapCostsApi().MapEntitlementsApi();
    }
}
