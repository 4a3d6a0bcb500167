using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Health;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

/// <summary><c>tenantry health</c>: a tenant's figures as a table and as JSON, and the fleet's worst tenants, against the API's.</summary>
public sealed class HealthCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public HealthCliTests() => _cli = new Cli(_config);

    public async Task InitializeAsync() => _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane());

    public Task DisposeAsync()
    {
        _host?.Dispose();
        File.Delete(_config);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Health_prints_a_tenants_minutes_and_the_worst_tenants_as_the_api_has_them()
    {
        using var op = await _host.OperatorClientAsync();
        var calm = Guid.Parse(await op.CreateActiveTenantAsync("calm-co"));
        var failing = Guid.Parse(await op.CreateActiveTenantAsync("failing-co"));
        var minute = new DateTimeOffset(DateTimeOffset.UtcNow.UtcTicks / TimeSpan.TicksPerMinute * TimeSpan.TicksPerMinute, TimeSpan.Zero);
        await PostAsync(new TenantHealthBatch("cli-1",
        [
            Sample(calm, minute.AddMinutes(-2), 40, 1, 0, 0),
            Sample(calm, minute.AddMinutes(-1), 60, 2, 0, 1),
            Sample(failing, minute.AddMinutes(-1), 50, 0, 10, 0),
        ]));

        var login = await _cli.RunAsync("login", "--url", _host.ControlPlane.GetLeftPart(UriPartial.Authority), "--client-secret", _host.OperatorSecret);
        Assert.True(login.ExitCode == 0, login.ToString());

        var table = await _cli.RunAsync("health", "calm-co", "--range", "10m", "--step", "1m");
        Assert.True(table.ExitCode == 0, table.ToString());
        var lines = table.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("AT", lines[0], StringComparison.Ordinal);
        Assert.Equal(3, lines.Length); // the header and the two minutes with traffic
        Assert.Contains(lines, l => l.StartsWith(minute.AddMinutes(-1).UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal) && l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2] == "60");
        Assert.Contains("100 requests, 3 4xx, 0 5xx (0 %), 1 throttled", table.Err, StringComparison.Ordinal);

        var json = await _cli.RunAsync("health", "calm-co", "--range", "10m", "--step", "1m", "-o", "json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var fromCli = JsonDocument.Parse(json.Out).RootElement;
        var fromApi = await op.GetJsonAsync($"/v1/tenants/calm-co/health?from={Uri.EscapeDataString(fromCli.GetProperty("from").GetString()!)}&to={Uri.EscapeDataString(fromCli.GetProperty("to").GetString()!)}&step=1m");
        Assert.Equal(fromApi.GetProperty("items").ToString(), fromCli.GetProperty("items").ToString());

        var worst = await _cli.RunAsync("health", "worst", "--window", "5m", "--by", "errorRate");
        Assert.True(worst.ExitCode == 0, worst.ToString());
        var rows = worst.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("TENANT", rows[0], StringComparison.Ordinal);
        Assert.StartsWith("failing-co", rows[1], StringComparison.Ordinal);
        Assert.Contains("20.00 %", rows[1], StringComparison.Ordinal);
        Assert.StartsWith("calm-co", rows[2], StringComparison.Ordinal);

        var bad = await _cli.RunAsync("health", "calm-co", "--step", "90s");
        Assert.Equal(5, bad.ExitCode);
        Assert.Contains("step", bad.Err, StringComparison.Ordinal);
        var badRange = await _cli.RunAsync("health", "calm-co", "--range", "soon");
        Assert.Equal(2, badRange.ExitCode);
    }

    private async Task PostAsync(TenantHealthBatch batch)
    {
        using var http = new HttpClient { BaseAddress = _host.ControlPlane };
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials", ["client_id"] = "gateway", ["client_secret"] = _host.GatewaySecret, ["scope"] = "tenantry:routes",
        });
        using var token = await http.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (await token.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString());
        using var posted = await http.PostAsJsonAsync(new Uri("/v1/health/samples", UriKind.Relative), batch, new JsonSerializerOptions(JsonSerializerDefaults.Web));
        Assert.True(posted.IsSuccessStatusCode, await posted.Content.ReadAsStringAsync());
        Assert.Equal(batch.Samples.Count, (await posted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accepted").GetInt32());
    }

    private static TenantHealthSample Sample(Guid tenant, DateTimeOffset minute, long requests, long s4, long s5, long throttled)
    {
        var sketch = new LatencySketch();
        for (var i = 0; i < requests; i++)
        {
            sketch.Add(2 + (i % 7));
        }

        return new TenantHealthSample(tenant, minute, requests, s4, s5, throttled, sketch);
    }
}
