using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using Tenantry.Testing;

namespace Tenantry.Console.Tests;

/// <summary>The tenant page's "Move to cell" action, on a host with two cells of one region and one of another.</summary>
public sealed class MoveConsoleTests(Browser browser) : IClassFixture<Browser>, IAsyncLifetime
{
    private TenantryHost _host = null!;
    private IBrowserContext _context = null!;
    private IPage _page = null!;

    public async Task InitializeAsync()
    {
        _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(
            "--Tenantry:Cells:0:Name=eu-1", "--Tenantry:Cells:0:Region=eu",
            "--Tenantry:Cells:1:Name=eu-2", "--Tenantry:Cells:1:Region=eu",
            "--Tenantry:Cells:2:Name=us-1", "--Tenantry:Cells:2:Region=us"));
        _context = await browser.Chromium.NewContextAsync(new BrowserNewContextOptions { BaseURL = _host.ControlPlane.GetLeftPart(UriPartial.Authority), ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        _context.SetDefaultTimeout(15_000);
        _page = await _context.NewPageAsync();
    }

    public async Task DisposeAsync()
    {
        if (_context is not null)
        {
            await _context.DisposeAsync();
        }

        _host?.Dispose();
    }

    [Fact]
    public async Task An_operator_moves_a_tenant_to_another_cell_of_its_region_and_the_page_follows_the_move()
    {
        using var op = await _host.OperatorClientAsync();
        using var created = await op.PostAsJsonAsync("/v1/tenants", new { name = "Euro Shop", slug = "euro-shop", tier = "standard", adminEmail = "ops@euro.test", config = new { region = "eu" } });
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await TenantryHost.WaitForStatusAsync(op, id, "active");

        await _page.GotoAsync("/");
        await _page.GetByTestId("client-secret").FillAsync(_host.OperatorSecret);
        await _page.GetByTestId("login").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("stat-tenants")).ToBeVisibleAsync();
        await _page.GotoAsync($"/#/tenants/{id}");

        // Only the other cell of its region is offered: never its own, never one of another region.
        await Assertions.Expect(_page.GetByTestId("move-cell-select").Locator("option")).ToHaveTextAsync(["eu-2 (eu)"]);
        await _page.GetByTestId("action-move").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("steps")).ToContainTextAsync("retire-source");
        await Assertions.Expect(_page.GetByTestId("progress-text")).ToHaveTextAsync("9/9 steps", new() { Timeout = 30_000 });
        await Assertions.Expect(_page.GetByTestId("resources")).ToContainTextAsync("eu-2");
        await Assertions.Expect(_page.GetByTestId("move-cell-select").Locator("option")).ToHaveTextAsync(["eu-1 (eu)"]);
    }
}
