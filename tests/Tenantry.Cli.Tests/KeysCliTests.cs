using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

/// <summary><c>tenantry keys list</c> and <c>tenantry keys rotate</c> against a real host.</summary>
public sealed class KeysCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public KeysCliTests() => _cli = new Cli(_config);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane());

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        File.Delete(_config);
    }

    [Fact]
    public async Task Keys_list_shows_no_material_and_rotate_makes_a_new_current_key_and_retires_the_old()
    {
        Assert.Equal(0, (await _cli.RunAsync("login", "--url", _host.ControlPlane.GetLeftPart(UriPartial.Authority), "--client-secret", _host.OperatorSecret)).ExitCode);

        var table = await _cli.RunAsync("keys", "list");
        Assert.True(table.ExitCode == 0, table.ToString());
        var lines = table.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("KIND", lines[0], StringComparison.Ordinal);
        Assert.Contains(lines, l => l.StartsWith("signing", StringComparison.Ordinal) && l.Contains("current", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("tenant-context", StringComparison.Ordinal) && l.Contains("next", StringComparison.Ordinal));
        Assert.DoesNotContain("PRIVATE", table.Out, StringComparison.Ordinal);

        var before = Current(JsonDocument.Parse((await _cli.RunAsync("keys", "list", "-o", "json")).Out).RootElement.GetProperty("items"), "signing");

        var rotated = await _cli.RunAsync("keys", "rotate", "--key", "signing", "-o", "json");
        Assert.True(rotated.ExitCode == 0, rotated.ToString());
        var result = JsonDocument.Parse(rotated.Out).RootElement;
        var now = Assert.Single(result.GetProperty("current").EnumerateArray());
        Assert.Equal("signing", now.GetProperty("kind").GetString());
        Assert.NotEqual(before, now.GetProperty("id").GetString());
        Assert.Equal(before, Assert.Single(result.GetProperty("retiring").EnumerateArray()).GetProperty("id").GetString());

        var unknown = await _cli.RunAsync("keys", "rotate", "--key", "nope");
        Assert.NotEqual(0, unknown.ExitCode);

        var after = JsonDocument.Parse((await _cli.RunAsync("keys", "list", "-o", "json")).Out).RootElement.GetProperty("items");
        Assert.Equal(now.GetProperty("id").GetString(), Current(after, "signing"));
        Assert.Contains(after.EnumerateArray(), k => k.GetProperty("id").GetString() == before && k.GetProperty("status").GetString() == "retiring");
    }

    private static string Current(JsonElement keys, string kind) =>
        keys.EnumerateArray().Single(k => k.GetProperty("kind").GetString() == kind && k.GetProperty("status").GetString() == "current").GetProperty("id").GetString()!;
}
