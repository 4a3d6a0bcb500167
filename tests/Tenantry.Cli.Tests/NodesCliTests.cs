using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

/// <summary><c>tenantry nodes</c> against a host: the embedded default is one live node, this host.</summary>
public sealed class NodesCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public NodesCliTests() => _cli = new Cli(_config);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(
        "--Tenantry:Node:Name=cli-node", "--Tenantry:Node:Capacity=7"));

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        File.Delete(_config);
    }

    [Fact]
    public async Task Nodes_lists_this_host_as_one_live_node_with_its_capacity()
    {
        Assert.Equal(0, (await _cli.RunAsync("login", "--url", _host.ControlPlane.GetLeftPart(UriPartial.Authority), "--client-secret", _host.OperatorSecret)).ExitCode);

        var table = await _cli.RunAsync("nodes");
        Assert.True(table.ExitCode == 0, table.ToString());
        var lines = table.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("NODE", lines[0], StringComparison.Ordinal);
        Assert.Contains(lines, l => l.StartsWith("cli-node (this)", StringComparison.Ordinal) && l.Contains("live", StringComparison.Ordinal) && l.Contains("127.0.0.1", StringComparison.Ordinal));

        var json = JsonDocument.Parse((await _cli.RunAsync("nodes", "-o", "json")).Out).RootElement.GetProperty("items");
        var node = Assert.Single(json.EnumerateArray());
        Assert.Equal("cli-node", node.GetProperty("name").GetString());
        Assert.Equal(7, node.GetProperty("capacity").GetInt32());
        Assert.Equal("live", node.GetProperty("status").GetString());
        Assert.True(node.GetProperty("self").GetBoolean());
    }
}
