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
using Tenantry.ControlPlane.Cells;
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
using Tenantry.ControlPlane.Keys;
using Tenantry.ControlPlane.Nodes;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Configuration;

namespace Tenantry.ControlPlane;

public static class TenantryControlPlane
{
    private const string ReadyTag = "ready";
    private const string KeyRingTag = "key-ring";

    /// <summary>The control plane on the embedded default: SQLite, local folders, local compute.</summary>
    public static TenantryBuilder AddTenantryControlPlane(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<TenantryOptions>().BindConfiguration(TenantryOptions.Section).ValidateSettings(TenantryOptions.Section).ValidateOnStart();
        // Tenantry:MasterKey may also come from the environment, as TENANTRY_MASTER_KEY.
        services.AddOptions<TenantryOptions>().PostConfigure<IConfiguration>((o, configuration) =>
        {
            if (string.IsNullOrEmpty(o.MasterKey) && configuration["TENANTRY_MASTER_KEY"] is { Length: > 0 } fromEnvironment)
            {
                o.MasterKey = fromEnvironment;
            }
        });
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
        services.TryAddSingleton<RouteChanges>();
        services.AddHostedService<RouteChangeListener>();
        services.TryAddSingleton<Instances.AppDataLookup>();
        services.TryAddSingleton<StepExecutor>();
        services.TryAddSingleton<OperationSignals>();
        services.TryAddSingleton<TenantCommands>();
        services.TryAddSingleton<PolicyCatalog>();
        services.AddTenantryObjectStorage();
        // Start order matters: the key ring opens first, the operator client exists before requests, the worker resumes last.
        services.AddTenantryKeyRing();
        services.AddSingleton<OperatorBootstrap>();
        services.AddHostedService(sp => sp.GetRequiredService<OperatorBootstrap>());
        services.AddSingleton<OperationWorker>();
        services.AddSingleton<IOperationQueue>(sp => sp.GetRequiredService<OperationWorker>());
        services.AddHostedService(sp => sp.GetRequiredService<OperationWorker>());
        services.AddHostedService<OperationListener>();
        services.TryAddSingleton<TenantDirectory>();
        services.TryAddSingleton<ITenantRegistry>(sp => sp.GetRequiredService<TenantDirectory>());
        services.TryAddSingleton<ITenantDirectory>(sp => sp.GetRequiredService<TenantDirectory>());
        services.TryAddSingleton<IDedicatedResources>(sp => sp.GetRequiredService<TenantDirectory>());
        services.TryAddSingleton<ITenantLifecycle, TenantLifecycleWriter>();
        services.TryAddSingleton<IRunningTenants, RunningTenants>();
        services.AddTenantryBilling();
        services.AddTenantryApps();
        services.AddTenantryAppMigrations();
        services.AddTenantryHealth();
        services.AddTenantryRollouts();
        services.AddTenantryFleetMigrations();
        services.AddTenantryJobs();
        services.AddTenantryCells();
        services.AddTenantryNodes();
        services.AddSingleton<Nodes.INodeHandover, OperationsNodeHandover>();
        TierChanges.TierChangeServiceCollectionExtensions.AddTenantryTierChanges(services);
        // The servers a cell names are checked where servers are known, so cells need not know PostgreSQL.
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<Cells.CellsOptions>, Providers.Postgres.CellServersValidator>());

        services.AddTenantryIdentity();
        services.AddDataProtection();
        // The embedded store keeps the Data Protection keys as files in the data dir; a shared store keeps
        // them in its own table, each sealed with the master key, so every replica reads the same ring.
        services.AddOptions<KeyManagementOptions>().Configure<IOptions<TenantryOptions>, IServiceProvider>((keys, tenantry, sp) =>
        {
            if (KeyRing.InStore(tenantry.Value))
            {
                keys.XmlRepository = new StoreXmlRepository(sp.GetRequiredService<IControlPlaneDatabase>(), sp.GetRequiredService<TimeProvider>());
                keys.XmlEncryptor = new MasterKeyXmlEncryptor(new MasterKey(tenantry.Value.MasterKey!));
            }
            else
            {
                keys.XmlRepository = new FileSystemXmlRepository(new DirectoryInfo(Path.Combine(tenantry.Value.DataPath, "keys", "data-protection")), NullLoggerFactory.Instance);
            }
        });
        services.AddProblemDetails();
        // A repeated property in a request body is refused, not resolved silently to its last value.
        services.ConfigureHttpJsonOptions(json => json.SerializerOptions.AllowDuplicateProperties = false);
        services.AddHealthChecks()
            .AddCheck<StoreHealthCheck>("store", tags: [ReadyTag])
            .AddCheck<KeyRingHealthCheck>("key-ring", tags: [ReadyTag, KeyRingTag]);
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
            .MapCellsApi()
            .MapNodesApi()
            .MapPoliciesApi()
            .MapBillingApi()
            .MapAppsApi()
            .MapRolloutsApi()
            .MapFleetHealthApi()
            .MapEventsApi()
            .MapMailsApi()
            .MapKeysApi();
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
        routes.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = check => !check.Tags.Contains(KeyRingTag) });
        // Ready for traffic: the store answers and the key ring is loaded (503 otherwise).
        routes.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(ReadyTag) });
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
