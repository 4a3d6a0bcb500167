using Tenantry.ControlPlane.Instances;
using Tenantry.ControlPlane.Kubernetes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Identity;
using Tenantry.ControlPlane.ObjectStorage;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Providers.Postgres;
using Tenantry.ControlPlane.Routing;

namespace Tenantry.ControlPlane;

/// <summary>
/// The one place that reads configuration and picks engines. Each engine registers itself with
/// its own <c>Add…</c> in the engine's file; here each seam (control-plane store, tenant
/// databases, object storage, compute) is bound to the engine its configuration names, when it
/// is first resolved. A new engine adds its file and its case here.
/// </summary>
internal static class TenantryEngines
{
    public static TenantryBuilder AddConfiguredEngines(this TenantryBuilder builder)
    {
        builder
            .AddSqliteStore(sp => Path.Combine(sp.GetRequiredService<DataDirectory>().Root, "control.db"), ControlPlaneSchema.Sqlite, ControlPlaneSchema.AddedColumns)
            .AddPostgresStore(sp => Tenantry(sp).Store!, ControlPlaneSchema.Postgres)
            .AddSqliteTenantDatabases()
            .AddPostgresTenantDatabases()
            .AddLocalObjectStorage()
            .AddS3ObjectStorage()
            .AddLocalCompute()
            .AddKubernetesCompute();

        var services = builder.Services;
        // Tenantry:Store — empty: SQLite in the data dir; a connection string: PostgreSQL.
        services.TryAddSingleton<IControlPlaneDatabase>(sp => string.IsNullOrWhiteSpace(Tenantry(sp).Store)
            ? sp.GetRequiredService<SqliteDatabase>()
            : OpenPostgresStore(sp));
        // Tenantry:Postgres:Enabled — tenant databases on PostgreSQL servers, else SQLite files.
        services.TryAddSingleton<ITenantDatabaseProvider>(sp => Tenantry(sp).Postgres.Enabled
            ? sp.GetRequiredService<PostgresTenantDatabaseProvider>()
            : sp.GetRequiredService<SqliteTenantDatabaseProvider>());
        // Tenantry:ObjectStorage:Provider — local (default) or s3.
        services.TryAddSingleton<IObjectStoreProvider>(sp => sp.GetRequiredService<IOptions<ObjectStorageOptions>>().Value.Provider == "s3"
            ? sp.GetRequiredService<S3ObjectStore>()
            : sp.GetRequiredService<LocalObjectStore>());
        // Job queues live in the control-plane store: its SQLite file, or its PostgreSQL database on connections of their own.
        services.TryAddSingleton<Jobs.JobBackend>(sp => string.IsNullOrWhiteSpace(Tenantry(sp).Store)
            ? new Jobs.SqliteJobBackend(sp.GetRequiredService<SqliteDatabase>())
            : OpenPostgresJobs(sp));
        // Tenantry:Compute:Provider — local processes (default) or a Kubernetes cluster; the instances rollouts
        // swap and the routes the gateway reads come from the same engine.
        services.TryAddSingleton<ITenantComputeProvider>(sp => OnKubernetes(sp)
            ? sp.GetRequiredService<KubernetesCompute>()
            : sp.GetRequiredService<LocalComputeProvider>());
        services.TryAddSingleton<IAppInstances>(sp => OnKubernetes(sp)
            ? sp.GetRequiredService<KubernetesCompute>()
            : sp.GetRequiredService<AppInstances>());
        services.TryAddSingleton<IAppRoutes>(sp => OnKubernetes(sp)
            ? sp.GetRequiredService<KubernetesCompute>()
            : sp.GetRequiredService<AppRoutes>());
        return builder;
    }

    /// <summary>The PostgreSQL store, or a start-up failure that names the server it could not reach.</summary>
    private static PostgresDatabase OpenPostgresStore(IServiceProvider sp)
    {
        try
        {
            return sp.GetRequiredService<PostgresDatabase>();
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException)
        {
            var where = new Npgsql.NpgsqlConnectionStringBuilder(Tenantry(sp).Store);
            var reason = ex is Npgsql.PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : (ex.InnerException ?? ex).Message;
            throw new TenantryStartupException(StartupProblem.Store, $"Tenantry:Store: cannot reach PostgreSQL at {where.Host}:{where.Port} ({reason}).", ex);
        }
    }

    private static bool OnKubernetes(IServiceProvider sp) => sp.GetRequiredService<IOptions<LocalComputeOptions>>().Value.OnKubernetes;

    /// <summary>The store first: it makes the tables at start, before the queues open connections of their own.</summary>
    private static Jobs.PostgresJobBackend OpenPostgresJobs(IServiceProvider sp)
    {
        sp.GetRequiredService<IControlPlaneDatabase>();
        return new Jobs.PostgresJobBackend(Tenantry(sp).Store!);
    }

    private static TenantryOptions Tenantry(IServiceProvider sp) => sp.GetRequiredService<IOptions<TenantryOptions>>().Value;
}
