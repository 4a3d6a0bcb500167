using System.Net.Http.Json;
using Microsoft.Playwright;
using Tenantry.Testing;

namespace Tenantry.Console.Tests;

public sealed class AppsConsoleTests(Browser browser) : IClassFixture<Browser>, IAsyncLifetime
{
    private TenantryHost _host = null!;
    private IBrowserContext _context = null!;
    private IPage _page = null!;

    public async Task InitializeAsync()
    {
        _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane());
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
    public async Task The_apps_page_lists_each_app_with_its_current_release_and_an_app_shows_its_releases()
    {
        using (var api = await _host.OperatorClientAsync())
        {
            (await api.PostAsJsonAsync("/v1/apps", new { name = "shop", routePrefix = "/shop", shared = new { instances = 2 } })).EnsureSuccessStatusCode();
            (await api.PostAsJsonAsync("/v1/apps", new { name = "idle", routePrefix = "/idle" })).EnsureSuccessStatusCode();
            foreach (var (version, migrations) in new[] { ("1.0.0", 1), ("1.1.0", 2) })
            {
                using var release = await api.PostAsJsonAsync("/v1/apps/shop/releases", new
                {
                    version,
                    process = new { command = "/bin/sh", args = new[] { "-c", "exit 0" } },
                    migrations = new[] { new { id = "001_orders", sql = "CREATE TABLE orders (tenant_id TEXT);" }, new { id = "002_notes", sql = "CREATE TABLE notes (tenant_id TEXT);" } }.Take(migrations),
                });
                Assert.True(release.IsSuccessStatusCode, await release.Content.ReadAsStringAsync());
            }
        }

        await _page.GotoAsync("/");
        await _page.GetByTestId("client-secret").FillAsync(_host.OperatorSecret);
        await _page.GetByTestId("login").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("stat-tenants")).ToBeVisibleAsync();

        await _page.GetByTestId("nav-apps").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=app-table] tbody tr")).ToHaveCountAsync(2);
        await Assertions.Expect(_page.GetByTestId("current-shop")).ToHaveTextAsync("1.0.0");
        await Assertions.Expect(_page.GetByTestId("app-table")).ToContainTextAsync("/shop");
        await Assertions.Expect(_page.GetByTestId("app-table")).ToContainTextAsync("none");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "apps.png"), FullPage = true });

        await _page.GetByTestId("app-shop").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=releases] tbody tr")).ToHaveCountAsync(2);
        await Assertions.Expect(_page.GetByTestId("release-1.0.0")).ToContainTextAsync("(current)");
        await Assertions.Expect(_page.GetByTestId("release-1.1.0")).Not.ToContainTextAsync("current");
        await Assertions.Expect(_page.GetByTestId("releases")).ToContainTextAsync("001_orders, 002_notes");
        await Assertions.Expect(_page.GetByTestId("current-release")).ToContainTextAsync("/bin/sh -c exit 0");
    }
}
