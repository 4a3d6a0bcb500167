using System.IO.Compression;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Tenantry.ControlPlane.Providers;
using Tenantry.Data;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Tenants;

/// <summary>Two private PostgreSQL servers that the control plane provisions tenants into.</summary>
public sealed class TwoPostgresServers : IAsyncLifetime
{
    public PostgresServer A { get; private set; } = null!;

    public PostgresServer B { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var a = PostgresServer.StartAsync();
        var b = PostgresServer.StartAsync();
        A = await a;
        B = await b;
    }

    public async Task DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
    }

    /// <summary>A host configured with both servers (and, when asked, its own store on server A).</summary>
    public TenantryFactory Host(string? storeDatabase = null)
    {
        var factory = new TenantryFactory();
        factory.Settings["Tenantry:Postgres:Servers:0:Name"] = "pg-a";
        factory.Settings["Tenantry:Postgres:Servers:0:ConnectionString"] = A.SuperuserConnectionStringFor("postgres");
        factory.Settings["Tenantry:Postgres:Servers:1:Name"] = "pg-b";
        factory.Settings["Tenantry:Postgres:Servers:1:ConnectionString"] = B.SuperuserConnectionStringFor("postgres");
        if (storeDatabase is not null)
        {
            factory.Settings["Tenantry:Store"] = A.SuperuserConnectionStringFor(storeDatabase);
            factory.Settings["Tenantry:MasterKey"] = TenantryHostOptions.TestMasterKey;
        }

        return factory;
    }

    public static async Task<T?> ScalarAsync<T>(PostgresServer server, string database, string sql, params object[] parameters)
    {
        await using var connection = new NpgsqlConnection(server.SuperuserConnectionStringFor(database));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? default : (T)value;
    }
}

