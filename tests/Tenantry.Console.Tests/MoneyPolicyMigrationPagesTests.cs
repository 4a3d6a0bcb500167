using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using Tenantry.Testing;

namespace Tenantry.Console.Tests;

/// <summary>The plans, invoices, costs, policies and migrations pages, driven in Chromium against a real host and checked against its API.</summary>
public sealed class MoneyPolicyMigrationPagesTests(Browser browser) : IClassFixture<Browser>, IAsyncLifetime
{
    private static readonly CultureInfo EnUs = CultureInfo.GetCultureInfo("en-US");

    /// <summary>Policy documents keep IAM's element names (Version, Statement) as written.</summary>
    private static readonly JsonSerializerOptions AsWritten = new();

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
    public async Task The_plans_page_shows_the_catalog_as_the_api_has_it_and_creates_and_edits_a_plan_with_messages_per_field()
    {
        await LoginAsync();
        await _page.GetByTestId("nav-plans").ClickAsync();
        using var api = await _host.OperatorClientAsync();
        var plans = (await api.GetJsonAsync("/v1/plans")).EnumerateArray().ToList();
        await Assertions.Expect(_page.Locator("[data-testid=plan-table] tbody tr")).ToHaveCountAsync(plans.Count);
        foreach (var plan in plans)
        {
            var id = plan.GetProperty("id").GetString()!;
            await Assertions.Expect(_page.GetByTestId($"plan-price-{id}")).ToHaveTextAsync($"{plan.GetProperty("currency").GetString()} {plan.GetProperty("basePrice").GetDecimal().ToString("N2", EnUs)}");
            await Assertions.Expect(_page.Locator($"[data-testid=plan-prices-{id}] li")).ToHaveCountAsync(plan.GetProperty("prices").GetArrayLength());
            await Assertions.Expect(_page.Locator($"[data-testid=plan-quotas-{id}] li")).ToHaveCountAsync(plan.GetProperty("quotas").GetArrayLength());
        }

        await Assertions.Expect(_page.GetByTestId("plan-limits-basic")).ToContainTextAsync("api: 50/s, burst 50");
        await ScreenshotAsync("plans.png");

        // A list that is not JSON is named before anything is sent; the server's own checks name theirs.
        await _page.GetByTestId("plan-new").ClickAsync();
        await _page.GetByTestId("plan-id").FillAsync("Not An Id");
        await _page.GetByTestId("plan-name").FillAsync("Growth");
        await _page.GetByTestId("plan-tier").FillAsync("growth");
        await _page.GetByTestId("plan-prices").FillAsync("[{");
        await _page.GetByTestId("plan-save").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("field-error-prices")).ToContainTextAsync("not JSON");
        await _page.GetByTestId("plan-prices").FillAsync("[{\"meter\":\"api_calls\",\"model\":\"per_unit\",\"included\":1000,\"unitPrice\":0.001}]");
        await _page.GetByTestId("plan-save").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("field-error-id")).ToContainTextAsync("lowercase");
        await Assertions.Expect(_page.GetByTestId("field-error-prices")).ToHaveCountAsync(0);
        await Assertions.Expect(_page.GetByTestId("error")).ToBeVisibleAsync();
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, "plan-form-errors.png"), FullPage = true });

        await _page.GetByTestId("plan-id").FillAsync("growth");
        await _page.GetByTestId("plan-basePrice").FillAsync("149.5");
        await _page.GetByTestId("plan-save").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("plan-saved")).ToContainTextAsync("version 1");
        await Assertions.Expect(_page.GetByTestId("plan-price-growth")).ToHaveTextAsync("USD 149.50");
        var created = await api.GetJsonAsync("/v1/plans/growth");
        Assert.Equal((149.5m, "growth", 1), (created.GetProperty("basePrice").GetDecimal(), created.GetProperty("tier").GetString(), created.GetProperty("prices").GetArrayLength()));

        // Edit: the change goes out with the version read (If-Match) and comes back as the next version.
        await _page.GetByTestId("plan-basePrice").FillAsync("159");
        await _page.GetByTestId("plan-archived").CheckAsync();
        await _page.GetByTestId("plan-save").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("plan-saved")).ToContainTextAsync("version 2");
        var edited = await api.GetJsonAsync("/v1/plans/growth");
        Assert.Equal((159m, true, 2), (edited.GetProperty("basePrice").GetDecimal(), edited.GetProperty("archived").GetBoolean(), edited.GetProperty("version").GetInt32()));
        await Assertions.Expect(_page.GetByTestId("plan-row-growth")).ToContainTextAsync("archived");

        // Keyboard: rows are focusable, arrows move, Enter opens; "g" then "p" comes back to the catalog.
        await _page.GotoAsync("/#/plans");
        await _page.Locator("[data-testid=plan-table] tbody tr").First.FocusAsync();
        await _page.Keyboard.PressAsync("ArrowDown");
        await _page.Keyboard.PressAsync("Enter");
        var second = await _page.Locator("[data-testid=plan-table] tbody tr:nth-child(2) a").GetAttributeAsync("href");
        await Assertions.Expect(_page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex(System.Text.RegularExpressions.Regex.Escape(second!) + "$"));
        await Assertions.Expect(_page.GetByTestId("plan-form")).ToBeVisibleAsync();
        await _page.Locator("h1").ClickAsync();
        await _page.Keyboard.PressAsync("g");
        await _page.Keyboard.PressAsync("c");
        await Assertions.Expect(_page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("#/costs$"));
    }

    [Fact]
    public async Task The_invoices_page_previews_prorated_lines_as_the_api_computes_them_and_finalizes_and_voids_after_confirmation()
    {
        string id;
        using (var api = await _host.OperatorClientAsync())
        {
            id = await api.CreateActiveTenantAsync("prorated");
            using var change = await api.PostAsJsonAsync($"/v1/tenants/{id}/plan", new { planId = "standard" });
            Assert.True(change.IsSuccessStatusCode, await change.Content.ReadAsStringAsync());
        }

        var period = DateTime.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        await LoginAsync();
        await _page.GotoAsync($"/#/tenants/{id}");
        await _page.GetByTestId("tenant-invoices").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("no-invoices")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("has-proration")).ToBeVisibleAsync();
        using (var api = await _host.OperatorClientAsync())
        {
            var preview = await api.GetJsonAsync($"/v1/tenants/{id}/invoices/preview?period={period}");
            var lines = preview.GetProperty("lines").EnumerateArray().ToList();
            Assert.Contains(lines, l => l.GetProperty("kind").GetString() == "proration");
            await Assertions.Expect(_page.Locator("[data-testid=preview-lines] tbody tr")).ToHaveCountAsync(lines.Count);
            Assert.Equal(preview.GetProperty("total").GetDecimal(), decimal.Parse((await _page.GetByTestId("preview-total").GetAttributeAsync("data-value"))!, CultureInfo.InvariantCulture));
            var amounts = await _page.Locator("[data-testid=preview-lines] [data-testid=line-amount]").EvaluateAllAsync<string[]>("els => els.map(e => e.dataset.value)");
            Assert.Equal(lines.Select(l => l.GetProperty("amount").GetDecimal()), amounts.Select(a => decimal.Parse(a, CultureInfo.InvariantCulture)));
        }

        await ScreenshotAsync("invoice-preview.png");

        await _page.GetByTestId("invoice-draft").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=invoice-status] [data-testid=status]")).ToHaveTextAsync("draft");
        var invoiceId = _page.Url[(_page.Url.IndexOf("#/invoices/", StringComparison.Ordinal) + "#/invoices/".Length)..];

        // Cancelling the confirmation changes nothing.
        await _page.GetByTestId("invoice-finalize").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("confirm")).ToContainTextAsync("cannot be undone");
        await _page.GetByTestId("confirm-cancel").ClickAsync();
        using (var api = await _host.OperatorClientAsync())
        {
            Assert.Equal("draft", (await api.GetJsonAsync($"/v1/invoices/{invoiceId}")).GetProperty("status").GetString());
        }

        await _page.GetByTestId("invoice-finalize").ClickAsync();
        await _page.GetByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=invoice-status] [data-testid=status]")).ToHaveTextAsync("finalized");
        await Assertions.Expect(_page.GetByTestId("invoice-finalize")).ToHaveCountAsync(0);
        using (var api = await _host.OperatorClientAsync())
        {
            var invoice = await api.GetJsonAsync($"/v1/invoices/{invoiceId}");
            Assert.Equal("finalized", invoice.GetProperty("status").GetString());
            Assert.Equal(invoice.GetProperty("total").GetDecimal(), decimal.Parse((await _page.GetByTestId("invoice-total").GetAttributeAsync("data-value"))!, CultureInfo.InvariantCulture));
            await Assertions.Expect(_page.Locator("[data-testid=invoice-lines] tbody tr")).ToHaveCountAsync(invoice.GetProperty("lines").GetArrayLength());

            // The CSV the page downloads is the API's.
            var download = await _page.RunAndWaitForDownloadAsync(() => _page.GetByTestId("invoice-csv").ClickAsync());
            Assert.Equal($"{invoiceId}.csv", download.SuggestedFilename);
            Assert.Equal(await api.GetStringAsync(new Uri($"/v1/invoices/{invoiceId}?format=csv", UriKind.Relative)), await File.ReadAllTextAsync((await download.PathAsync())!));
        }

        await ScreenshotAsync("invoice-finalized.png");
        await _page.GetByTestId("invoice-void").ClickAsync();
        await _page.GetByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=invoice-status] [data-testid=status]")).ToHaveTextAsync("void");
        await Assertions.Expect(_page.GetByTestId("invoice-void")).ToHaveCountAsync(0);

        // The tenant's list, linked back from the invoice, shows it void.
        await _page.GetByTestId("invoice-tenant").ClickAsync();
        await Assertions.Expect(_page.GetByTestId($"invoice-{period}-void")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task The_costs_page_shows_margins_and_heavy_lifters_as_the_api_computes_them_and_records_cost_lines()
    {
        using (var api = await _host.OperatorClientAsync())
        {
            await api.CreateActiveTenantAsync("hungry");
            await api.CreateActiveTenantAsync("frugal");
        }

        var period = DateTime.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        await LoginAsync();

        // A slow answer shows the loading line until it comes.
        var release = new TaskCompletionSource();
        var linesCall = new System.Text.RegularExpressions.Regex("/v1/costs/lines\\?");
        await _page.RouteAsync(linesCall, async route =>
        {
            await release.Task;
            await route.ContinueAsync();
        });
        await _page.GetByTestId("nav-costs").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("cost-lines-slot").GetByTestId("loading")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("busy")).ToBeVisibleAsync();
        release.SetResult();
        await Assertions.Expect(_page.GetByTestId("no-cost-lines")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("busy")).ToBeHiddenAsync();
        await _page.UnrouteAsync(linesCall);

        // Mistakes are named per field: an amount that is no number (here), a tenant that does not exist (the server).
        await _page.GetByTestId("cost-resource").FillAsync("postgres-eu-1");
        await _page.GetByTestId("cost-amount").FillAsync("lots");
        await _page.GetByTestId("cost-tenant").FillAsync("hungry");
        await _page.GetByTestId("cost-add").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("field-error-amount")).ToBeVisibleAsync();
        await _page.GetByTestId("cost-amount").FillAsync("120.00");
        await _page.GetByTestId("cost-tenant").FillAsync("nobody-here");
        await _page.GetByTestId("cost-add").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("field-error-tags")).ToContainTextAsync("nobody-here");

        await _page.GetByTestId("cost-tenant").FillAsync("hungry");
        await _page.GetByTestId("cost-add").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=cost-lines] tbody tr")).ToHaveCountAsync(1);
        await _page.GetByTestId("cost-resource").FillAsync("gateway");
        await _page.GetByTestId("cost-amount").FillAsync("10");
        await _page.GetByTestId("cost-tenant").FillAsync("shared");
        await _page.GetByTestId("cost-add").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=cost-lines] tbody tr")).ToHaveCountAsync(2);
        await Assertions.Expect(_page.Locator("[data-testid=chart-costs] canvas")).ToHaveCountAsync(1);

        using (var api = await _host.OperatorClientAsync())
        {
            var report = await api.GetJsonAsync($"/v1/costs?period={period}");
            var items = report.GetProperty("items").EnumerateArray().ToList();
            Assert.Equal(2, items.Count);
            await Assertions.Expect(_page.Locator("[data-testid=tenant-costs] tbody tr")).ToHaveCountAsync(items.Count);
            foreach (var item in items)
            {
                var row = _page.Locator($"[data-testid=tenant-costs] tbody tr[data-slug={item.GetProperty("slug").GetString()}]");
                foreach (var field in new[] { "revenue", "cost", "margin" })
                {
                    Assert.Equal(item.GetProperty(field).GetDecimal(), decimal.Parse((await row.GetByTestId(field).GetAttributeAsync("data-value"))!, CultureInfo.InvariantCulture));
                    await Assertions.Expect(row.GetByTestId(field)).ToHaveTextAsync(item.GetProperty(field).GetDecimal().ToString("N2", EnUs));
                }

                await Assertions.Expect(_page.GetByTestId($"heavy-{item.GetProperty("slug").GetString()}")).ToHaveCountAsync(item.GetProperty("heavyLifter").GetBoolean() ? 1 : 0);
            }

            Assert.True(items.Single(i => i.GetProperty("slug").GetString() == "hungry").GetProperty("heavyLifter").GetBoolean());
            Assert.Equal(130m, report.GetProperty("totalCost").GetDecimal());
            Assert.Equal(report.GetProperty("margin").GetDecimal(), decimal.Parse((await _page.GetByTestId("total-margin").GetAttributeAsync("data-value"))!, CultureInfo.InvariantCulture));
            var basic = report.GetProperty("tiers").EnumerateArray().Single(t => t.GetProperty("tier").GetString() == "basic");
            await Assertions.Expect(_page.GetByTestId("tier-margin-basic")).ToHaveTextAsync(basic.GetProperty("margin").GetDecimal().ToString("N2", EnUs));
        }

        await ScreenshotAsync("costs.png");

        // The previous month is a deep link of its own: no tenant existed then.
        await _page.GetByTestId("costs-period-prev").ClickAsync();
        var previous = DateTime.UtcNow.AddMonths(-1).ToString("yyyy-MM", CultureInfo.InvariantCulture);
        await Assertions.Expect(_page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"#/costs\\?period={previous}$"));
        await Assertions.Expect(_page.GetByTestId("no-cost-tenants")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("no-cost-lines")).ToBeVisibleAsync();
        await _page.GetByTestId("costs-period-now").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("heavy-hungry")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task The_policies_page_decides_as_the_simulator_api_and_shows_what_each_statement_of_a_tenant_decides()
    {
        JsonElement session;
        using (var api = await _host.OperatorClientAsync())
        {
            await api.CreateActiveTenantAsync("acme");
            using var put = await api.PutAsJsonAsync("/v1/guardrails", new
            {
                items = new[]
                {
                    new
                    {
                        name = "no-deletes",
                        document = new
                        {
                            Version = "2012-10-17",
                            Statement = new object[]
                            {
                                new { Sid = "Everything", Effect = "Allow", Action = "*", Resource = "*" },
                                new { Sid = "NoDeletes", Effect = "Deny", Action = "storage:DeleteObject", Resource = "*" },
                            },
                        },
                    },
                },
            }, AsWritten);
            Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
            session = await api.GetJsonAsync("/v1/tenants/acme/policies");
        }

        await LoginAsync();
        var own = "trn:tenantry:storage::acme:tenants/acme/report.pdf";
        await _page.GotoAsync($"/#/policies?tenant=acme&role=admin&action=storage:DeleteObject&resource={Uri.EscapeDataString(own)}");
        await Assertions.Expect(_page.GetByTestId("sim-decision")).ToHaveTextAsync(await SimulateAsync(session, "storage:DeleteObject", own));
        await Assertions.Expect(_page.GetByTestId("sim-decision")).ToHaveTextAsync("ExplicitDeny");
        await Assertions.Expect(_page.GetByTestId("statement-guardrail-NoDeletes")).ToHaveTextAsync("ExplicitDeny");
        await Assertions.Expect(_page.GetByTestId("statement-session-TenantObjects")).ToHaveTextAsync("Allow");
        await Assertions.Expect(_page.GetByTestId("statement-identity-AdminStorage")).ToHaveTextAsync("Allow");
        await Assertions.Expect(_page.GetByTestId("sim-matched")).ToContainTextAsync("NoDeletes");
        await Assertions.Expect(_page.GetByTestId("guardrail-no-deletes")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("template-basic")).ToBeVisibleAsync();
        await ScreenshotAsync("policies.png");

        // Another tenant's object, through the form: the session policy does not allow it, and the address keeps the question.
        var other = "trn:tenantry:storage::beta:tenants/beta/report.pdf";
        await _page.GetByTestId("sim-role").SelectOptionAsync("member");
        await _page.GetByTestId("sim-action").FillAsync("storage:GetObject");
        await _page.GetByTestId("sim-resource").FillAsync(other);
        await _page.GetByTestId("sim-run").ClickAsync();
        await Assertions.Expect(_page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("role=member&action=storage%3AGetObject"));
        await Assertions.Expect(_page.GetByTestId("sim-decision")).ToHaveTextAsync(await SimulateAsync(session, "storage:GetObject", other, "member"));
        await Assertions.Expect(_page.GetByTestId("sim-decision")).ToHaveTextAsync("ImplicitDeny");
        await Assertions.Expect(_page.GetByTestId("statement-session-TenantObjects")).ToHaveTextAsync("ImplicitDeny");
        await Assertions.Expect(_page.GetByTestId("statement-identity-MemberStorage")).ToHaveTextAsync("Allow");

        // "/" jumps to the tenant field; an unknown tenant is an error, not an empty page.
        await _page.Locator("h1").ClickAsync();
        await _page.Keyboard.PressAsync("/");
        await Assertions.Expect(_page.GetByTestId("sim-tenant")).ToBeFocusedAsync();
        await _page.GotoAsync("/#/policies?tenant=no-such-tenant&action=storage:GetObject&resource=x");
        await Assertions.Expect(_page.GetByTestId("tenant-policies-slot").GetByTestId("error")).ToContainTextAsync("no-such-tenant");
        await _page.GotoAsync("/#/policies");
        await Assertions.Expect(_page.GetByTestId("no-tenant")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId("no-simulation")).ToBeVisibleAsync();

        // A tier's template, edited on the page, is the one the API then gives.
        await _page.GetByTestId("template-edit-premium").ClickAsync();
        await _page.GetByTestId("template-json-premium").FillAsync("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"ReadOnly\",\"Effect\":\"Allow\",\"Action\":\"storage:Gett\"}]}");
        await _page.GetByTestId("template-save-premium").ClickAsync();
        await _page.GetByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("templates-slot").GetByTestId("field-error-document")).ToContainTextAsync("Resource");
        await _page.GetByTestId("template-json-premium").FillAsync("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"ReadOnly\",\"Effect\":\"Allow\",\"Action\":\"storage:GetObject\",\"Resource\":\"trn:tenantry:storage::${tenant}:tenants/${tenant}/*\"}]}");
        await _page.GetByTestId("template-save-premium").ClickAsync();
        await _page.GetByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(_page.Locator("[data-testid=template-table] tr").Filter(new() { Has = _page.GetByTestId("template-premium") })).ToContainTextAsync("custom");
        using (var api = await _host.OperatorClientAsync())
        {
            var premium = await api.GetJsonAsync("/v1/policies/templates/premium");
            Assert.False(premium.GetProperty("isDefault").GetBoolean());
            Assert.Equal("ReadOnly", premium.GetProperty("document").GetProperty("Statement")[0].GetProperty("Sid").GetString());
        }

        // Guardrails: a bad name is named; an empty list removes them all.
        await _page.GetByTestId("guardrails-edit").ClickAsync();
        await _page.GetByTestId("guardrails-json").FillAsync("[{\"name\":\"Not A Name\",\"document\":{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}}]");
        await _page.GetByTestId("guardrails-save").ClickAsync();
        await _page.GetByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("field-error-items")).ToContainTextAsync("items[0].name");
        await _page.GetByTestId("guardrails-json").FillAsync("[]");
        await _page.GetByTestId("guardrails-save").ClickAsync();
        await _page.GetByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("no-guardrails")).ToBeVisibleAsync();
        using (var api = await _host.OperatorClientAsync())
        {
            Assert.Equal(0, (await api.GetJsonAsync("/v1/guardrails")).GetProperty("items").GetArrayLength());
        }
    }

    [Fact]
    public async Task The_migrations_page_runs_a_fleet_migration_and_shows_each_tenants_result_as_the_api_reported_it()
    {
        using (var api = await _host.OperatorClientAsync())
        {
            await api.CreateActiveTenantAsync("mig-pool", "basic");
            await api.CreateActiveTenantAsync("mig-bridge", "standard");
            (await api.PostAsJsonAsync("/v1/apps", new { name = "ledger", routePrefix = "/ledger" })).EnsureSuccessStatusCode();
            using var release = await api.PostAsJsonAsync("/v1/apps/ledger/releases", new
            {
                version = "1.0.0",
                process = new { command = "/bin/sh", args = new[] { "-c", "exit 0" } },
                migrations = new[] { new { id = "001_entries", sql = "CREATE TABLE entries (tenant_id TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tenant_id, id));" } },
            });
            Assert.True(release.IsSuccessStatusCode, await release.Content.ReadAsStringAsync());
        }

        await LoginAsync();
        await _page.GetByTestId("nav-migrations").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("no-migration-run")).ToBeVisibleAsync();
        await _page.GetByTestId("migration-run").ClickAsync();
        var response = await _page.RunAndWaitForResponseAsync(() => _page.GetByTestId("confirm-ok").ClickAsync(), r => r.Url.EndsWith("/v1/migrations", StringComparison.Ordinal) && r.Request.Method == "POST");
        Assert.True(response.Ok);
        var body = JsonDocument.Parse(await response.TextAsync()).RootElement;
        if (response.Status == 202)
        {
            await TheBackgroundRunShowsAsTheApiHasItAsync(body.GetProperty("id").GetString()!);
            return;
        }

        await Assertions.Expect(_page.GetByTestId("migration-report")).ToHaveAttributeAsync("data-succeeded", "true");
        await Assertions.Expect(_page.GetByTestId("migration-targets")).ToContainTextAsync(body.GetProperty("targets").GetInt32().ToString(CultureInfo.InvariantCulture));
        await Assertions.Expect(_page.Locator("[data-testid=migration-results] tbody tr")).ToHaveCountAsync(body.GetProperty("results").GetArrayLength());
        var ledger = body.GetProperty("apps").EnumerateArray().Single(a => a.GetProperty("app").GetString() == "ledger");
        var tenants = ledger.GetProperty("tenants").EnumerateArray().ToList();
        Assert.Equal(2, tenants.Count);
        foreach (var t in tenants)
        {
            var row = _page.Locator("[data-testid=migration-app-ledger-tenants] tbody tr").Filter(new() { Has = _page.GetByTestId($"app-tenant-ledger-{t.GetProperty("slug").GetString()}") });
            await Assertions.Expect(row.GetByTestId("status")).ToHaveTextAsync(t.GetProperty("outcome").GetString()!);
            await Assertions.Expect(row).ToContainTextAsync(t.GetProperty("target").GetString()!);
            Assert.Equal("applied", t.GetProperty("outcome").GetString());
        }

        await ScreenshotAsync("migrations.png");

        // The run really went out: a second one finds every tenant up to date. The page keeps its last report across a reload.
        using (var api = await _host.OperatorClientAsync())
        {
            using var again = await api.PostAsync(new Uri("/v1/migrations", UriKind.Relative), null);
            var second = (await again.JsonAsync()).GetProperty("apps").EnumerateArray().Single(a => a.GetProperty("app").GetString() == "ledger");
            Assert.All(second.GetProperty("tenants").EnumerateArray(), t => Assert.Equal("up-to-date", t.GetProperty("outcome").GetString()));
        }

        await _page.ReloadAsync();
        await Assertions.Expect(_page.GetByTestId("app-tenant-ledger-mig-bridge")).ToBeVisibleAsync();
    }

    [Fact]
    public async Task A_run_answered_with_an_operation_is_followed_on_the_migrations_page_until_it_ends()
    {
        string operationId;
        using (var api = await _host.OperatorClientAsync())
        {
            using var created = await api.CreateTenantAsync(new { name = "Followed", slug = "followed", tier = "basic", adminEmail = "admin@followed.test" });
            var tenant = await created.JsonAsync();
            operationId = tenant.GetProperty("operationId").GetString()!;
            await api.WaitForStatusAsync(tenant.GetProperty("id").GetString()!, "active");
        }

        await LoginAsync();
        // The answer of a background run (202 and the operation); the operation the page then reads is the host's own.
        await _page.RouteAsync("**/v1/migrations", route => route.Request.Method == "POST"
            ? route.FulfillAsync(new RouteFulfillOptions { Status = 202, ContentType = "application/json", Body = JsonSerializer.Serialize(new { id = operationId, operationId, kind = "fleet-migration", status = "pending" }) })
            : route.ContinueAsync());
        await _page.GotoAsync("/#/migrations");
        await _page.GetByTestId("migration-run").ClickAsync();
        await _page.GetByTestId("confirm-ok").ClickAsync();
        await Assertions.Expect(_page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"#/migrations\\?run={operationId}$"));
        await Assertions.Expect(_page.GetByTestId("migration-operation")).ToHaveAttributeAsync("data-status", "succeeded");
        await Assertions.Expect(_page.GetByTestId("progress-text")).ToHaveTextAsync("7/7 steps");
        await Assertions.Expect(_page.GetByTestId("migration-done")).ToBeVisibleAsync();

        // A run that is unknown says so.
        await _page.GotoAsync($"/#/migrations?run={Guid.NewGuid()}");
        await Assertions.Expect(_page.GetByTestId("migration-slot").GetByTestId("error")).ToContainTextAsync("not found", new() { IgnoreCase = true });
    }

    /// <summary>A run in the background (202): the page follows it to its end and shows each target as GET /v1/migrations/{id} has it.</summary>
    private async Task TheBackgroundRunShowsAsTheApiHasItAsync(string id)
    {
        await Assertions.Expect(_page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"#/migrations\\?run={id}$"));
        await Assertions.Expect(_page.GetByTestId("migration-run-view")).ToHaveAttributeAsync("data-status", "succeeded", new() { Timeout = 60_000 });
        using var api = await _host.OperatorClientAsync();
        var run = await api.GetJsonAsync($"/v1/migrations/{id}");
        var targets = run.GetProperty("tenants").EnumerateArray().ToList();
        Assert.Equal(3, targets.Count); // the pool and the two tenants
        await Assertions.Expect(_page.Locator("[data-testid=migration-tenants] tbody tr")).ToHaveCountAsync(targets.Count);
        await Assertions.Expect(_page.GetByTestId("run-progress")).ToContainTextAsync($"{targets.Count}/{targets.Count} targets done");
        foreach (var t in targets.Where(t => t.GetProperty("tenantId").ValueKind == JsonValueKind.String))
        {
            var slug = t.GetProperty("slug").GetString()!;
            var row = _page.Locator("[data-testid=migration-tenants] tbody tr").Filter(new() { Has = _page.GetByTestId($"run-target-{slug}") });
            await Assertions.Expect(row.GetByTestId("status")).ToHaveTextAsync(t.GetProperty("status").GetString()!);
            var ledger = t.GetProperty("apps").EnumerateArray().Single(a => a.GetProperty("app").GetString() == "ledger");
            Assert.Equal("applied", ledger.GetProperty("outcome").GetString());
            var appRow = _page.Locator("[data-testid=migration-app-ledger-tenants] tbody tr").Filter(new() { Has = _page.GetByTestId($"app-tenant-ledger-{slug}") });
            await Assertions.Expect(appRow.GetByTestId("status")).ToHaveTextAsync("applied");
        }

        await ScreenshotAsync("migrations.png");

        // The run is a deep link, and the list of runs leads to it.
        await _page.ReloadAsync();
        await Assertions.Expect(_page.GetByTestId("app-tenant-ledger-mig-bridge")).ToBeVisibleAsync();
        await Assertions.Expect(_page.GetByTestId($"run-{id}")).ToBeVisibleAsync();
    }

    private async Task<string> SimulateAsync(JsonElement session, string action, string resource, string role = "admin")
    {
        using var api = await _host.OperatorClientAsync();
        var guardrails = (await api.GetJsonAsync("/v1/guardrails")).GetProperty("items").EnumerateArray().Select(g => g.GetProperty("document")).ToArray();
        var tenant = await api.GetJsonAsync("/v1/tenants/acme");
        var id = tenant.GetProperty("id").GetString()!;
        object identity = role == "admin"
            ? new { Version = "2012-10-17", Statement = new[] { new { Sid = "AdminStorage", Effect = "Allow", Action = (object)"storage:*", Resource = "trn:tenantry:storage::*" } } }
            : new { Version = "2012-10-17", Statement = new[] { new { Sid = "MemberStorage", Effect = "Allow", Action = (object)new[] { "storage:GetObject", "storage:ListObjects", "storage:PutObject" }, Resource = "trn:tenantry:storage::*" } } };
        using var response = await api.PostAsJsonAsync("/v1/policies/simulate", new
        {
            policies = new { identity = new[] { identity }, session = new[] { session }, guardrail = guardrails },
            request = new
            {
                action,
                resource,
                context = new Dictionary<string, string>
                {
                    ["tenantry:TenantId"] = id, ["tenantry:TenantSlug"] = "acme", ["tenantry:Tier"] = "basic", ["tenantry:Role"] = role,
                },
            },
        }, AsWritten);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        return (await response.JsonAsync()).GetProperty("decision").GetString()!;
    }

    /// <summary>Checks that no absent value left "null" or "undefined" on the page, then saves a screenshot of it.</summary>
    private async Task ScreenshotAsync(string name)
    {
        await Assertions.Expect(_page.Locator("#app")).Not.ToContainTextAsync("undefined");
        await Assertions.Expect(_page.Locator("#app")).Not.ToContainTextAsync(new System.Text.RegularExpressions.Regex(@"\bnull\b"));
        await _page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(Browser.Artifacts, name), FullPage = true });
    }

    private async Task LoginAsync()
    {
        await _page.GotoAsync("/");
        await _page.GetByTestId("client-secret").FillAsync(_host.OperatorSecret);
        await _page.GetByTestId("login").ClickAsync();
        await Assertions.Expect(_page.GetByTestId("stat-tenants")).ToBeVisibleAsync();
    }
}
