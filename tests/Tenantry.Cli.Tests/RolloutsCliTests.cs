using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

/// <summary><c>tenantry rollouts</c>: start and watch a rollout of the default app, list it, and the exit codes of refused ones.</summary>
public sealed class RolloutsCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public RolloutsCliTests() => _cli = new Cli(_config);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(SampleApps.NoDefaultApp));

    public Task DisposeAsync()
    {
        _host?.Dispose();
        File.Delete(_config);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Rollouts_start_watches_to_the_end_lists_and_exits_non_zero_for_refused_ones()
    {
        using var op = await _host.OperatorClientAsync();
        var folder = SampleApps.BuiltOrdersFolder;
        var dll = Path.Combine(folder, "Orders.Api.dll");
        using (var registered = await op.PostAsJsonAsync("/v1/apps", new { name = "orders", routePrefix = "/", healthPath = "/healthz" }))
        {
            Assert.True(registered.IsSuccessStatusCode, await registered.Content.ReadAsStringAsync());
        }

        using (var first = await op.PostAsJsonAsync("/v1/apps/orders/releases", new
        {
            version = "1.0.0",
            process = new { command = TenantryHost.DotnetPath(), args = new[] { dll, "--Tenantry:App:DataDir=" + _host.DataDir }, workingDirectory = folder },
            migrationsPath = Path.Combine(folder, "migrations"),
        }))
        {
            Assert.True(first.IsSuccessStatusCode, await first.Content.ReadAsStringAsync());
        }

        using (var release = await op.PostAsJsonAsync("/v1/apps/orders/releases", new
        {
            version = "1.1.0",
            process = new { command = TenantryHost.DotnetPath(), args = new[] { dll, "--Tenantry:App:DataDir=" + _host.DataDir }, workingDirectory = folder },
            migrationsPath = Path.Combine(folder, "migrations"),
        }))
        {
            Assert.True(release.IsSuccessStatusCode, await release.Content.ReadAsStringAsync());
        }

        var login = await _cli.RunAsync("login", "--url", _host.ControlPlane.GetLeftPart(UriPartial.Authority), "--client-secret", _host.OperatorSecret);
        Assert.True(login.ExitCode == 0, login.ToString());

        var unknownApp = await _cli.RunAsync("rollouts", "start", "no-such-app", "1.0.0");
        Assert.True(unknownApp.ExitCode == 3, unknownApp.ToString());
        var unknownRelease = await _cli.RunAsync("rollouts", "start", "orders", "9.9.9");
        Assert.True(unknownRelease.ExitCode == 5, unknownRelease.ToString());
        Assert.Contains("9.9.9", unknownRelease.Err, StringComparison.Ordinal);
        var badWave = await _cli.RunAsync("rollouts", "start", "orders", "1.1.0", "--wave", "half");
        Assert.True(badWave.ExitCode == 2, badWave.ToString());

        var started = await _cli.RunAsync("rollouts", "start", "orders", "1.1.0", "--wave", "50%", "--bake", "1", "--max-error-rate", "0.5", "--watch");
        Assert.True(started.ExitCode == 0, started.ToString());
        Assert.Contains("orders 1.0.0 -> 1.1.0", started.Out, StringComparison.Ordinal);
        Assert.Contains("[succeeded]", started.Out, StringComparison.Ordinal);

        var list = await _cli.RunAsync("rollouts", "list", "-o", "json");
        Assert.True(list.ExitCode == 0, list.ToString());
        var item = JsonDocument.Parse(list.Out).RootElement.GetProperty("items")[0];
        Assert.Equal("succeeded", item.GetProperty("status").GetString());
        Assert.Equal("1.1.0", item.GetProperty("version").GetString());

        var get = await _cli.RunAsync("rollouts", "get", item.GetProperty("id").GetString()!);
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Contains("orders 1.0.0 -> 1.1.0: succeeded", get.Out, StringComparison.Ordinal);

        // A finished rollout cannot be paused: rejected, with the reason.
        var pause = await _cli.RunAsync("rollouts", "pause", item.GetProperty("id").GetString()!);
        Assert.True(pause.ExitCode == 5, pause.ToString());

        var app = await op.GetFromJsonAsync<JsonElement>("/v1/apps/orders");
        Assert.Equal("1.1.0", app.GetProperty("currentRelease").GetProperty("version").GetString());
    }
}