[Trait("Category", "PostgreSQL")]
public sealed class PostgresProvisioningTests(TwoPostgresServers pg) : IClassFixture<TwoPostgresServers>
{
    [Fact]
    public async Task Basic_standard_and_premium_tenants_live_on_real_servers_and_leave_nothing_behind_but_their_export()
    {
        await using var factory = pg.Host();
        using var client = await factory.OperatorAsync();
        await SampleApps.RegisterOrdersAsync(client);
        var basic = await client.CreateActiveTenantAsync("pg-basic", "basic");
        var neighbour = await client.CreateActiveTenantAsync("pg-neighbour", "basic");
        var standard = await client.CreateActiveTenantAsync("pg-standard", "standard");
        var premium = await client.CreateActiveTenantAsync("pg-premium", "premium");

        // Where each lives, as the API shows it: host, port, database, schema; never a password.
        var pool = await DatabaseOf(client, basic);
        Assert.Equal(("postgresql", "pool", "tenantry_pool", "public"), (Str(pool, "engine"), Str(pool, "model"), Str(pool, "database"), Str(pool, "schema")));
        Assert.Equal(("pg-a", pg.A.Port), (Str(pool, "server"), pool.GetProperty("port").GetInt32()));
        var bridge = await DatabaseOf(client, standard);
        Assert.Equal(("bridge", "tenantry_bridge", "tenant_pg_standard"), (Str(bridge, "model"), Str(bridge, "database"), Str(bridge, "schema")));
        var silo = await DatabaseOf(client, premium);
        Assert.Equal(("silo", "tenant_pg_premium"), (Str(silo, "model"), Str(silo, "database")));

        // Placement, least tenants first: the bridge tenant took the first (empty) server, the silo tenant the other.
        Assert.Equal("pg-a", Str(bridge, "server"));
        Assert.Equal("pg-b", Str(silo, "server"));
        Assert.Equal(pg.B.Port, silo.GetProperty("port").GetInt32());
        Assert.True(await TwoPostgresServers.ScalarAsync<bool>(pg.A, "tenantry_bridge", "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_pg_standard')"));
        Assert.True(await TwoPostgresServers.ScalarAsync<bool>(pg.B, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_pg_premium')"));
        Assert.False(await TwoPostgresServers.ScalarAsync<bool>(pg.A, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_pg_premium')"));

        // Write and read through Tenantry.Data with the credentials the control plane made.
        var provider = factory.Services.GetRequiredService<ITenantDatabaseProvider>();
        var data = factory.Services.GetRequiredService<ITenantDataSource>();
        var contexts = new Dictionary<string, TenantDataContext>();
        foreach (var (id, slug, tier, isolation) in new[]
        {
            (basic, "pg-basic", "basic", IsolationModel.Pool),
            (neighbour, "pg-neighbour", "basic", IsolationModel.Pool),
            (standard, "pg-standard", "standard", IsolationModel.Bridge),
            (premium, "pg-premium", "premium", IsolationModel.Silo),
        })
        {
            var context = await provider.ConnectAsync(new TenantRef(Guid.Parse(id), slug, slug, tier, isolation, $"admin@{slug}.test"), CancellationToken.None);
            Assert.NotNull(context);
            contexts[slug] = context;
            await using var session = await data.OpenSessionAsync(context);
            await session.ExecuteAsync(
                "INSERT INTO orders (tenant_id, id, number, amount, note, created_by, created_at) VALUES (@tenant, @id, @number, 10.5, @note, 'test', @at)",
                [("@tenant", Guid.Parse(id)), ("@id", Guid.NewGuid()), ("@number", "A-1"), ("@note", slug), ("@at", DateTimeOffset.UtcNow)]);
            await session.CommitAsync();
        }

        foreach (var (slug, context) in contexts)
        {
            await using var session = await data.OpenSessionAsync(context);
            var owners = await session.QueryAsync("SELECT note FROM orders", r => r.GetString(0));
            Assert.Equal([slug], owners);
        }

        // Credentials: stored encrypted, never in clear, never in the API.
        var json = (await client.GetJsonAsync($"/v1/tenants/{premium}")).GetRawText();
        var premiumPassword = ((PostgresSiloTarget)contexts["pg-premium"].Target).Password;
        Assert.DoesNotContain(premiumPassword, json, StringComparison.Ordinal);
        Assert.DoesNotContain("password", json, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT count(*) FROM tenant_credentials WHERE instr(protected_secret, $id) > 0", premiumPassword));
        Assert.Equal(1L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT count(*) FROM tenant_credentials WHERE tenant_id = $id", premium));

        // Offboard all but the neighbour; nothing of theirs may remain except the export archive.
        foreach (var id in new[] { basic, standard, premium })
        {
            using var delete = await client.DeleteAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Accepted, delete.StatusCode);
        }

        foreach (var (id, slug) in new[] { (basic, "pg-basic"), (standard, "pg-standard"), (premium, "pg-premium") })
        {
            var gone = await client.WaitForStatusAsync(id, "offboarded", seconds: 60);
            using var zip = ZipFile.OpenRead(gone.GetProperty("resources").GetProperty("archive").GetProperty("path").GetString()!);
            using var reader = new StreamReader(zip.GetEntry("database/orders.jsonl")!.Open());
            var rows = (await reader.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(slug, JsonDocument.Parse(Assert.Single(rows)).RootElement.GetProperty("note").GetString());
            Assert.DoesNotContain(rows, r => r.Contains("pg-neighbour", StringComparison.Ordinal));
        }

        foreach (var server in new[] { pg.A, pg.B })
        {
            Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(server, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant\\_pg\\_%'"));
            Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(server, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_pg\\_%'"));
        }

        Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_bridge", "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\\_pg\\_%'"));
        Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_pool", "SELECT count(*) FROM orders WHERE tenant_id = $1", Guid.Parse(basic)));
        Assert.Equal(1L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_pool", "SELECT count(*) FROM orders WHERE tenant_id = $1", Guid.Parse(neighbour)));
        foreach (var id in new[] { basic, standard, premium })
        {
            Assert.Equal(0L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT count(*) FROM tenant_credentials WHERE tenant_id = $id", id));
            Assert.Equal(0L, await ControlDb.ScalarAsync(factory.DataDir, "SELECT count(*) FROM tenant_placements WHERE tenant_id = $id", id));
        }
    }

    [Fact]
    public async Task The_control_plane_itself_runs_on_postgresql()
    {
        await pg.A.ExecuteAsync("CREATE DATABASE control_store");
        await using var factory = pg.Host(storeDatabase: "control_store");
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("pg-store", "standard");

        Assert.Equal("active", await TwoPostgresServers.ScalarAsync<string>(pg.A, "control_store", "SELECT status FROM tenants WHERE id = $1", id));
        Assert.Equal(7L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "control_store", "SELECT count(*) FROM operation_steps s JOIN operations o ON o.id = s.operation_id WHERE o.tenant_id = $1 AND s.status = 'succeeded'", id));
        Assert.Equal(1L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "control_store", "SELECT count(*) FROM tenant_placements WHERE tenant_id = $1", id));
        Assert.False(File.Exists(Path.Combine(factory.DataDir, "control.db")));

        using var delete = await client.DeleteAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative));
        await client.WaitForStatusAsync(id, "offboarded", seconds: 60);
        Assert.Equal(0L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "control_store", "SELECT count(*) FROM tenant_credentials WHERE tenant_id = $1", id));
    }

    [Fact]
    public async Task Fleet_migration_catches_up_tenants_left_behind_and_reports_a_failed_one_without_stopping_the_others()
    {
        await using var factory = pg.Host();
        using var client = await factory.OperatorAsync();
        var pool = await client.CreateActiveTenantAsync("mig-pool", "basic");
        var bridge = await client.CreateActiveTenantAsync("mig-bridge", "standard");
        var silo = await client.CreateActiveTenantAsync("mig-silo", "premium");
        var siloServer = (await DatabaseOf(client, silo)).GetProperty("server").GetString() == "pg-a" ? pg.A : pg.B;
        var bridgeServer = (await DatabaseOf(client, bridge)).GetProperty("server").GetString() == "pg-a" ? pg.A : pg.B;

        var first = await RunMigrationsAsync(client);
        Assert.True(first.GetProperty("succeeded").GetBoolean(), first.ToString());
        Assert.All(first.GetProperty("tenants").EnumerateArray().Where(t => t.GetProperty("schema").ValueKind == JsonValueKind.Object),
            t => Assert.Empty(t.GetProperty("schema").GetProperty("applied").EnumerateArray()));
        Assert.Contains(first.GetProperty("tenants").EnumerateArray(), r => r.GetProperty("target").GetString() == "pool" && r.GetProperty("tenantId").ValueKind == JsonValueKind.Null);

        // The bridge tenant is left behind (its table and ledger gone); the silo tenant's ledger lies,
        // so re-applying version 1 there fails on the table that is still there.
        await TwoPostgresServers.ScalarAsync<object>(bridgeServer, "tenantry_bridge", "DROP TABLE tenant_mig_bridge.tenant_settings; DELETE FROM tenant_mig_bridge.schema_migrations");
        await TwoPostgresServers.ScalarAsync<object>(siloServer, "tenant_mig_silo", "DELETE FROM schema_migrations");

        var second = await RunMigrationsAsync(client);
        Assert.False(second.GetProperty("succeeded").GetBoolean());
        var results = second.GetProperty("tenants").EnumerateArray().ToDictionary(r => r.GetProperty("slug").GetString() ?? "pool");
        Assert.Equal([1], results["mig-bridge"].GetProperty("schema").GetProperty("applied").EnumerateArray().Select(v => v.GetInt32()));
        Assert.Equal(bridge, results["mig-bridge"].GetProperty("tenantId").GetString());
        Assert.Equal("failed", results["mig-silo"].GetProperty("status").GetString());
        Assert.Equal(1, results["mig-silo"].GetProperty("schema").GetProperty("failedVersion").GetInt32());
        Assert.Contains("tenant_settings", results["mig-silo"].GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal("succeeded", results["mig-bridge"].GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, results["pool"].GetProperty("error").ValueKind);
        Assert.Equal(1, second.GetProperty("progress").GetProperty("failed").GetInt32());
        Assert.Equal(1L, await TwoPostgresServers.ScalarAsync<long>(bridgeServer, "tenantry_bridge", "SELECT count(*) FROM tenant_mig_bridge.schema_migrations"));
        _ = pool;

        var audit = await client.GetJsonAsync("/v1/audit?limit=200");
        Assert.Contains(audit.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "migrations.run" && e.GetProperty("outcome").GetString() == "failed");
    }

    private static Task<JsonElement> RunMigrationsAsync(HttpClient client) => client.RunFleetMigrationAsync();

    private static async Task<JsonElement> DatabaseOf(HttpClient client, string id) =>
        (await client.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("resources").GetProperty("database");

    private static string? Str(JsonElement e, string name) => e.GetProperty(name).GetString();
}
