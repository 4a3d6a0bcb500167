using Tenantry.ControlPlane.Rollouts;
using Tenantry.ControlPlane.Instances;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Tenantry.ControlPlane.AppMigrations;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.WebConsole;
using Tenantry.ControlPlane.Fleet;
using Tenantry.ControlPlane.Health;
using Tenantry.ControlPlane.Jobs;
using Tenantry.Billing;
using Tenantry.ControlPlane.Events;
using Tenantry.ControlPlane.Identity;
using Tenantry.ControlPlane.Mail;
using Tenantry.ControlPlane.Migrations;
using Tenantry.ControlPlane.ObjectStorage;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Providers.Postgres;
using Tenantry.Data;
using Tenantry.ControlPlane.Routing;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Tenants;

namespace Tenantry.ControlPlane;

public static class TenantryControlPlane
{
    /// <summary>The control plane on the embedded default: SQLite, local folders, local compute.</summary>
    public static TenantryBuilder AddTenantryControlPlane(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<TenantryOptions>().BindConfiguration(TenantryOptions.Section).ValidateSettings(TenantryOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TenantryOptions>, TenantryOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<DataDirectory>();
        services.TryAddSingleton<OperationNode>();

        services.TryAddSingleton(TenantAppSchema.Default);
        services.AddTenantryData();
        services.TryAddSingleton<TenantCredentials>();
        var builder = new TenantryBuilder(services).AddConfiguredEngines();
        services.TryAddSingleton<ITenantDataLocator, ActiveTenantDataLocator>();
        services.TryAddSingleton<ITenantStorageProvider, LocalFolderStorageProvider>();
        services.TryAddSingleton<ITenantIdentityProvider, EmbeddedIdentityProvider>();
        services.AddTenantryEvents();
        services.AddTenantryMail();
        services.TryAddSingleton<InvitationStore>();
        services.TryAddSingleton<INotificationProvider, MailNotificationProvider>();

        services.TryAddSingleton<ClientStore>();
        services.TryAddSingleton<TenantUserStore>();
        services.TryAddSingleton<ITenantRouteTable, TenantRouteTable>();
        services.TryAddSingleton<Instances.AppDataLookup>();
        services.TryAddSingleton<StepExecutor>();
        services.TryAddSingleton<OperationSignals>();
        services.TryAddSingleton<TenantCommands>();
        services.TryAddSingleton<PolicyCatalog>();
        services.AddTenantryObjectStorage();
        // Start order matters: the operator client exists before requests, the worker resumes last.
        services.AddSingleton<OperatorBootstrap>();
        services.AddHostedService(sp => sp.GetRequiredService<OperatorBootstrap>());
        services.AddSingleton<OperationWorker>();
        services.AddSingleton<IOperationQueue>(sp => sp.GetRequiredService<OperationWorker>());
        services.AddHostedService(sp => sp.GetRequiredService<OperationWorker>());
        services.TryAddSingleton<TenantDirectory>();
        services.TryAddSingleton<ITenantRegistry>(sp => sp.GetRequiredService<TenantDirectory>());
        services.TryAddSingleton<ITenantDirectory>(sp => sp.GetRequiredService<TenantDirectory>());
        services.TryAddSingleton<ITenantLifecycle, TenantLifecycleWriter>();
        services.TryAddSingleton<IRunningTenants, RunningTenants>();
        services.AddTenantryBilling();
        services.AddTenantryApps();
        services.AddTenantryAppMigrations();
        services.AddTenantryHealth();
        services.AddTenantryRollouts();
        services.AddTenantryJobs();

        services.AddTenantryIdentity();
        services.AddDataProtection();
        services.AddOptions<KeyManagementOptions>().Configure<IOptions<TenantryOptions>>((keys, tenantry) =>
            keys.XmlRepository = new FileSystemXmlRepository(new DirectoryInfo(Path.Combine(tenantry.Value.DataPath, "keys", "data-protection")), NullLoggerFactory.Instance));
        services.AddProblemDetails();
        // A repeated property in a request body is refused, not resolved silently to its last value.
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.AllowDuplicateProperties = false);
        services.AddHealthChecks().AddCheck<StoreHealthCheck>("store");
        services.AddOpenApi(o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new OpenApiInfo
            {
                Title = "Tenantry control plane API",
                Version = "v1",
                Description = "Onboard, run and offboard tenants. Get a token at POST /connect/token (client_credentials, scope tenantry:admin).",
            };
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes["bearer"] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                BearerFormat = "JWT",
                Description = "Operator token from POST /connect/token.",
            };
            document.Security ??= [];
            document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", document)] = [] });
            return Task.CompletedTask;
        }));
        return builder;
    }

    public static IEndpointRouteBuilder MapTenantryControlPlane(this IEndpointRouteBuilder routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        routes.MapIdentityApi();
        routes.MapGroup("/v1")
            .RequireAuthorization(IdentityApi.AdminPolicy)
            .MapTenantsApi()
            .MapTenantIdentityApi()
            .MapOperationsApi()
            .MapAuditApi()
            .MapMigrationsApi()
            .MapFleetApi()
            .MapPoliciesApi()
            .MapBillingApi()
            .MapAppsApi()
            .MapRolloutsApi()
            .MapFleetHealthApi()
            .MapEventsApi()
            .MapMailsApi();
        routes.MapGroup("/v1")
            .RequireAuthorization(IdentityApi.TenantOrAdminPolicy)
            .MapObjectsApi()
            .MapTenantHealthApi()
            .MapWebhooksApi()
            .MapTenantInvitationsApi()
            .MapJobsApi();
        routes.MapGroup("/v1")
            .RequireAuthorization(IdentityApi.RoutesPolicy)
            .MapRoutesApi()
            .MapHealthIngestApi();
        routes.MapAppDataApi();
        routes.MapTenantryConsole();
        routes.MapHealthChecks("/healthz");
        routes.MapOpenApi();
        return routes;
    }
}

internal sealed class StoreHealthCheck(IControlPlaneDatabase db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await db.ReadAsync(c => c.ScalarAsync("SELECT 1", null), cancellationToken);
            return HealthCheckResult.Healthy("control-plane store answers");
        }
        catch (Microsoft.Data.Sqlite.SqliteException ex)
        {
            return HealthCheckResult.Unhealthy("control-plane store does not answer", ex);
        }
    }
}
