using System.Net;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Tenants;

/// <summary>Cells that name PostgreSQL servers: a tenant's database is made only on a server of its region's cell.</summary>
[Trait("Category", "PostgreSQL")]
public sealed class CellPostgresTests(TwoPostgresServers pg) : IClassFixture<TwoPostgresServers>
{
    [Fact]
    public async Task Bridge_and_silo_databases_are_made_on_the_servers_of_the_tenants_cell_only()
    {
        await using var factory = pg.Host();
        factory.Settings["Tenantry:Cells:0:Name"] = "us-1";
        factory.Settings["Tenantry:Cells:0:Region"] = "us";
        factory.Settings["Tenantry:Cells:0:PostgresServers:0"] = "pg-a";
        factory.Settings["Tenantry:Cells:1:Name"] = "eu-1";
        factory.Settings["Tenantry:Cells:1:Region"] = "eu";
        factory.Settings["Tenantry:Cells:1:PostgresServers:0"] = "pg-b";
        using var client = await factory.OperatorAsync();
        await SampleApps.RegisterOrdersAsync(client);

        // Both servers are empty: left to itself, placement would take pg-a first.
        var euSilo = await CreateActiveAsync(client, "cell-eu-silo", "premium", "eu");
        var euBridge = await CreateActiveAsync(client, "cell-eu-bridge", "standard", "eu");
        var usSilo = await CreateActiveAsync(client, "cell-us-silo", "premium", "us");

        Assert.Equal(("pg-b", "eu-1"), await WhereAsync(client, euSilo));
        Assert.Equal(("pg-b", "eu-1"), await WhereAsync(client, euBridge));
        Assert.Equal(("pg-a", "us-1"), await WhereAsync(client, usSilo));
        Assert.True(await TwoPostgresServers.ScalarAsync<bool>(pg.B, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_cell_eu_silo')"));
        Assert.False(await TwoPostgresServers.ScalarAsync<bool>(pg.A, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_cell_eu_silo')"));
        Assert.True(await TwoPostgresServers.ScalarAsync<bool>(pg.A, "postgres", "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_cell_us_silo')"));

        var cells = (await client.GetJsonAsync("/v1/cells")).GetProperty("items").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("tenants").GetInt64());
        Assert.Equal(2L, cells["eu-1"]);
        Assert.Equal(1L, cells["us-1"]);
    }

    private static async Task<string> CreateActiveAsync(HttpClient client, string slug, string tier, string region)
    {
        using var response = await client.CreateTenantAsync(new { name = slug, slug, tier, adminEmail = $"ops@{slug}.test", config = new { region } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.JsonAsync()).GetProperty("id").GetString()!;
        await client.WaitForStatusAsync(id, "active", seconds: 60);
        return id;
    }

    private static async Task<(string? Server, string? Cell)> WhereAsync(HttpClient client, string id)
    {
        var resources = (await client.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("resources");
        return (resources.GetProperty("database").GetProperty("server").GetString(), resources.GetProperty("placement").GetProperty("cell").GetString());
    }
}
