using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

public sealed class WebhooksCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public WebhooksCliTests() => _cli = new Cli(_config);

    private string Url => _host.ControlPlane.GetLeftPart(UriPartial.Authority);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(
        "--Tenantry:Webhooks:AllowPrivateNetworks=true", "--Tenantry:Webhooks:PollInterval=00:00:00.100"));

    public Task DisposeAsync()
    {
        _host?.Dispose();
        File.Delete(_config);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Webhooks_are_created_listed_inspected_replayed_and_deleted_and_mails_listed_from_the_cli()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var login = await _cli.RunAsync("login", "--url", Url, "--client-secret", _host.OperatorSecret);
        Assert.True(login.ExitCode == 0, login.ToString());

        var create = await _cli.RunAsync("webhooks", "create", receiver.Url("/cli").ToString(), "--event", "tenant.*", "--event", "operation.succeeded");
        Assert.True(create.ExitCode == 0, create.ToString());
        Assert.Contains("Signing secret (shown once): whsec_", create.Out, StringComparison.Ordinal);
        var id = create.Out.Split(' ')[2];

        var refused = await _cli.RunAsync("webhooks", "create", receiver.Url().ToString(), "--event", "tenant.exploded");
        Assert.Equal(5, refused.ExitCode);
        Assert.Contains("events[0]", refused.Err, StringComparison.Ordinal);

        using (var api = await _host.OperatorClientAsync())
        {
            await api.CreateActiveTenantAsync("cli-hooked");
        }

        Assert.True(await receiver.WaitForAsync(r => r.Count >= 3));
        var list = await _cli.RunAsync("webhooks", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains(list.Out.Split('\n'), l => l.StartsWith(id, StringComparison.Ordinal) && l.Contains("tenant.*,operation.succeeded", StringComparison.Ordinal) && l.Contains("enabled", StringComparison.Ordinal));

        JsonElement[] items = [];
        for (var i = 0; i < 100 && items.Length < 3; i++)
        {
            var json = await _cli.RunAsync("webhooks", "deliveries", id, "--status", "succeeded", "-o", "json");
            Assert.True(json.ExitCode == 0, json.ToString());
            items = [.. JsonDocument.Parse(json.Out).RootElement.GetProperty("items").EnumerateArray()];
            await Task.Delay(50);
        }

        Assert.Equal(3, items.Length);
        var table = await _cli.RunAsync("webhooks", "deliveries", id);
        Assert.Contains(table.Out.Split('\n'), l => l.Contains("tenant.activated", StringComparison.Ordinal) && l.Contains(" 200 ", StringComparison.Ordinal));

        var replay = await _cli.RunAsync("webhooks", "replay", id, items[0].GetProperty("id").GetString()!);
        Assert.True(replay.ExitCode == 0, replay.ToString());
        Assert.Contains("Replaying", replay.Out, StringComparison.Ordinal);
        Assert.True(await receiver.WaitForAsync(r => r.Count >= 4));
        Assert.Equal(items[0].GetProperty("eventId").GetString(), receiver.Received.Last().Id);

        var mails = await _cli.RunAsync("mails", "--tenant", "cli-hooked");
        Assert.True(mails.ExitCode == 0, mails.ToString());
        Assert.Contains(mails.Out.Split('\n'), l => l.StartsWith("admin@cli-hooked.test", StringComparison.Ordinal) && l.Contains("welcome", StringComparison.Ordinal));

        var delete = await _cli.RunAsync("webhooks", "delete", id);
        Assert.True(delete.ExitCode == 0, delete.ToString());
        var gone = await _cli.RunAsync("webhooks", "deliveries", id);
        Assert.Equal(3, gone.ExitCode);
    }
}
