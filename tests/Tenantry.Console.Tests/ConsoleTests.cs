using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using Tenantry.Health;
using Tenantry.Testing;

namespace Tenantry.Console.Tests;

/// <summary>One Chromium (Debian's, launched by path: nothing is downloaded) for the class.</summary>
public sealed class Browser : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;

    public IBrowser Chromium { get; private set; } = null!;

    /// <summary>Screenshots land here (the repository's <c>artifacts/console</c>).</summary>
    public static string Artifacts { get; } = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "artifacts", "console"));

    public async Task InitializeAsync()
    {
        Assert.True(File.Exists(ChromiumPath), $"{ChromiumPath} is missing: ./test.sh installs Debian's chromium.");
        _playwright = await Playwright.CreateAsync();
        Chromium = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
        });
        Directory.CreateDirectory(Artifacts);
    }

    public async Task DisposeAsync()
    {
        await Chromium.DisposeAsync();
        _playwright?.Dispose();
    }
}

public sealed class ConsoleTests(Browser browser) : IClassFixture<Browser>, IAsyncLifetime
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
    public async Task Nothing_is_visible_before_login_and_a_wrong_secret_is_refused()
    {
        await _page.GotoAsync("/");
        await Assertions.Expect(_page.GetByTestId("login-form")).ToBeVisibleAsync();
        Assert.False(await _page.Locator("#nav").IsVisibleAsync());
        Assert.Equal(0, await _page.GetByTestId("stat-tenants").CountAsync());

        await _page.GetByTestId("client-secret").FillAsync("not-the-secret-0123456789");
        await _page.GetByTestId("login").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("error")).ToBeVisibleAsync();
        Assert.Equal(0, await _page.GetByTestId("stat-tenants").CountAsync());

        // The API behind it refuses the console's calls without a token, too.
        var fleet = await _page.APIRequest.GetAsync("/v1/fleet");
        Assert.Equal(401, fleet.Status);
    }

    [Fact]
    public async Task An_operator_creates_a_tenant_watches_it_onboard_then_suspends_reactivates_and_offboards_it()
    {
        await LoginAsync();
        await _page.GetByTestId("nav-new").ClickAsync();
        await _page.GetByTestId("new-name").FillAsync("Initech Ltd");
        await _page.GetByTestId("new-tier").SelectOptionAsync("standard");
        await _page.GetByTestId("new-email").FillAsync("admin@initech.test");
        await _page.GetByTestId("create").ClickAsync();

        // The tenant page follows the onboarding live (no reload) until the tenant is active.
        await Assertions.Expect(_page.GetByTestId("progress-text")).ToHaveTextAsync("7/7 steps");
        await Assertions.Expect(_page.Locator("h1 [data-testid=status]")).ToHaveTextAsync("active");
        await Assertions.Expect(_page.GetByTestId("steps")).ToContainTextAsync("deploy-compute");
        await Assertions.Expect(_page.GetByTestId("resources")).ToContainTextAsync("database");
        await Assertions.Expect(_page.GetByTestId("audit")).ToContainTextAsync("tenant.create");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "tenant-page.png"), FullPage = true });

        await _page.GetByTestId("action-suspend").ClickAsync();
        await Assertions.Expect(_page.Locator("h1 [data-testid=status]")).ToHaveTextAsync("suspended");
        await _page.GetByTestId("action-reactivate").ClickAsync();
        await Assertions.Expect(_page.Locator("h1 [data-testid=status]")).ToHaveTextAsync("active");

        // A tier change to another isolation model moves the data; the page follows its operation to the end.
        await _page.GetByTestId("change-tier-select").SelectOptionAsync("premium");
        await _page.GetByTestId("action-change-tier").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("steps")).ToContainTextAsync("retire-source");
        await Assertions.Expect(_page.GetByTestId("progress-text")).ToHaveTextAsync("9/9 steps", new() { Timeout = 30_000 });
        await Assertions.Expect(_page.Locator("h1 + p")).ToContainTextAsync("premium (silo)");
        await Assertions.Expect(_page.Locator("h1 [data-testid=status]")).ToHaveTextAsync("active");

        // Offboarding asks for the slug before it does anything.
        await _page.GetByTestId("action-offboard").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("confirm-ok")).ToBeDisabledAsync();
        await _page.GetByTestId("confirm-slug").FillAsync("initech");
        await Assertions.Expect(_page.GetByTestId("confirm-ok")).ToBeDisabledAsync();
        await _page.GetByTestId("confirm-slug").FillAsync("initech-ltd");
        await _page.GetByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(_page.Locator("h1 [data-testid=status]")).ToHaveTextAsync("offboarded");
        await Assertions.Expect(_page.GetByTestId("resources")).ToContainTextAsync("archive");
    }

    [Fact]
    public async Task A_failed_onboarding_shows_its_step_and_retry_brings_the_tenant_active()
    {
        var blocker = Path.Combine(_host.DataDir, "tenants", "broken-co");
        Directory.CreateDirectory(Path.GetDirectoryName(blocker)!);
        await File.WriteAllTextAsync(blocker, "in the way");
        await LoginAsync();
        await _page.GotoAsync("/#/new");
        await _page.GetByTestId("new-name").FillAsync("Broken Co");
        await _page.GetByTestId("new-email").FillAsync("admin@broken.test");
        await _page.GetByTestId("create").ClickAsync();

        await Assertions.Expect(_page.Locator("h1 [data-testid=status]")).ToHaveTextAsync("failed");
        await Assertions.Expect(_page.GetByTestId("error").First).ToContainTextAsync("provision-storage");
        await Assertions.Expect(_page.GetByTestId("operation")).ToContainTextAsync("failed");

        File.Delete(blocker);
        await _page.GetByTestId("action-retry").ClickAsync();
        await Assertions.Expect(_page.Locator("h1 [data-testid=status]")).ToHaveTextAsync("active");
        await Assertions.Expect(_page.GetByTestId("progress-text")).ToHaveTextAsync("7/7 steps");

        // The overview counted the failure while it lasted; now it counts the tenant active.
        await _page.GetByTestId("nav-overview").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("stat-active")).ToContainTextAsync("1");
    }

    [Fact]
    public async Task The_list_searches_filters_and_pages_and_the_overview_draws_the_fleet()
    {
        using (var api = await _host.OperatorClientAsync())
        {
            var ids = new List<string>();
            for (var i = 0; i < 28; i++)
            {
                using var created = await api.PostAsJsonAsync("/v1/tenants", new { name = $"Fleet {i:D2}", slug = $"fleet-{i:D2}", tier = i % 3 == 0 ? "premium" : "basic", adminEmail = $"a@fleet{i}.test" });
                ids.Add((await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!);
            }

            // A name that would be markup if the console ever used innerHTML.
            using var hostile = await api.PostAsJsonAsync("/v1/tenants", new { name = "<img src=x onerror=window.pwned=1>", slug = "hostile", tier = "basic", adminEmail = "a@hostile.test" });
            Assert.True(hostile.IsSuccessStatusCode);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                var page = await api.GetFromJsonAsync<JsonElement>("/v1/tenants?status=active&limit=200");
                if (page.GetProperty("items").GetArrayLength() == 29)
                {
                    break;
                }

                await Task.Delay(100);
            }
        }

        await LoginAsync();
        await Assertions.Expect(_page.GetByTestId("stat-tenants")).ToContainTextAsync("29");
        await Assertions.Expect(_page.GetByTestId("chart-tier")).ToContainTextAsync("premium");
        // One implicit cell holds every tenant (offboarded ones free their place), as GET /v1/cells says.
        using var reader = await _host.OperatorClientAsync();
        var cells = (await reader.GetFromJsonAsync<JsonElement>("/v1/cells")).GetProperty("items");
        await Assertions.Expect(_page.Locator("[data-testid=cells-table] tbody tr")).ToHaveCountAsync(cells.GetArrayLength());
        await Assertions.Expect(_page.Locator("[data-testid=cells-table] tbody tr").First).ToContainTextAsync(cells[0].GetProperty("tenants").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
        // This host is the one compute node, live, with the instances GET /v1/nodes counts.
        var node = (await reader.GetFromJsonAsync<JsonElement>("/v1/nodes")).GetProperty("items")[0];
        await Assertions.Expect(_page.Locator("[data-testid=nodes-table] tbody tr")).ToHaveCountAsync(1);
        await Assertions.Expect(_page.GetByTestId("node-" + node.GetProperty("name").GetString())).ToContainTextAsync("(this)");
        await Assertions.Expect(_page.Locator("[data-testid=nodes-table] tbody tr").First).ToContainTextAsync("live");
        // Metering is on: revenue against cost per tenant for this month.
        await Assertions.Expect(_page.GetByTestId("chart-revenue")).ToContainTextAsync("fleet-");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "fleet-overview.png"), FullPage = true });

        await _page.GetByTestId("nav-tenants").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=tenant-table] tbody tr")).ToHaveCountAsync(25);
        await _page.GetByTestId("next").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=tenant-table] tbody tr")).ToHaveCountAsync(4);
        await Assertions.Expect(_page.GetByTestId("next")).ToBeDisabledAsync();
        await _page.GetByTestId("prev").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=tenant-table] tbody tr")).ToHaveCountAsync(25);

        await _page.GetByTestId("search").FillAsync("fleet-1");
        await Assertions.Expect(_page.Locator("[data-testid=tenant-table] tbody tr")).ToHaveCountAsync(10);
        await _page.GetByTestId("filter-tier").SelectOptionAsync("premium");
        await Assertions.Expect(_page.Locator("[data-testid=tenant-table] tbody tr")).ToHaveCountAsync(3); // 12, 15, 18
        await _page.GetByTestId("search").FillAsync("nothing-like-this");
        await Assertions.Expect(_page.GetByTestId("no-tenants")).ToBeVisibleAsync();

        await _page.GotoAsync("/#/tenants?q=hostile");
        await Assertions.Expect(_page.GetByTestId("tenant-hostile")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("tenant-table")).ToContainTextAsync("<img src=x onerror=window.pwned=1>");
        Assert.Equal(0, await _page.Locator("[data-testid=tenant-table] img").CountAsync());
        Assert.Null(await _page.EvaluateAsync<object?>("window.pwned"));
    }

    [Fact]
    public async Task A_locked_out_user_shows_until_when_and_an_operator_unlocks_it_from_the_tenant_page()
    {
        string id, password;
        using (var api = await _host.OperatorClientAsync())
        {
            using var created = await api.PostAsJsonAsync("/v1/tenants", new { name = "Lockco", slug = "lockco", tier = "basic", adminEmail = "admin@lockco.test" });
            id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((await api.GetFromJsonAsync<JsonElement>($"/v1/tenants/{id}")).GetProperty("status").GetString() != "active" && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            using var invite = await api.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email = "user@lockco.test", role = "member" });
            password = (await invite.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("initialPassword").GetString()!;
            for (var i = 0; i < 5; i++)
            {
                using var wrong = await GrantAsync(api, "user@lockco.test", "guess-" + i);
                Assert.Equal(400, (int)wrong.StatusCode);
            }
        }

        await LoginAsync();
        await _page.GotoAsync($"/#/tenants/{id}");
        var locked = _page.GetByTestId("locked-user@lockco.test");
        await Assertions.Expect(locked).ToContainTextAsync("locked until");
        await Assertions.Expect(_page.GetByTestId("users")).ToContainTextAsync("admin@lockco.test");
        Assert.Equal(0, await _page.GetByTestId("unlock-admin@lockco.test").CountAsync());
        // Absent parts of the page (no status reason) leave no stray text behind.
        await Assertions.Expect(_page.Locator("#app")).Not.ToContainTextAsync("null");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "tenant-users-locked.png"), FullPage = true });

        await _page.GetByTestId("unlock-user@lockco.test").ClickAsync();
        await Assertions.Expect(locked).ToHaveCountAsync(0);
        await Assertions.Expect(_page.GetByTestId("unlock-user@lockco.test")).ToHaveCountAsync(0);
        using var anonymous = new HttpClient { BaseAddress = _host.ControlPlane };
        using var signedIn = await GrantAsync(anonymous, "user@lockco.test", password);
        Assert.Equal(200, (int)signedIn.StatusCode);
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

        await LoginAsync();

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

    [Fact]
    public async Task The_app_page_follows_a_rollout_live_and_pauses_resumes_and_aborts_it()
    {
        Guid rolloutId;
        using (var api = await _host.OperatorClientAsync())
        {
            (await api.PostAsJsonAsync("/v1/apps", new { name = "shop", routePrefix = "/shop" })).EnsureSuccessStatusCode();
            foreach (var version in new[] { "1.0.0", "1.1.0" })
            {
                using var release = await api.PostAsJsonAsync("/v1/apps/shop/releases", new
                {
                    version,
                    process = new { command = "/bin/sh", args = new[] { "-c", "exit 0" } },
                    migrations = new[] { new { id = "001_orders", sql = "CREATE TABLE orders (tenant_id TEXT);" } },
                });
                Assert.True(release.IsSuccessStatusCode, await release.Content.ReadAsStringAsync());
            }

            // A pool tenant gives wave 0 (the shared instances) tenants to bake; the long bake keeps the rollout running.
            using (var created = await api.PostAsJsonAsync("/v1/tenants", new { name = "Shop Pool", slug = "shop-pool", tier = "basic", adminEmail = "admin@shop-pool.test" }))
            {
                Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
                await TenantryHost.WaitForStatusAsync(api, (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!, "active");
            }

            using var started = await api.PostAsJsonAsync("/v1/rollouts", new { app = "shop", version = "1.1.0", bakeSeconds = 3600 });
            Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync());
            rolloutId = (await started.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        }

        await LoginAsync();
        await _page.GotoAsync("/#/apps/shop");
        var status = _page.GetByTestId("rollout-status");
        await Assertions.Expect(status).ToHaveTextAsync("running");
        await Assertions.Expect(_page.GetByTestId("rollout")).ToContainTextAsync("1.0.0 → 1.1.0");
        // The page reads the rollout again by itself: the wave moves on to its bake without a reload.
        await Assertions.Expect(_page.Locator("[data-testid=wave-0] [data-testid=status]").First).ToHaveTextAsync("baking", new() { Timeout = 30_000 });
        await Assertions.Expect(_page.GetByTestId("wave-0-targets")).ToContainTextAsync("shop-pool");
        await Assertions.Expect(_page.GetByTestId("wave-0").GetByTestId("wave-progress")).ToContainTextAsync("0 failed");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "rollout.png"), FullPage = true });

        await _page.GetByTestId("rollout-pause").ClickAsync();
        await Assertions.Expect(status).ToHaveTextAsync("paused");
        await Assertions.Expect(_page.GetByTestId("rollout-pause")).ToHaveCountAsync(0);

        await _page.GetByTestId("rollout-resume").ClickAsync();
        await Assertions.Expect(status).ToHaveTextAsync("running");

        await _page.GetByTestId("rollout-abort").ClickAsync();
        await Assertions.Expect(status).ToHaveTextAsync("rolled-back", new() { Timeout = 30_000 });
        await Assertions.Expect(_page.GetByTestId("rollout-abort")).ToHaveCountAsync(0);

        using var check = await _host.OperatorClientAsync();
        var rollout = await check.GetFromJsonAsync<JsonElement>($"/v1/rollouts/{rolloutId}");
        Assert.Equal("rolled-back", rollout.GetProperty("status").GetString());
    }

    [Fact]
    public async Task The_tenant_page_charts_its_health_and_the_fleet_page_ranks_the_worst_tenants_as_the_api_has_them()
    {
        string steadyId;
        using (var api = await _host.OperatorClientAsync())
        {
            steadyId = await api.CreateActiveTenantAsync("steady");
            var flaky = Guid.Parse(await api.CreateActiveTenantAsync("flaky"));
            var now = DateTimeOffset.UtcNow;
            var minute = new DateTimeOffset(now.UtcTicks / TimeSpan.TicksPerMinute * TimeSpan.TicksPerMinute, TimeSpan.Zero);
            var samples = new List<TenantHealthSample>();
            for (var m = 1; m <= 12; m++)
            {
                samples.Add(Sample(Guid.Parse(steadyId), minute.AddMinutes(-m), 100 + (10 * m), (m % 3) + (m % 2), m == 4 ? 2 : 0, m % 2, 2 + m));
            }

            samples.Add(Sample(flaky, minute.AddMinutes(-2), 40, 0, 8, 0, 30));
            using var gateway = new HttpClient { BaseAddress = _host.ControlPlane };
            using var form = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials", ["client_id"] = "gateway", ["client_secret"] = _host.GatewaySecret, ["scope"] = "tenantry:routes",
            });
            using var token = await gateway.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
            gateway.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
                "Bearer", (await token.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString());
            using var posted = await gateway.PostAsJsonAsync("/v1/health/samples", new TenantHealthBatch("console-1", samples), new JsonSerializerOptions(JsonSerializerDefaults.Web));
            Assert.True(posted.IsSuccessStatusCode, await posted.Content.ReadAsStringAsync());
        }

        await LoginAsync();
        // The fleet page: the tenant with 5xx first, as the API ranks them.
        await Assertions.Expect(_page.Locator("[data-testid=worst-table] tbody tr")).ToHaveCountAsync(2);
        await Assertions.Expect(_page.Locator("[data-testid=chart-worst] canvas")).ToHaveCountAsync(1);
        using (var api = await _host.OperatorClientAsync())
        {
            var worst = await api.GetFromJsonAsync<JsonElement>("/v1/health/worst?by=errorRate&window=15m&limit=10");
            var slugs = worst.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("slug").GetString()!).ToList();
            Assert.Equal(["flaky", "steady"], slugs);
            Assert.Equal(slugs, await _page.Locator("[data-testid=worst-table] tbody tr td:first-child").AllInnerTextsAsync());
            await Assertions.Expect(_page.GetByTestId("worst-table")).ToContainTextAsync("20.00 %");
        }

        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "fleet-worst-tenants.png"), FullPage = true });
        await _page.GetByTestId("worst-by-throttled").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("worst-by-throttled")).ToHaveClassAsync("active");
        Assert.EndsWith("#/?by=throttled&window=15m", _page.Url, StringComparison.Ordinal);
        await Assertions.Expect(_page.Locator("[data-testid=worst-table] tbody tr td:first-child").First).ToHaveTextAsync("steady");

        // The tenant page: totals and three charts over the same steps the API gives.
        await _page.GetByTestId("worst-steady").ClickAsync();
        var stats = _page.GetByTestId("health-stats");
        await Assertions.Expect(stats).ToBeVisibleAsync();
        await Assertions.Expect(_page.Locator("[data-testid=chart-health-latency] canvas")).ToHaveCountAsync(1);
        var from = await stats.GetAttributeAsync("data-from");
        var to = await stats.GetAttributeAsync("data-to");
        using (var api = await _host.OperatorClientAsync())
        {
            var series = await api.GetFromJsonAsync<JsonElement>($"/v1/tenants/{steadyId}/health?from={Uri.EscapeDataString(from!)}&to={Uri.EscapeDataString(to!)}&step=1m");
            var items = series.GetProperty("items").EnumerateArray().ToList();
            long Total(string field) => items.Sum(p => p.GetProperty(field).GetInt64());
            Assert.Equal(1980, Total("requests"));
            await Assertions.Expect(_page.GetByTestId("health-requests")).ToContainTextAsync(Total("requests").ToString("N0", System.Globalization.CultureInfo.GetCultureInfo("en-US")));
            await Assertions.Expect(_page.GetByTestId("health-4xx")).ToContainTextAsync(Total("status4xx").ToString(System.Globalization.CultureInfo.InvariantCulture));
            await Assertions.Expect(_page.GetByTestId("health-5xx")).ToContainTextAsync("2");
            await Assertions.Expect(_page.GetByTestId("health-throttled")).ToContainTextAsync(Total("throttled").ToString(System.Globalization.CultureInfo.InvariantCulture));
            var peak = items.Where(p => p.GetProperty("p99Ms").ValueKind == JsonValueKind.Number).Max(p => p.GetProperty("p99Ms").GetDouble());
            await Assertions.Expect(_page.GetByTestId("health-peak-p99")).ToContainTextAsync(peak.ToString("0.##", System.Globalization.CultureInfo.InvariantCulture));
            foreach (var chart in new[] { "chart-health-requests", "chart-health-errors", "chart-health-latency" })
            {
                Assert.Equal(items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), await _page.GetByTestId(chart).GetAttributeAsync("data-points"));
            }
        }

        await Assertions.Expect(_page.GetByTestId("chart-health-errors")).ToContainTextAsync("429");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "tenant-health.png"), FullPage = true });

        // A deep link to another range; a tenant without traffic says so.
        await _page.GotoAsync($"/#/tenants/{steadyId}?range=7d");
        await Assertions.Expect(_page.GetByTestId("health-range-7d")).ToHaveClassAsync("active");
        await Assertions.Expect(_page.GetByTestId("health-requests")).ToContainTextAsync("1,980");
        using (var api = await _host.OperatorClientAsync())
        {
            var quietId = await api.CreateActiveTenantAsync("quiet-co");
            await _page.GotoAsync($"/#/tenants/{quietId}");
        }

        await Assertions.Expect(_page.GetByTestId("health-empty")).ToBeVisibleAsync();
    }

    private static TenantHealthSample Sample(Guid tenant, DateTimeOffset minute, long requests, long s4, long s5, long throttled, double ms)
    {
        var sketch = new LatencySketch();
        for (var i = 0; i < requests; i++)
        {
            sketch.Add(ms * (1 + (i % 10 / 10.0)));
        }

        return new TenantHealthSample(tenant, minute, requests, s4, s5, throttled, sketch);
    }

    [Fact]
    public async Task Webhooks_are_added_their_deliveries_replayed_and_the_tenant_page_and_mails_show_what_went_out()
    {
        // A host whose webhooks may reach a receiver on loopback.
        _host.Dispose();
        _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane("--Tenantry:Webhooks:AllowPrivateNetworks=true", "--Tenantry:Webhooks:PollInterval=00:00:00.100"));
        await _context.DisposeAsync();
        _context = await browser.Chromium.NewContextAsync(new BrowserNewContextOptions { BaseURL = _host.ControlPlane.GetLeftPart(UriPartial.Authority), ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        _context.SetDefaultTimeout(15_000);
        _page = await _context.NewPageAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        await LoginAsync();

        await _page.GetByTestId("nav-webhooks").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("no-hooks")).ToBeVisibleAsync();
        await _page.GetByTestId("hook-url").FillAsync(receiver.Url("/console").ToString());
        await _page.GetByTestId("hook-events").FillAsync("tenant.*");
        await _page.GetByTestId("hook-create").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("hook-secret")).ToContainTextAsync("whsec_");
        await Assertions.Expect(_page.Locator("[data-testid=hook-table] tbody tr")).ToHaveCountAsync(1);

        string tenant;
        using (var api = await _host.OperatorClientAsync())
        {
            tenant = await api.CreateActiveTenantAsync("hooked");
        }

        Assert.True(await receiver.WaitForAsync(r => r.Count >= 2));
        await _page.Locator("[data-testid=hook-table] tbody tr a").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("delivery-tenant.activated")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("deliveries")).ToContainTextAsync("200");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "webhook.png"), FullPage = true });
        await _page.Locator("[data-testid^=replay-]").First.ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=deliveries] tbody tr")).ToHaveCountAsync(3);
        Assert.True(await receiver.WaitForAsync(r => r.Count >= 3));

        await _page.GotoAsync($"/#/tenants/{tenant}");
        await Assertions.Expect(_page.GetByTestId("event-tenant.activated")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("event-tenant.created")).ToBeVisibleAsync();

        await _page.GetByTestId("nav-mails").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("mail-welcome")).ToContainTextAsync("Welcome to Tenantry, Tenant hooked");
        await Assertions.Expect(_page.GetByTestId("mail-table")).ToContainTextAsync("admin@hooked.test");
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "mails.png"), FullPage = true });
    }

    [Fact]
    public async Task The_tenant_page_shows_its_queue_and_dead_letters_and_the_queues_page_every_tenants_queue_as_the_api_has_them()
    {
        // One attempt per job, so a nack puts it in the dead-letter queue at once.
        _host.Dispose();
        _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane("--Tenantry:Jobs:MaxAttempts=1"));
        await _context.DisposeAsync();
        _context = await browser.Chromium.NewContextAsync(new BrowserNewContextOptions { BaseURL = _host.ControlPlane.GetLeftPart(UriPartial.Authority), ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
        _context.SetDefaultTimeout(15_000);
        _page = await _context.NewPageAsync();

        using var op = await _host.OperatorClientAsync();
        var busy = await _host.OnboardAsync(op, "busyco", "basic");
        var calm = await _host.OnboardAsync(op, "calmco", "basic");
        using (var client = TenantClient(busy.Token))
        {
            for (var i = 0; i < 3; i++)
            {
                (await client.PostAsJsonAsync("/v1/jobs", new { type = "import", payload = new { i } })).EnsureSuccessStatusCode();
            }

            using var lease = await client.PostAsJsonAsync("/v1/jobs/lease", new { max = 2, visibilitySeconds = 60 });
            var items = (await lease.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items").EnumerateArray().ToList();
            Assert.Equal(2, items.Count);
            (await client.PostAsJsonAsync($"/v1/jobs/{items[0].GetProperty("id").GetString()}/nack", new { leaseId = items[0].GetProperty("leaseId").GetString(), error = "printer on fire" })).EnsureSuccessStatusCode();
            (await client.PostAsJsonAsync($"/v1/jobs/{items[1].GetProperty("id").GetString()}/ack", new { leaseId = items[1].GetProperty("leaseId").GetString() })).EnsureSuccessStatusCode();
        }

        using (var client = TenantClient(calm.Token))
        {
            (await client.PostAsJsonAsync("/v1/jobs", new { type = "report", payload = new { } })).EnsureSuccessStatusCode();
        }

        var queues = (await op.GetFromJsonAsync<JsonElement>(new Uri("/v1/jobs/queues", UriKind.Relative))).GetProperty("items").EnumerateArray().ToList();
        var busyQueue = queues.Single(q => q.GetProperty("tenantSlug").GetString() == "busyco");
        Assert.Equal((1L, 1L, 1L, 1L), (busyQueue.GetProperty("depth").GetInt64(), busyQueue.GetProperty("dead").GetInt64(), busyQueue.GetProperty("succeeded").GetInt64(), busyQueue.GetProperty("failed").GetInt64()));

        await LoginAsync();
        await _page.GotoAsync("/#/tenants/busyco");
        foreach (var (testid, field) in new[] { ("jobs-depth", "depth"), ("jobs-ready", "ready"), ("jobs-leased", "leased"), ("jobs-succeeded", "succeeded"), ("jobs-failed", "failed"), ("jobs-dead", "dead") })
        {
            await Assertions.Expect(_page.Locator($"[data-testid={testid}] .value")).ToHaveTextAsync(busyQueue.GetProperty(field).GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var dead = (await op.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs?tenantId={busy.Id}&status=dead", UriKind.Relative))).GetProperty("items").EnumerateArray().Single();
        await Assertions.Expect(_page.Locator("[data-testid=dead-letters] tbody tr")).ToHaveCountAsync(1);
        await Assertions.Expect(_page.GetByTestId("dead-letters")).ToContainTextAsync(dead.GetProperty("id").GetString()!);
        await Assertions.Expect(_page.GetByTestId("dead-letters")).ToContainTextAsync("printer on fire");
        await _page.GetByTestId("jobs-slot").ScrollIntoViewIfNeededAsync();
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "tenant-jobs.png"), FullPage = true });

        await _page.GetByTestId("nav-queues").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=queues-table] tbody tr")).ToHaveCountAsync(queues.Count);
        await Assertions.Expect(_page.Locator("[data-testid=queues-depth] .value")).ToHaveTextAsync(queues.Sum(q => q.GetProperty("depth").GetInt64()).ToString(System.Globalization.CultureInfo.InvariantCulture));
        // Deepest first, as the API orders them; each row's figures are the API's.
        var rows = _page.Locator("[data-testid=queues-table] tbody tr");
        for (var i = 0; i < queues.Count; i++)
        {
            var q = queues[i];
            await Assertions.Expect(rows.Nth(i).Locator("td").Nth(0)).ToHaveTextAsync(q.GetProperty("tenantSlug").GetString()!);
            await Assertions.Expect(rows.Nth(i).Locator("td").Nth(1)).ToHaveTextAsync(q.GetProperty("depth").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
            await Assertions.Expect(rows.Nth(i).Locator("td").Nth(7)).ToHaveTextAsync(q.GetProperty("dead").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "queues.png"), FullPage = true });
        await _page.GetByTestId("queue-calmco").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=jobs-depth] .value")).ToHaveTextAsync("1");
        await Assertions.Expect(_page.GetByTestId("no-dead-letters")).ToBeVisibleAsync();
    }

    private HttpClient TenantClient(string token)
    {
        var client = new HttpClient { BaseAddress = _host.ControlPlane };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static Task<HttpResponseMessage> GrantAsync(HttpClient client, string email, string password) =>
        client.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = email, ["password"] = password, ["tenant"] = "lockco",
        }));

    private async Task LoginAsync()
    {
        await _page.GotoAsync("/");
        await _page.GetByTestId("client-secret").FillAsync(_host.OperatorSecret);
        await _page.GetByTestId("login").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("stat-tenants")).ToBeVisibleAsync();
    }
}
