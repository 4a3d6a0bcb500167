using System.Globalization;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Cli.Tests;

/// <summary><c>tenantry plans</c>, <c>invoices</c>, <c>costs</c> and <c>migrations</c> against a real host: tables for people, JSON equal to the API's, exit codes.</summary>
public sealed class BillingCliTests : IAsyncLifetime
{
    private readonly string _config = Path.Combine(Path.GetTempPath(), "tenantry-cli-tests", Guid.NewGuid().ToString("N") + ".json");
    private readonly Cli _cli;
    private TenantryHost _host = null!;

    public BillingCliTests() => _cli = new Cli(_config);

    public async Task InitializeAsync()
    {
        _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(
            "--Tenantry:Costs:PriceBook:DatabaseMonth=30", "--Tenantry:Costs:PriceBook:DedicatedInstanceHour=0.5"));
        var login = await _cli.RunAsync("login", "--url", _host.ControlPlane.GetLeftPart(UriPartial.Authority), "--client-secret", _host.OperatorSecret);
        Assert.True(login.ExitCode == 0, login.ToString());
    }

    public Task DisposeAsync()
    {
        _host?.Dispose();
        File.Delete(_config);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Plans_are_listed_created_shown_and_changed_and_a_stale_etag_or_a_duplicate_exits_5()
    {
        var list = await _cli.RunAsync("plans", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.StartsWith("ID", list.Out, StringComparison.Ordinal);
        Assert.Contains(list.Out.Split('\n'), l => l.StartsWith("basic ", StringComparison.Ordinal) && l.Contains("pool", StringComparison.Ordinal));

        var created = await _cli.RunAsync("plans", "create", "gold", "--name", "Gold", "--tier", "basic", "--isolation", "pool", "--base-price", "10");
        Assert.True(created.ExitCode == 0, created.ToString());
        var duplicate = await _cli.RunAsync("plans", "create", "gold", "--name", "Gold", "--tier", "basic", "--isolation", "pool", "--base-price", "10");
        Assert.True(duplicate.ExitCode == 5, duplicate.ToString());

        var stale = await _cli.RunAsync("plans", "update", "gold", "--base-price", "12", "--if-match", "\"999\"");
        Assert.True(stale.ExitCode == 5, stale.ToString());
        var updated = await _cli.RunAsync("plans", "update", "gold", "--base-price", "12");
        Assert.True(updated.ExitCode == 0, updated.ToString());

        var get = await _cli.RunAsync("plans", "get", "gold", "-o", "json");
        Assert.True(get.ExitCode == 0, get.ToString());
        using var op = await _host.OperatorClientAsync();
        var fromApi = await op.GetJsonAsync("/v1/plans/gold");
        Assert.Equal(12m, JsonDocument.Parse(get.Out).RootElement.GetProperty("basePrice").GetDecimal());
        Assert.Equal(JsonSerializer.Serialize(fromApi), JsonSerializer.Serialize(JsonDocument.Parse(get.Out).RootElement));
        var missing = await _cli.RunAsync("plans", "get", "no-such-plan");
        Assert.True(missing.ExitCode == 3, missing.ToString());
    }

    [Fact]
    public async Task Invoices_preview_finalize_and_list_a_tenants_month_and_costs_run_the_price_book()
    {
        using var op = await _host.OperatorClientAsync();
        await op.CreateActiveTenantAsync("inv-co");
        await op.CreateActiveTenantAsync("silo-co", "premium");
        var period = DateTime.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);

        var preview = await _cli.RunAsync("invoices", "preview", "inv-co", "-o", "json");
        Assert.True(preview.ExitCode == 0, preview.ToString());
        var apiPreview = await op.GetJsonAsync($"/v1/tenants/inv-co/invoices/preview?period={period}");
        Assert.Equal(apiPreview.GetProperty("total").GetDecimal(), JsonDocument.Parse(preview.Out).RootElement.GetProperty("total").GetDecimal());
        var previewTable = await _cli.RunAsync("invoices", "preview", "inv-co");
        Assert.Contains($"Total: {apiPreview.GetProperty("total").GetRawText()} USD", previewTable.Out, StringComparison.Ordinal);

        var finalized = await _cli.RunAsync("invoices", "finalize", "inv-co", "--period", period, "-o", "json");
        Assert.True(finalized.ExitCode == 0, finalized.ToString());
        Assert.Equal("finalized", JsonDocument.Parse(finalized.Out).RootElement.GetProperty("status").GetString());
        var again = await _cli.RunAsync("invoices", "finalize", "inv-co", "--period", period, "-o", "json"); // already final: the same invoice
        Assert.Equal(JsonDocument.Parse(finalized.Out).RootElement.GetProperty("id").GetString(), JsonDocument.Parse(again.Out).RootElement.GetProperty("id").GetString());
        var list = await _cli.RunAsync("invoices", "list", "inv-co");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains(list.Out.Split('\n'), l => l.Contains(period, StringComparison.Ordinal) && l.Contains("finalized", StringComparison.Ordinal));
        var unknown = await _cli.RunAsync("invoices", "list", "no-such-tenant");
        Assert.True(unknown.ExitCode == 3, unknown.ToString());

        var today = DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var dryRun = await _cli.RunAsync("costs", "run", "--day", today, "--preview", "-o", "json");
        Assert.True(dryRun.ExitCode == 0, dryRun.ToString());
        var items = JsonDocument.Parse(dryRun.Out).RootElement.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(["DatabaseMonth", "DedicatedInstanceHour"], items.Where(i => i.GetProperty("slug").GetString() == "silo-co").Select(i => i.GetProperty("item").GetString()).Order());
        Assert.DoesNotContain(items, i => i.GetProperty("slug").GetString() == "inv-co"); // a pool tenant holds nothing of its own

        var run = await _cli.RunAsync("costs", "run", "--day", today);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("DedicatedInstanceHour", run.Out, StringComparison.Ordinal);
        var badDay = await _cli.RunAsync("costs", "run", "--day", "yesterday");
        Assert.True(badDay.ExitCode == 5, badDay.ToString());
        Assert.Contains("day", badDay.Err, StringComparison.Ordinal);

        var costs = await _cli.RunAsync("costs", "--period", period);
        Assert.True(costs.ExitCode == 0, costs.ToString());
        Assert.StartsWith("TENANT", costs.Out, StringComparison.Ordinal);
        var siloRow = costs.Out.Split('\n').Single(l => l.StartsWith("silo-co ", StringComparison.Ordinal));
        var apiCosts = await op.GetJsonAsync($"/v1/costs?period={period}");
        var silo = apiCosts.GetProperty("items").EnumerateArray().Single(i => i.GetProperty("slug").GetString() == "silo-co");
        Assert.True(silo.GetProperty("directCost").GetDecimal() > 0);
        Assert.Contains(silo.GetProperty("directCost").GetRawText(), siloRow, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrations_run_watches_to_the_end_and_lists_the_runs()
    {
        using var op = await _host.OperatorClientAsync();
        await op.CreateActiveTenantAsync("mig-cli", "standard");

        var run = await _cli.RunAsync("migrations", "run", "--watch");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains(": succeeded (", run.Out, StringComparison.Ordinal);
        Assert.Contains("succeeded: ", run.Err, StringComparison.Ordinal); // progress lines

        var list = await _cli.RunAsync("migrations", "list", "-o", "json");
        Assert.True(list.ExitCode == 0, list.ToString());
        var item = JsonDocument.Parse(list.Out).RootElement.GetProperty("items")[0];
        Assert.Equal("succeeded", item.GetProperty("status").GetString());
        Assert.Equal(item.GetProperty("progress").GetProperty("total").GetInt32(), item.GetProperty("progress").GetProperty("done").GetInt32());

        var watch = await _cli.RunAsync("migrations", "watch", item.GetProperty("id").GetString()!, "-o", "json");
        Assert.True(watch.ExitCode == 0, watch.ToString());
        Assert.Equal(item.GetProperty("id").GetString(), JsonDocument.Parse(watch.Out).RootElement.GetProperty("id").GetString());
        var table = await _cli.RunAsync("migrations", "list");
        Assert.StartsWith("ID", table.Out, StringComparison.Ordinal);
        var unknown = await _cli.RunAsync("migrations", "watch", Guid.NewGuid().ToString());
        Assert.True(unknown.ExitCode == 3, unknown.ToString());

        var help = await _cli.RunAsync("policies", "simulate", "--help");
        Assert.True(help.ExitCode == 0, help.ToString());
        Assert.Contains("guardrail", help.Out, StringComparison.Ordinal);
    }
}
