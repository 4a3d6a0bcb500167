using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Tenants;

/// <summary>Cells and regions on the embedded default: placement by region, capacity, and what is refused.</summary>
public sealed class CellTests
{
    private static TenantryFactory TwoRegions(int euCapacity = 1)
    {
        var factory = new TenantryFactory();
        factory.Settings["Tenantry:Cells:0:Name"] = "eu-1";
        factory.Settings["Tenantry:Cells:0:Region"] = "eu";
        factory.Settings["Tenantry:Cells:0:Capacity"] = euCapacity.ToString(System.Globalization.CultureInfo.InvariantCulture);
        factory.Settings["Tenantry:Cells:1:Name"] = "us-1";
        factory.Settings["Tenantry:Cells:1:Region"] = "us";
        factory.Settings["Tenantry:Cells:2:Name"] = "us-2";
        factory.Settings["Tenantry:Cells:2:Region"] = "us";
        return factory;
    }

    [Fact]
    public async Task Without_cells_one_implicit_cell_takes_every_region()
    {
        await using var factory = new TenantryFactory();
        using var client = await factory.OperatorAsync();
        using var created = await client.CreateTenantAsync(new { name = "Anywhere", slug = "anywhere", tier = "basic", adminEmail = "ops@anywhere.test", config = new { region = "mars" } });
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var tenant = await client.WaitForStatusAsync((await created.JsonAsync()).GetProperty("id").GetString()!, "active");
        var placement = tenant.GetProperty("resources").GetProperty("placement");
        Assert.Equal("default", placement.GetProperty("cell").GetString());
        Assert.Equal(JsonValueKind.Null, placement.GetProperty("region").ValueKind);

        var cells = (await client.GetJsonAsync("/v1/cells")).GetProperty("items").EnumerateArray().ToList();
        var only = Assert.Single(cells);
        Assert.Equal(("default", 1L), (only.GetProperty("name").GetString(), only.GetProperty("tenants").GetInt64()));
    }

    [Fact]
    public async Task A_tenant_is_placed_only_in_a_cell_of_its_region_and_a_full_region_is_refused()
    {
        await using var factory = TwoRegions(euCapacity: 1);
        using var client = await factory.OperatorAsync();

        var eu = await CreateAsync(client, "eu-first", new { region = "eu" });
        Assert.Equal(HttpStatusCode.Accepted, eu.Status);
        Assert.Equal(("eu-1", "eu"), Placement(eu.Body));
        await client.WaitForStatusAsync(eu.Body.GetProperty("id").GetString()!, "active");

        // The eu cell is full; the us cells have room, but a tenant of eu never goes there.
        var second = await CreateAsync(client, "eu-second", new { region = "eu" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, second.Status);
        Assert.EndsWith("/no-cell-room", second.Body.GetProperty("type").GetString(), StringComparison.Ordinal);
        Assert.Contains("region 'eu'", second.Body.GetProperty("detail").GetString(), StringComparison.Ordinal);
        using (var missing = await client.GetAsync(new Uri("/v1/tenants/eu-second", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        // Two cells of us: they fill evenly.
        var us1 = await CreateAsync(client, "us-a", new { region = "us" });
        var us2 = await CreateAsync(client, "us-b", new { region = "us" });
        Assert.Equal(new[] { "us-1", "us-2" }, new[] { Placement(us1.Body).Cell, Placement(us2.Body).Cell });

        // No region: any cell with room (eu-1 is full, so a us cell).
        var anywhere = await CreateAsync(client, "no-region", new { plan = "x" });
        Assert.Equal(HttpStatusCode.Accepted, anywhere.Status);
        Assert.StartsWith("us-", Placement(anywhere.Body).Cell, StringComparison.Ordinal);

        var cells = (await client.GetJsonAsync("/v1/cells")).GetProperty("items").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => (Region: c.GetProperty("region").GetString(), Tenants: c.GetProperty("tenants").GetInt64(), Capacity: c.GetProperty("capacity").GetInt32()));
        Assert.Equal(("eu", 1L, 1), cells["eu-1"]);
        Assert.Equal(3L, cells["us-1"].Tenants + cells["us-2"].Tenants);
    }

    [Fact]
    public async Task An_unknown_region_is_refused_naming_the_regions_there_are()
    {
        await using var factory = TwoRegions();
        using var client = await factory.OperatorAsync();
        foreach (var config in new object[] { new { region = "mars" }, new { region = 7 }, new { region = "EU" } })
        {
            var refused = await CreateAsync(client, "martian", config);
            Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
            var problem = refused.Body.GetProperty("errors").GetProperty("config.region")[0].GetString()!;
            Assert.Contains("one of eu, us", problem, StringComparison.Ordinal);
        }

        var tenants = await client.GetJsonAsync("/v1/tenants");
        Assert.Empty(tenants.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task Changing_a_tenants_region_to_one_its_cell_does_not_serve_is_refused_as_a_move()
    {
        await using var factory = TwoRegions(euCapacity: 5);
        using var client = await factory.OperatorAsync();
        var created = await CreateAsync(client, "eu-tenant", new { region = "eu", size = "s" });
        var id = created.Body.GetProperty("id").GetString()!;
        await client.WaitForStatusAsync(id, "active");

        var moved = await PatchAsync(client, id, new { config = new { region = "us" } });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, moved.StatusCode);
        Assert.EndsWith("/region-change-moves-data", (await moved.JsonAsync()).GetProperty("type").GetString(), StringComparison.Ordinal);

        var unknown = await PatchAsync(client, id, new { config = new { region = "mars" } });
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);

        // Other config changes, and the same region, are plain edits.
        var same = await PatchAsync(client, id, new { config = new { region = "eu", size = "m" } });
        Assert.Equal(HttpStatusCode.OK, same.StatusCode);
        var tenant = await client.GetJsonAsync($"/v1/tenants/{id}");
        Assert.Equal("m", tenant.GetProperty("config").GetProperty("size").GetString());
        Assert.Equal(("eu-1", "eu"), Placement(tenant));
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> CreateAsync(HttpClient client, string slug, object config)
    {
        using var response = await client.CreateTenantAsync(new { name = slug, slug, tier = "basic", adminEmail = $"ops@{slug}.test", config });
        return (response.StatusCode, await response.JsonAsync());
    }

    private static (string Cell, string? Region) Placement(JsonElement tenant)
    {
        var placement = tenant.GetProperty("resources").GetProperty("placement");
        return (placement.GetProperty("cell").GetString()!, placement.GetProperty("region").GetString());
    }

    private static async Task<HttpResponseMessage> PatchAsync(HttpClient client, string id, object patch)
    {
        using var get = await client.GetAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative));
        using var request = new HttpRequestMessage(HttpMethod.Patch, new Uri($"/v1/tenants/{id}", UriKind.Relative))
        {
            Content = JsonContent.Create(patch, new System.Net.Http.Headers.MediaTypeHeaderValue("application/merge-patch+json")),
        };
        request.Headers.TryAddWithoutValidation("If-Match", get.Headers.ETag!.Tag);
        return await client.SendAsync(request);
    }
}
