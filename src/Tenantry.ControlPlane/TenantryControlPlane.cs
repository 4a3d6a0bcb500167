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
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.WebConsole;
using Tenantry.ControlPlane.Fleet;
using Tenantry.ControlPlane.Billing;
using Tenantry.ControlPlane.Identity;
using Tenantry.ControlPlane.Migrations;
using Tenantry.ControlPlane.Objects;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Providers.Postgres;
using Tenantry.Data;
using Tenantry.ControlPlane.Routing;
using Tenantry.ControlPlane.Storage;
using Tenantry.ControlPlane.Tenants;

namespace Tenantry.ControlPlane;

/// <summary>Returned by <see cref="TenantryControlPlane.AddTenantryControlPlane"/>; later providers hang off it.</summary>
public sealed class TenantryBuilder(IServiceCollection services)
{
    public IServiceCollection Services { get; } = services;
}

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
        services.TryAddSingleton<IControlPlaneDatabase>(sp =>
        {
            var dir = sp.GetRequiredService<DataDirectory>();
            var store = sp.GetRequiredService<IOptions<TenantryOptions>>().Value.Store;
            return string.IsNullOrWhiteSpace(store)
                ? new SqliteDatabase(Path.Combine(dir.Root, "control.db"), ControlPlaneSchema.Sqlite, ControlPlaneSchema.AddedColumns)
                : OpenPostgresStore(store);
        });
        services.TryAddSingleton<OperationNode>();

        services.TryAddSingleton(TenantAppSchema.Default);
        services.AddTenantryData();
        services.TryAddSingleton<TenantCredentials>();
        services.TryAddSingleton(sp => new PostgresServers(sp.GetRequiredService<IOptions<TenantryOptions>>().Value.Postgres));
        services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<TenantryOptions>>().Value.Postgres);
        services.TryAddSingleton<TenantPlacement>();
        services.TryAddSingleton<ITenantDatabaseProvider>(sp =>
            sp.GetRequiredService<IOptions<TenantryOptions>>().Value.Postgres.Enabled
                ? ActivatorUtilities.CreateInstance<PostgresTenantDatabaseProvider>(sp)
                : ActivatorUtilities.CreateInstance<SqliteTenantDatabaseProvider>(sp));
        services.TryAddSingleton<ITenantDataLocator, ActiveTenantDataLocator>();
        services.TryAddSingleton<ITenantStorageProvider, LocalFolderStorageProvider>();
        services.TryAddSingleton<ITenantComputeProvider, LocalComputeProvider>();
        services.AddOptions<LocalComputeOptions>().BindConfiguration(LocalComputeOptions.Section).ValidateSettings(LocalComputeOptions.Section).ValidateOnStart();
        services.TryAddSingleton<LocalAppSupervisor>();
        services.AddHostedService(sp => sp.GetRequiredService<LocalAppSupervisor>());
        services.TryAddSingleton<ITenantIdentityProvider, EmbeddedIdentityProvider>();
        services.TryAddSingleton<INotificationProvider, OutboxNotificationProvider>();

        services.TryAddSingleton<ClientStore>();
        services.TryAddSingleton<TenantUserStore>();
        services.TryAddSingleton<ITenantRouteTable, TenantRouteTable>();
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
        services.AddTenantryBilling();

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
        return new TenantryBuilder(services);
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
            .MapBillingApi();
        routes.MapGroup("/v1")
            .RequireAuthorization(IdentityApi.TenantOrAdminPolicy)
            .MapObjectsApi();
        routes.MapGroup("/v1")
            .RequireAuthorization(IdentityApi.RoutesPolicy)
            .MapRoutesApi();
        routes.MapTenantryConsole();
        routes.MapHealthChecks("/healthz");
        routes.MapOpenApi();
        return routes;
    }

    private static PostgresDatabase OpenPostgresStore(string store)
    {
        try
        {
            return PostgresDatabase.Open(store, ControlPlaneSchema.Postgres);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException)
        {
            var where = new Npgsql.NpgsqlConnectionStringBuilder(store);
            var reason = ex is Npgsql.PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : (ex.InnerException ?? ex).Message;
            throw new TenantryStartupException(StartupProblem.Store, $"Tenantry:Store: cannot reach PostgreSQL at {where.Host}:{where.Port} ({reason}).", ex);
        }
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
