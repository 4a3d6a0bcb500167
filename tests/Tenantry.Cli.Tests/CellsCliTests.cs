using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

/// <summary><c>tenantry cells</c> and <c>tenants create --region</c> against a host with two regions.</summary>
public sealed class CellsCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public CellsCliTests() => _cli = new Cli(_config);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(
        "--Tenantry:Cells:0:Name=eu-1", "--Tenantry:Cells:0:Region=eu", "--Tenantry:Cells:0:Capacity=4",
        "--Tenantry:Cells:1:Name=us-1", "--Tenantry:Cells:1:Region=us"));

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        File.Delete(_config);
    }

    [Fact]
    public async Task Cells_show_their_region_and_fill_and_a_tenant_created_with_a_region_lands_in_its_cell()
    {
        Assert.Equal(0, (await _cli.RunAsync("login", "--url", _host.ControlPlane.GetLeftPart(UriPartial.Authority), "--client-secret", _host.OperatorSecret)).ExitCode);

        var created = await _cli.RunAsync("tenants", "create", "--name", "Euro Corp", "--admin-email", "ops@euro.test", "--region", "eu", "-o", "json");
        Assert.True(created.ExitCode == 0, created.ToString());
        var placement = JsonDocument.Parse(created.Out).RootElement.GetProperty("resources").GetProperty("placement");
        Assert.Equal(("eu-1", "eu"), (placement.GetProperty("cell").GetString(), placement.GetProperty("region").GetString()));

        var refused = await _cli.RunAsync("tenants", "create", "--name", "Mars Corp", "--admin-email", "ops@mars.test", "--region", "mars");
        Assert.Equal(5, refused.ExitCode);
        Assert.Contains("config.region", refused.Err, StringComparison.Ordinal);
        Assert.Contains("one of eu, us", refused.Err, StringComparison.Ordinal);

        var table = await _cli.RunAsync("cells");
        Assert.True(table.ExitCode == 0, table.ToString());
        var lines = table.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("CELL", lines[0], StringComparison.Ordinal);
        Assert.Contains(lines, l => l.StartsWith("eu-1", StringComparison.Ordinal) && l.Contains("eu", StringComparison.Ordinal) && l.Contains("25 %", StringComparison.Ordinal));

        var json = JsonDocument.Parse((await _cli.RunAsync("cells", "-o", "json")).Out).RootElement.GetProperty("items");
        Assert.Equal(["eu-1", "us-1"], json.EnumerateArray().Select(c => c.GetProperty("name").GetString()!).ToArray());
        Assert.Equal(1, json[0].GetProperty("tenants").GetInt32());
    }
}
