using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.TierChanges;
using Tenantry.Data;
using Tenantry.FunctionalTests.Tenants;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.TierChanges;

/// <summary>
/// Moves between cells whose PostgreSQL servers differ (cell eu-a on server pg-a, eu-b on pg-b): a bridge tenant's
/// schema moves from one server to the other; a failed move drops only the new copy; a pool tenant's move changes
/// its placement only (its rows stay in the shared pool).
/// </summary>
[Trait("Category", "PostgreSQL")]
public sealed class MovePostgresTests(TwoPostgresServers pg) : IClassFixture<TwoPostgresServers>
{
    [Fact]
    public async Task A_bridge_tenant_moves_its_schema_to_the_other_server_and_a_failed_move_leaves_it_whole_where_it_was()
    {
        await using var factory = Host();
        using var client = await factory.OperatorAsync();
        await SampleApps.RegisterOrdersAsync(client);
        var id = await CreateAsync(client, "mv-firm", "standard");
        var tenant = Ref(id, "mv-firm");
        await InsertAsync(factory, tenant, 6);
        Assert.Equal(("eu-a", "pg-a"), await WhereAsync(client, id));

        // A target that no longer holds what the source does fails the verify: only the copy on pg-b goes.
        factory.Services.GetRequiredService<TierChangeHooks>().At = async (point, moving, ct) =>
        {
            if (point == "bulk-verify" && moving == Guid.Parse(id))
            {
                await TwoPostgresServers.ScalarAsync<int>(pg.B, "tenantry_bridge", "UPDATE tenant_mv_firm.orders SET note = 'tampered' WHERE id = (SELECT id FROM tenant_mv_firm.orders ORDER BY id LIMIT 1) RETURNING 1");
            }
        };
        var failed = await MoveTests.MoveAsync(client, id, "eu-b");
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Contains("differs", failed.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(("eu-a", "pg-a"), await WhereAsync(client, id));
        Assert.False(await SchemaAsync(pg.B));
        Assert.Equal(6L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_bridge", "SELECT count(*) FROM tenant_mv_firm.orders"));
        Assert.Equal(6, (await CountAsync(factory, tenant)));
        using (var retry = await client.PostAsync(new Uri($"/v1/operations/{failed.GetProperty("id").GetString()}/retry", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Conflict, retry.StatusCode);
        }

        // Again, untouched: the schema and its rows are on pg-b, nothing is left on pg-a, and the tenant writes there.
        factory.Services.GetRequiredService<TierChangeHooks>().At = null;
        var moved = await MoveTests.MoveAsync(client, id, "eu-b");
        Assert.True(moved.GetProperty("status").GetString() == "succeeded", moved.ToString());
        Assert.Equal(("eu-b", "pg-b"), await WhereAsync(client, id));
        Assert.Equal(6L, await TwoPostgresServers.ScalarAsync<long>(pg.B, "tenantry_bridge", "SELECT count(*) FROM tenant_mv_firm.orders"));
        Assert.False(await SchemaAsync(pg.A));
        await InsertAsync(factory, tenant, 1);
        Assert.Equal(7L, await TwoPostgresServers.ScalarAsync<long>(pg.B, "tenantry_bridge", "SELECT count(*) FROM tenant_mv_firm.orders"));
        var exports = Directory.GetFiles(Path.Combine(factory.DataDir, "tenants", "mv-firm"), "*before-move*", SearchOption.AllDirectories);
        Assert.Single(exports);
    }

    [Fact]
    public async Task A_pool_tenant_changes_cell_without_its_rows_leaving_the_shared_pool()
    {
        await using var factory = Host();
        using var client = await factory.OperatorAsync();
        await SampleApps.RegisterOrdersAsync(client);
        var id = await CreateAsync(client, "mv-shop", "basic");
        var tenant = TenantRef.ForData(Guid.Parse(id), "mv-shop", IsolationModel.Pool);
        await InsertAsync(factory, tenant, 4);
        var cell = (await client.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("resources").GetProperty("placement").GetProperty("cell").GetString();
        var to = cell == "eu-a" ? "eu-b" : "eu-a";

        var moved = await MoveTests.MoveAsync(client, id, to);
        Assert.True(moved.GetProperty("status").GetString() == "succeeded", moved.ToString());
        var resources = (await client.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("resources");
        Assert.Equal(to, resources.GetProperty("placement").GetProperty("cell").GetString());
        Assert.Equal("tenantry_pool", resources.GetProperty("database").GetProperty("database").GetString());
        Assert.Equal(4L, await TwoPostgresServers.ScalarAsync<long>(pg.A, "tenantry_pool", "SELECT count(*) FROM orders WHERE tenant_id = $1", Guid.Parse(id)));
        Assert.Equal(4, await CountAsync(factory, tenant));
    }

    private TenantryFactory Host()
    {
        var factory = pg.Host();
        factory.Settings["Tenantry:TierChanges:SourceGrace"] = "00:00:00";
        factory.Settings["Tenantry:TierChanges:DrainTime"] = "00:00:00";
        factory.Settings["Tenantry:Cells:0:Name"] = "eu-a";
        factory.Settings["Tenantry:Cells:0:Region"] = "eu";
        factory.Settings["Tenantry:Cells:0:PostgresServers:0"] = "pg-a";
        factory.Settings["Tenantry:Cells:1:Name"] = "eu-b";
        factory.Settings["Tenantry:Cells:1:Region"] = "eu";
        factory.Settings["Tenantry:Cells:1:PostgresServers:0"] = "pg-b";
        return factory;
    }

    private static async Task<string> CreateAsync(HttpClient client, string slug, string tier)
    {
        using var response = await client.CreateTenantAsync(new { name = slug, slug, tier, adminEmail = $"ops@{slug}.test", config = new { region = "eu" } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.JsonAsync()).GetProperty("id").GetString()!;
        await client.WaitForStatusAsync(id, "active", seconds: 60);
        return id;
    }

    private static async Task<(string? Cell, string? Server)> WhereAsync(HttpClient client, string id)
    {
        var resources = (await client.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("resources");
        return (resources.GetProperty("placement").GetProperty("cell").GetString(), resources.GetProperty("database").GetProperty("server").GetString());
    }

    private static async Task<bool> SchemaAsync(PostgresServer server) =>
        await TwoPostgresServers.ScalarAsync<bool>(server, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenantry_bridge')")
        && await TwoPostgresServers.ScalarAsync<bool>(server, "tenantry_bridge", "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_mv_firm')");

    private static TenantRef Ref(string id, string slug) => TenantRef.ForData(Guid.Parse(id), slug, IsolationModel.Bridge);

    private static async Task<TenantDataContext> ContextAsync(TenantryFactory factory, TenantRef tenant) =>
        (await factory.Services.GetRequiredService<ITenantDatabaseProvider>().ConnectAsync(tenant, CancellationToken.None))!;

    private static async Task InsertAsync(TenantryFactory factory, TenantRef tenant, int count)
    {
        await using var session = await factory.Services.GetRequiredService<ITenantDataSource>().OpenSessionAsync(await ContextAsync(factory, tenant));
        for (var i = 0; i < count; i++)
        {
            await session.ExecuteAsync(
                "INSERT INTO orders (tenant_id, id, number, amount, note, created_by, created_at) VALUES (@tenant, @id, @number, @amount, 'row', 'test', @at)",
                [("@tenant", tenant.Id), ("@id", Guid.NewGuid()), ("@number", $"M-{i}"), ("@amount", 5m + i), ("@at", DateTimeOffset.UtcNow)]);
        }

        await session.CommitAsync();
    }

    private static async Task<int> CountAsync(TenantryFactory factory, TenantRef tenant)
    {
        await using var session = await factory.Services.GetRequiredService<ITenantDataSource>().OpenReadSessionAsync(await ContextAsync(factory, tenant));
        return (await session.QueryAsync("SELECT id FROM orders", r => r.GetGuid(0))).Count;
    }
}
