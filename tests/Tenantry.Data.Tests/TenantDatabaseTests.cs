using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;

namespace Tenantry.Data.Tests;

/// <summary>
/// An app instance's database as Tenantry hands it over (<c>TENANTRY_DATABASE</c>, <c>TENANTRY_TENANT_ID</c>):
/// a shared instance reaches pool tenants only, through the tenant filter; a dedicated one its own tenant only.
/// </summary>
public sealed class TenantDatabaseTests : IAsyncLifetime
{
    private const string Postgres = "Host=127.0.0.1;Port=5433;Database=tenants;Username=app;Password=s3cret-pw";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-data-tests", Guid.NewGuid().ToString("N"));
    private readonly Guid _a = Guid.CreateVersion7();
    private readonly Guid _b = Guid.CreateVersion7();

    private string PoolFile => Path.Combine(_dir, "pool.db");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public void A_shared_instance_gives_pool_tenants_the_filtered_pool_and_refuses_bridge_and_silo_tenants()
    {
        var sqlite = new TenantDatabase($"Data Source={PoolFile}");
        var pool = sqlite.For(_a, "alpha", IsolationModel.Pool);
        Assert.Equal(new SqlitePoolTarget(PoolFile), pool.Target);
        Assert.Equal(_a, pool.TenantId);

        var postgres = new TenantDatabase(Postgres);
        Assert.Equal(new PostgresPoolTarget(Postgres), postgres.For(_a, "alpha", IsolationModel.Pool).Target);

        // The pool database without the filter would show them every pool tenant's rows.
        foreach (var database in new[] { sqlite, postgres })
        {
            foreach (var isolation in new[] { IsolationModel.Bridge, IsolationModel.Silo })
            {
                var refused = Assert.Throws<InvalidOperationException>(() => database.For(_b, "bravo", isolation));
                Assert.Contains("shared instance", refused.Message, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void A_dedicated_instance_gives_its_silo_tenant_its_own_database_and_refuses_every_other_tenant()
    {
        var file = Path.Combine(_dir, "alpha.db");
        var sqlite = new TenantDatabase($"Data Source={file}", _a);
        Assert.Equal(new SqliteFileTarget(file), sqlite.For(_a, "alpha", IsolationModel.Silo).Target);

        var postgres = new TenantDatabase(Postgres, _a);
        var silo = Assert.IsType<PostgresSiloTarget>(postgres.For(_a, "alpha", IsolationModel.Silo).Target);
        Assert.Equal(("tenants", "app", "s3cret-pw", "127.0.0.1", 5433), (silo.Database, silo.Role, silo.Password, silo.Server.Host, silo.Server.Port));

        foreach (var database in new[] { sqlite, postgres })
        {
            Assert.Throws<InvalidOperationException>(() => database.For(_b, "bravo", IsolationModel.Silo));
            Assert.Throws<InvalidOperationException>(() => database.For(_a, "alpha", IsolationModel.Pool));
        }
    }

    [Fact]
    public async Task Pool_tenants_of_a_shared_instance_on_sqlite_see_and_write_only_their_own_rows()
    {
        await using (var setup = new SqliteConnection($"Data Source={PoolFile};Pooling=False"))
        {
            await setup.OpenAsync();
            await using var command = setup.CreateCommand();
            command.CommandText = "CREATE TABLE items (tenant_id UUID NOT NULL, id UUID NOT NULL, name VARCHAR(200) NOT NULL, PRIMARY KEY (tenant_id, id))";
            await command.ExecuteNonQueryAsync();
        }

        var database = TenantDatabase.FromConfiguration(Configuration(new() { [TenantryEnvironment.Database] = $"Data Source={PoolFile}" }));
        await using var data = TenantDataSource.Create();
        foreach (var (tenant, slug) in new[] { (_a, "alpha"), (_b, "bravo") })
        {
            await using var session = await data.OpenSessionAsync(database.For(tenant, slug, IsolationModel.Pool));
            await session.ExecuteAsync("INSERT INTO items (tenant_id, id, name) VALUES (@tenant, @id, @name)", [("@tenant", tenant), ("@id", Guid.CreateVersion7()), ("@name", slug + "-item")]);
            await session.CommitAsync();
        }

        await using (var a = await data.OpenReadSessionAsync(database.For(_a, "alpha", IsolationModel.Pool)))
        {
            Assert.Equal(["alpha-item"], await a.QueryAsync("SELECT name FROM items", r => r.GetString(0)));
            Assert.Equal(0L, await a.ScalarAsync("SELECT count(*) FROM items WHERE tenant_id = @b", [("@b", _b)]));
        }

        // A row written for another tenant is refused, not stored where that tenant would see it.
        await using (var a = await data.OpenSessionAsync(database.For(_a, "alpha", IsolationModel.Pool)))
        {
            await Assert.ThrowsAsync<SqliteException>(() => a.ExecuteAsync(
                "INSERT INTO items (tenant_id, id, name) VALUES (@tenant, @id, 'planted')", [("@tenant", _b), ("@id", Guid.CreateVersion7())]));
        }

        await using var b = await data.OpenReadSessionAsync(database.For(_b, "bravo", IsolationModel.Pool));
        Assert.Equal(["bravo-item"], await b.QueryAsync("SELECT name FROM items", r => r.GetString(0)));
    }

    [Fact]
    public void Settings_win_over_the_environment_and_a_dedicated_instance_is_named_by_its_tenant_id()
    {
        var shared = TenantDatabase.FromConfiguration(Configuration(new()
        {
            [TenantryEnvironment.Database] = Postgres,
            [TenantDatabase.DatabaseSetting] = $"Data Source={PoolFile}",
        }));
        Assert.True(shared.IsSqlite);
        Assert.Null(shared.DedicatedTenantId);

        var dedicated = TenantDatabase.FromConfiguration(Configuration(new()
        {
            [TenantryEnvironment.Database] = Postgres,
            [TenantryEnvironment.TenantId] = _a.ToString(),
        }));
        Assert.Equal(_a, dedicated.DedicatedTenantId);
        Assert.DoesNotContain("s3cret-pw", dedicated.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, null, "TENANTRY_DATABASE is not set")]
    [InlineData("", null, "TENANTRY_DATABASE is not set")]
    [InlineData("Data Source=:memory:", null, "is a file")]
    [InlineData("Database=tenants;Username=app;Password=s3cret-pw", null, "Host")]
    [InlineData("Host=127.0.0.1;Password='s3cret-pw", null, "not a connection string")]
    [InlineData("Host=127.0.0.1;Nonsense=1;Password=s3cret-pw", null, "Npgsql")]
    [InlineData(Postgres, "alpha", "TENANTRY_TENANT_ID")]
    public void A_database_that_is_missing_or_malformed_stops_the_app_at_start_without_showing_its_password(string? database, string? tenantId, string reason)
    {
        var configuration = Configuration(new() { [TenantryEnvironment.Database] = database, [TenantryEnvironment.TenantId] = tenantId });

        var refused = Assert.Throws<InvalidOperationException>(() => new Microsoft.Extensions.DependencyInjection.ServiceCollection().AddTenantDatabase(configuration));
        Assert.Contains(reason, refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-pw", refused.Message, StringComparison.Ordinal);
    }

    private static IConfiguration Configuration(Dictionary<string, string?> values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values).Build();
}
