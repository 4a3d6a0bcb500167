using Npgsql;
using Tenantry.Data.Migrations;
using Tenantry.Data.Postgres;
using Tenantry.Testing;

namespace Tenantry.Data.Tests;

/// <summary>A private server with a pool database migrated with <see cref="TestSchema"/> and an app role.</summary>
public sealed class PoolFixture : IAsyncLifetime
{
    public const string Database = "pool";
    public const string AppRole = "app_user";
    public const string AppPassword = "app-user-password-1";

    public PostgresServer Server { get; private set; } = null!;

    public string AdminConnectionString => Server.SuperuserConnectionStringFor(Database);

    public string AppConnectionString => Server.ConnectionString(Database, AppRole, AppPassword);

    public async Task InitializeAsync()
    {
        Server = await PostgresServer.StartAsync();
        await Server.ExecuteAsync($"CREATE DATABASE {Database}");
        await using (var admin = new NpgsqlConnection(AdminConnectionString))
        {
            await admin.OpenAsync();
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.CreatePoolAppRole(AppRole, AppPassword));
        }

        var report = await new TenantMigrationRunner(TestSchema.Orders).RunAsync([MigrationTarget.PostgresPool(AdminConnectionString, AppRole)]);
        Assert.True(report.Succeeded, string.Join("; ", report.Failed.Select(f => f.Error)));
    }

    public TenantDataContext Tenant(Guid id, string slug = "pool-tenant") => new()
    {
        TenantId = id,
        Slug = slug,
        Isolation = IsolationModel.Pool,
        Target = new PostgresPoolTarget(AppConnectionString),
    };

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>A second private server for bridge schemas and silo databases.</summary>
public sealed class DedicatedFixture : IAsyncLifetime
{
    public const string BridgeDatabase = "bridge";

    public PostgresServer Server { get; private set; } = null!;

    public PostgresEndpoint Endpoint => new(PostgresServer.Host, Server.Port);

    public string BridgeAdminConnectionString => Server.SuperuserConnectionStringFor(BridgeDatabase);

    public async Task InitializeAsync()
    {
        Server = await PostgresServer.StartAsync();
        await CreateBridgeDatabaseAsync(BridgeDatabase);
    }

    public async Task CreateBridgeDatabaseAsync(string database)
    {
        await Server.ExecuteAsync($"CREATE DATABASE {database}");
        await using var admin = await OpenAdminAsync(database);
        await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.PrepareBridgeDatabase());
    }

    public async Task<NpgsqlConnection> OpenAdminAsync(string database = "postgres")
    {
        var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(Server.SuperuserConnectionStringFor(database)) { Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>Creates a bridge tenant in <paramref name="database"/> and returns its data context.</summary>
    public async Task<TenantDataContext> CreateBridgeAsync(string slug, string database = BridgeDatabase)
    {
        var password = PostgresTenantDdl.NewPassword();
        await using (var admin = await OpenAdminAsync(database))
        {
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.CreateBridgeTenant(slug, password));
        }

        return new TenantDataContext
        {
            TenantId = Guid.CreateVersion7(),
            Slug = slug,
            Isolation = IsolationModel.Bridge,
            Target = PostgresBridgeTarget.For(Endpoint, database, slug, password),
        };
    }

    public async Task<TenantDataContext> CreateSiloAsync(string slug)
    {
        var password = PostgresTenantDdl.NewPassword();
        await using (var admin = await OpenAdminAsync())
        {
            await PostgresTenantDdl.CreateSiloTenantAsync(admin, slug, password);
        }

        return new TenantDataContext
        {
            TenantId = Guid.CreateVersion7(),
            Slug = slug,
            Isolation = IsolationModel.Silo,
            Target = PostgresSiloTarget.For(Endpoint, slug, password),
        };
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class PoolCollection : ICollectionFixture<PoolFixture>
{
    public const string Name = "postgres-pool";
}

[CollectionDefinition(Name)]
public sealed class DedicatedCollection : ICollectionFixture<DedicatedFixture>
{
    public const string Name = "postgres-dedicated";
}
