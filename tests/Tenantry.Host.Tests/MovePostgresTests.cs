using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>
/// A move between cells on real PostgreSQL servers, through a real host: a premium (silo) tenant of a cell on
/// server A moves to a cell on server B with its orders; its dedicated app keeps answering through the gateway,
/// now from B, and A keeps nothing of it once the grace is over.
/// </summary>
[Trait("Category", "PostgreSQL")]
public sealed class MovePostgresTests
{
    [Fact]
    public async Task A_silo_tenant_moves_to_a_cell_on_another_server_with_its_rows_and_its_app_keeps_answering()
    {
        await using var a = await PostgresServer.StartAsync();
        await using var b = await PostgresServer.StartAsync();
        await a.ExecuteAsync("CREATE DATABASE tenantry_control");
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(
        [
            "--Tenantry:Store=" + a.SuperuserConnectionStringFor("tenantry_control"),
            "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey,
            "--Tenantry:Postgres:Servers:0:Name=pg-a",
            "--Tenantry:Postgres:Servers:0:ConnectionString=" + a.SuperuserConnectionStringFor("postgres"),
            "--Tenantry:Postgres:Servers:1:Name=pg-b",
            "--Tenantry:Postgres:Servers:1:ConnectionString=" + b.SuperuserConnectionStringFor("postgres"),
            "--Tenantry:Cells:0:Name=eu-a",
            "--Tenantry:Cells:0:Region=eu",
            "--Tenantry:Cells:0:PostgresServers:0=pg-a",
            "--Tenantry:Cells:1:Name=eu-b",
            "--Tenantry:Cells:1:Region=eu",
            "--Tenantry:Cells:1:PostgresServers:0=pg-b",
            "--Tenantry:TierChanges:SourceGrace=00:00:00",
            "--Tenantry:TierChanges:DrainTime=00:00:00",
        ]));
        using var op = await host.OperatorClientAsync();
        var bank = await host.OnboardAsync(op, "mv-bank", "premium");
        Assert.Equal(("eu-a", "pg-a"), await WhereAsync(op, bank.Id));

        var orders = new List<Guid>();
        int before;
        using (var client = bank.Client())
        {
            for (var i = 1; i <= 3; i++)
            {
                using var created = await client.PostAsJsonAsync("/orders", new { amount = 10m * i, note = "before the move" });
                Assert.True(created.StatusCode == HttpStatusCode.Created, $"{created.StatusCode} {await created.Content.ReadAsStringAsync()}\n{host.Output}");
                orders.Add((await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid());
            }

            before = (await client.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32();
        }

        using (var moved = await op.PostAsJsonAsync($"/v1/tenants/{bank.Id}/move", new { cell = "eu-b" }))
        {
            Assert.True(moved.StatusCode == HttpStatusCode.Accepted, await moved.Content.ReadAsStringAsync());
            var operation = await WaitAsync(op, moved.Headers.Location!.ToString());
            Assert.True(operation.GetProperty("status").GetString() == "succeeded", $"{operation}\n{host.Output}");
            Assert.Equal("move", operation.GetProperty("kind").GetString());
        }

        Assert.Equal(("eu-b", "pg-b"), await WhereAsync(op, bank.Id));

        // The rows are on B; A keeps no database of the tenant (the grace is zero).
        Assert.Equal(3L, await ScalarAsync<long>(b, "tenant_mv_bank", "SELECT count(*) FROM orders"));
        Assert.False(await ScalarAsync<bool>(a, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_mv_bank')"));

        // Its dedicated app was started again and answers from B: the orders are there, and new ones land on B.
        using (var client = bank.Client())
        {
            var instance = await client.GetFromJsonAsync<JsonElement>("/instance");
            Assert.Equal("dedicated", instance.GetProperty("mode").GetString());
            Assert.NotEqual(before, instance.GetProperty("processId").GetInt32());
            Assert.Contains($"Port={b.Port}", await File.ReadAllTextAsync($"/proc/{instance.GetProperty("processId").GetInt32()}/environ"), StringComparison.Ordinal);

            var list = (await client.GetFromJsonAsync<JsonElement>("/orders")).GetProperty("items").EnumerateArray().Select(o => o.GetProperty("id").GetGuid()).ToList();
            Assert.Equal(orders.Order(), list.Order());
            using var created = await client.PostAsJsonAsync("/orders", new { amount = 1m, note = "after the move" });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        Assert.Equal(4L, await ScalarAsync<long>(b, "tenant_mv_bank", "SELECT count(*) FROM orders"));
    }

    private static async Task<(string? Cell, string? Server)> WhereAsync(HttpClient op, Guid id)
    {
        var resources = (await op.GetFromJsonAsync<JsonElement>($"/v1/tenants/{id}")).GetProperty("resources");
        return (resources.GetProperty("placement").GetProperty("cell").GetString(), resources.GetProperty("database").GetProperty("server").GetString());
    }

    private static async Task<JsonElement> WaitAsync(HttpClient op, string location)
    {
        var clock = Stopwatch.StartNew();
        JsonElement operation;
        do
        {
            operation = await op.GetFromJsonAsync<JsonElement>(location);
            if (operation.GetProperty("status").GetString() is "succeeded" or "failed")
            {
                return operation;
            }

            await Task.Delay(100);
        }
        while (clock.Elapsed < TimeSpan.FromSeconds(120));

        Assert.Fail($"The move did not finish: {operation}");
        return operation;
    }

    private static async Task<T> ScalarAsync<T>(PostgresServer server, string database, string sql)
    {
        await using var connection = new NpgsqlConnection(server.SuperuserConnectionStringFor(database));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
