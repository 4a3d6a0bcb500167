using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

/// <summary><c>tenants move --cell</c> against a host with two cells of one region.</summary>
public sealed class MoveCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public MoveCliTests() => _cli = new Cli(_config);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(
        "--Tenantry:Cells:0:Name=eu-1", "--Tenantry:Cells:0:Region=eu",
        "--Tenantry:Cells:1:Name=eu-2", "--Tenantry:Cells:1:Region=eu",
        "--Tenantry:Cells:2:Name=us-1", "--Tenantry:Cells:2:Region=us"));

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        File.Delete(_config);
    }

    [Fact]
    public async Task A_tenant_moves_to_another_cell_of_its_region_and_a_cell_of_another_region_is_refused()
    {
        Assert.Equal(0, (await _cli.RunAsync("login", "--url", _host.ControlPlane.GetLeftPart(UriPartial.Authority), "--client-secret", _host.OperatorSecret)).ExitCode);
        var created = await _cli.RunAsync("tenants", "create", "--name", "Mover Corp", "--slug", "mover-corp", "--admin-email", "ops@mover.test", "--region", "eu", "--wait", "-o", "json");
        Assert.True(created.ExitCode == 0, created.ToString());

        var moved = await _cli.RunAsync("tenants", "move", "mover-corp", "--cell", "eu-2", "--wait", "-o", "json");
        Assert.True(moved.ExitCode == 0, moved.ToString());
        var op = JsonDocument.Parse(moved.Out[moved.Out.IndexOf('{', StringComparison.Ordinal)..]).RootElement;
        Assert.Equal(("move", "succeeded"), (op.GetProperty("kind").GetString(), op.GetProperty("status").GetString()));

        var tenant = JsonDocument.Parse((await _cli.RunAsync("tenants", "show", "mover-corp", "-o", "json")).Out).RootElement;
        Assert.Equal("eu-2", tenant.GetProperty("resources").GetProperty("placement").GetProperty("cell").GetString());

        var refused = await _cli.RunAsync("tenants", "move", "mover-corp", "--cell", "us-1");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("region", refused.Err, StringComparison.Ordinal);

        var missing = await _cli.RunAsync("tenants", "move", "mover-corp");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("--cell", missing.Err, StringComparison.Ordinal);
    }
}
