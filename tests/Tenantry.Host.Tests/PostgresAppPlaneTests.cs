using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>
/// The application plane on the PostgreSQL data plane: a real host (control-plane store and tenant
/// databases on a private PostgreSQL server), its gateway, the shared Orders.Api (pool and bridge
/// tenants) and a silo tenant's dedicated process, all through real ports.
/// </summary>
[Trait("Category", "PostgreSQL")]
public sealed class PostgresAppPlaneTests
{
    [Fact]
    public async Task Pool_bridge_and_silo_tenants_keep_their_orders_in_PostgreSQL_and_see_only_their_own()
    {
        await using var pg = await PostgresServer.StartAsync();
        await pg.ExecuteAsync("CREATE DATABASE tenantry_control");
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(
        [
            "--Tenantry:Store=" + pg.SuperuserConnectionStringFor("tenantry_control"),
            "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey,
            "--Tenantry:Postgres:Servers:0:Name=pg-test",
            "--Tenantry:Postgres:Servers:0:ConnectionString=" + pg.SuperuserConnectionStringFor("postgres"),
        ]));
        using var op = await host.OperatorClientAsync();
        var tenants = await Task.WhenAll(
            host.OnboardAsync(op, "pg-shop", "basic"),
            host.OnboardAsync(op, "pg-kiosk", "basic"),
            host.OnboardAsync(op, "pg-bank", "premium"),
            host.OnboardAsync(op, "pg-firm", "standard"));
        var (shop, kiosk, bank) = (tenants[0], tenants[1], tenants[2]);

        // Each logs in (done by OnboardAsync), creates orders and lists them through the gateway.
        var orders = new Dictionary<string, List<Guid>>();
        foreach (var tenant in tenants)
        {
            using var client = tenant.Client();
            orders[tenant.Slug] = [];
            for (var i = 1; i <= 2; i++)
            {
                using var created = await client.PostAsJsonAsync("/orders", new { amount = 10m * i + 0.25m, note = tenant.Slug });
                Assert.True(created.StatusCode == HttpStatusCode.Created, $"{tenant.Slug}: {created.StatusCode} {await created.Content.ReadAsStringAsync()}\n{host.Output}");
                var order = await created.Content.ReadFromJsonAsync<JsonElement>();
                orders[tenant.Slug].Add(order.GetProperty("id").GetGuid());
                Assert.Equal(10m * i + 0.25m, order.GetProperty("amount").GetDecimal());
            }

            var list = (await client.GetFromJsonAsync<JsonElement>("/orders")).GetProperty("items").EnumerateArray().ToList();
            Assert.Equal(orders[tenant.Slug].Order(), list.Select(o => o.GetProperty("id").GetGuid()).Order());
            Assert.All(list, o => Assert.Equal(tenant.Slug, o.GetProperty("note").GetString()));
            var one = await client.GetFromJsonAsync<JsonElement>($"/orders/{orders[tenant.Slug][0]}");
            Assert.Equal(orders[tenant.Slug][0], one.GetProperty("id").GetGuid());
        }

        // Another tenant's order id finds nothing, from the shared instance and from the dedicated one.
        using (var client = shop.Client())
        {
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri($"/orders/{orders["pg-kiosk"][0]}", UriKind.Relative))).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri($"/orders/{orders["pg-bank"][0]}", UriKind.Relative))).StatusCode);
            Assert.Equal("shared", (await client.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("mode").GetString());
        }

        int dedicatedPid;
        using (var client = bank.Client())
        {
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri($"/orders/{orders["pg-shop"][0]}", UriKind.Relative))).StatusCode);
            var instance = await client.GetFromJsonAsync<JsonElement>("/instance");
            Assert.Equal("dedicated", instance.GetProperty("mode").GetString());
            dedicatedPid = instance.GetProperty("processId").GetInt32();
        }

        // The dedicated process got its database in its environment, not on its command line, and made no SQLite file.
        Assert.DoesNotContain("Password", await File.ReadAllTextAsync($"/proc/{dedicatedPid}/cmdline"), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("TENANTRY_DATABASE=", await File.ReadAllTextAsync($"/proc/{dedicatedPid}/environ"), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(host.DataDir, "databases", "pool.db")), "The shared instance fell back to embedded SQLite.");
        Assert.False(File.Exists(Path.Combine(host.DataDir, "databases", "silo", "pg-bank.db")), "The dedicated instance fell back to embedded SQLite.");

        // In PostgreSQL: pool rows in the pool database carry their tenant's id; the silo tenant's rows are in its own
        // database only, the bridge tenant's in its schema.
        var poolRows = await QueryAsync(pg, "tenantry_pool", "SELECT tenant_id, id, note FROM orders", r => (r.GetGuid(0), r.GetGuid(1), r.GetString(2)));
        Assert.Equal(
            orders["pg-shop"].Select(id => (shop.Id, id, "pg-shop")).Concat(orders["pg-kiosk"].Select(id => (kiosk.Id, id, "pg-kiosk"))).Order(),
            poolRows.Order());
        var siloRows = await QueryAsync(pg, "tenant_pg_bank", "SELECT id, note FROM orders", r => (r.GetGuid(0), r.GetString(1)));
        Assert.Equal(orders["pg-bank"].Select(id => (id, "pg-bank")).Order(), siloRows.Order());
        var bridgeRows = await QueryAsync(pg, "tenantry_bridge", "SELECT id, note FROM tenant_pg_firm.orders", r => (r.GetGuid(0), r.GetString(1)));
        Assert.Equal(orders["pg-firm"].Select(id => (id, "pg-firm")).Order(), bridgeRows.Order());

        // Row-level security: the pool app role sees nothing without the tenant setting, only that tenant's rows with it,
        // and cannot write a row for another tenant.
        await using var connection = new NpgsqlConnection(pg.SuperuserConnectionStringFor("tenantry_pool"));
        await connection.OpenAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await ExecuteAsync(connection, "SET LOCAL ROLE tenantry_pool_app");
        Assert.Equal(0L, await ScalarAsync(connection, "SELECT count(*) FROM orders"));
        await ExecuteAsync(connection, "SELECT set_config('app.tenant_id', $1, true)", kiosk.Id.ToString());
        Assert.Equal(2L, await ScalarAsync(connection, "SELECT count(*) FROM orders"));
        Assert.Equal(0L, await ScalarAsync(connection, "SELECT count(*) FROM orders WHERE tenant_id = $1", shop.Id));
        var refused = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(connection,
            "INSERT INTO orders (tenant_id, id, number, amount, created_by, created_at) VALUES ($1, gen_random_uuid(), 'X-1', 1, 'intruder', now())", shop.Id));
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
    }

    private static async Task<List<T>> QueryAsync<T>(PostgresServer pg, string database, string sql, Func<NpgsqlDataReader, T> map)
    {
        await using var connection = new NpgsqlConnection(pg.SuperuserConnectionStringFor(database));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<T>();
        while (await reader.ReadAsync())
        {
            rows.Add(map(reader));
        }

        return rows;
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, string sql, params object[] parameters)
    {
        await using var command = Command(connection, sql, parameters);
        return await command.ExecuteScalarAsync();
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, params object[] parameters)
    {
        await using var command = Command(connection, sql, parameters);
        await command.ExecuteNonQueryAsync();
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, object[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return command;
    }
}
