using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Billing;

/// <summary>
/// Plans, metering, invoices, costs and quotas through the real API. Run once on the embedded
/// SQLite store and once on a private PostgreSQL (see the two subclasses).
/// </summary>
public abstract partial class BillingScenarios : IAsyncLifetime
{
    private TenantryFactory _root = null!;
    private WebApplicationFactory<Program> _app = null!;

    protected HttpClient Client { get; private set; } = null!;

    /// <summary>A PostgreSQL connection string for the control-plane store, or null for SQLite.</summary>
    protected abstract Task<string?> StoreAsync();

    public async Task InitializeAsync()
    {
        var store = await StoreAsync();
        _root = new TenantryFactory();
        _app = _root.WithWebHostBuilder(b =>
        {
            b.UseSetting("Tenantry:Billing:QuotaCheckInterval", "00:00:00.050");
            b.UseSetting("Tenantry:Billing:SampleInterval", "00:00:00");
            if (store is not null)
            {
                b.UseSetting("Tenantry:Store", store);
                b.UseSetting("Tenantry:MasterKey", TenantryHostOptions.TestMasterKey);
            }
        });
        Client = _app.CreateClient();
        var token = await TenantryFactory.TokenAsync(Client, "operator", TenantryFactory.OperatorSecret, "tenantry:admin");
        Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        await _app.DisposeAsync();
        await _root.DisposeAsync();
    }

    [Fact]
    public async Task Default_plans_are_seeded_and_the_catalog_takes_and_changes_plans()
    {
        var plans = await Client.GetJsonAsync("/v1/plans");
        Assert.Equal(["basic", "premium", "standard"], plans.EnumerateArray().Select(p => p.GetProperty("id").GetString()).Order());
        var basic = plans.EnumerateArray().Single(p => p.GetProperty("id").GetString() == "basic");
        Assert.Equal("pool", basic.GetProperty("isolation").GetString());

        await CreateMeterAsync("widgets", "sum", "n");
        using (var created = await Client.PostAsJsonAsync("/v1/plans", PlanBody("gold", 10m, hardWidgets: null)))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        using (var again = await Client.PostAsJsonAsync("/v1/plans", PlanBody("gold", 10m, hardWidgets: null)))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        }

        using (var bad = await Client.PostAsJsonAsync("/v1/plans", new { id = "bad", tier = "basic", isolation = "moon", basePrice = -1, prices = new[] { new { meter = "nope", model = "per_unit", unitPrice = 1 } } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            var problem = await bad.JsonAsync();
            Assert.Equal("https://tenantry.dev/problems/validation", problem.GetProperty("type").GetString());
            Assert.Contains("prices[0].meter", problem.GetProperty("errors").EnumerateObject().Select(e => e.Name));
        }

        using var stale = new HttpRequestMessage(HttpMethod.Patch, "/v1/plans/gold") { Content = JsonContent.Create(new { basePrice = 12 }) };
        stale.Headers.TryAddWithoutValidation("If-Match", "\"7\"");
        using (var refused = await Client.SendAsync(stale))
        {
            Assert.Equal(HttpStatusCode.PreconditionFailed, refused.StatusCode);
        }

        using var patch = new HttpRequestMessage(HttpMethod.Patch, "/v1/plans/gold") { Content = JsonContent.Create(new { basePrice = 12.5m }) };
        patch.Headers.TryAddWithoutValidation("If-Match", "\"1\"");
        using var patched = await Client.SendAsync(patch);
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        Assert.Equal(12.5m, (await patched.JsonAsync()).GetProperty("basePrice").GetDecimal());
        Assert.Equal("\"2\"", patched.Headers.ETag?.Tag);
    }

    [Fact]
    public async Task Same_batch_sent_three_times_in_parallel_is_stored_exactly_once()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        var tenant = await Client.CreateActiveTenantAsync("dedup-co");
        var batch = Enumerable.Range(0, 100).Select(i => Event($"e{i}", "dedup-co", new { n = 1 })).ToArray();

        var replies = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => SendAsync(batch)));
        Assert.Equal(100, replies.Sum(r => r.GetProperty("accepted").GetInt32()));
        Assert.Equal(200, replies.Sum(r => r.GetProperty("duplicates").GetInt32()));
        Assert.All(replies, r => Assert.Equal(0, r.GetProperty("rejected").GetArrayLength()));

        // A later replay is a no-op too.
        var replay = await SendAsync(batch);
        Assert.Equal(0, replay.GetProperty("accepted").GetInt32());
        Assert.Equal(100m, await UsageTotalAsync(tenant, "widgets"));
    }

    [Fact]
    public async Task Batches_replaying_each_other_in_other_orders_at_once_store_each_event_once()
    {
        // Group commits in flight together (PostgreSQL) meet each other's keys in every order.
        await CreateMeterAsync("widgets", "sum", "n");
        var tenant = await Client.CreateActiveTenantAsync("orders-co");
        var events = Enumerable.Range(0, 300).Select(i => Event($"o{i}", "orders-co", new { n = 1 })).ToArray();
        var batches = Enumerable.Range(0, 12).Select(k => new Random(k).GetItems(events, 300).Concat(events.Skip(k * 25).Take(25)).ToArray()).ToArray();

        var replies = await Task.WhenAll(batches.Select(SendAsync));
        Assert.Equal(300, replies.Sum(r => r.GetProperty("accepted").GetInt32()));
        Assert.Equal(batches.Sum(b => b.Length) - 300, replies.Sum(r => r.GetProperty("duplicates").GetInt32()));
        Assert.Equal(300m, await UsageTotalAsync(tenant, "widgets"));
    }

    [Fact]
    public async Task Same_id_from_another_source_is_another_event_and_a_replay_in_the_batch_counts_once()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        var tenant = await Client.CreateActiveTenantAsync("sources-co");
        object From(string source, string id, int n) => new { id, source, type = "widgets", subject = "sources-co", time = DateTimeOffset.UtcNow, data = new { n } };

        var first = await SendAsync([From("billing", "x1", 1), From("shop", "x1", 10), From("shop/eu", "x1", 100), From("shop", "x1", 1000)]);
        Assert.Equal(3, first.GetProperty("accepted").GetInt32());
        Assert.Equal(1, first.GetProperty("duplicates").GetInt32());

        var replay = await SendAsync([From("shop/eu", "x1", 100), From("billing", "x1", 1), From("billing", "x2", 10000)]);
        Assert.Equal(1, replay.GetProperty("accepted").GetInt32());
        Assert.Equal(2, replay.GetProperty("duplicates").GetInt32());
        Assert.Equal(10111m, await UsageTotalAsync(tenant, "widgets"));
    }

    [Fact]
    public async Task Bad_events_are_rejected_by_index_while_the_good_ones_are_kept()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        await Client.CreateActiveTenantAsync("partial-co");
        object[] batch =
        [
            Event("ok-0", "partial-co", new { n = 2 }),
            new { id = "no-source", type = "widgets", subject = "partial-co", data = new { n = 1 } },
            Event("ok-2", "partial-co", new { n = 3 }),
            Event("bad-subject", "nobody-here", new { n = 1 }),
            Event("bad-data", "partial-co", new { n = "lots" }),
            new { id = "bad-type", source = "test", type = "gadgets", subject = "partial-co", data = new { n = 1 } },
            new { id = "old", source = "test", type = "widgets", subject = "partial-co", time = "2001-01-01T00:00:00Z", data = new { n = 1 } },
            new { id = "future", source = "test", type = "widgets", subject = "partial-co", time = DateTimeOffset.UtcNow.AddDays(2), data = new { n = 1 } },
            "not an object",
            Event("ok-9", "partial-co", new { n = 5 }),
        ];
        var reply = await SendAsync(batch);
        Assert.Equal(3, reply.GetProperty("accepted").GetInt32());
        var rejected = reply.GetProperty("rejected").EnumerateArray().ToList();
        Assert.Equal([1, 3, 4, 5, 6, 7, 8], rejected.Select(r => r.GetProperty("index").GetInt32()));
        Assert.All(rejected, r => Assert.False(string.IsNullOrWhiteSpace(r.GetProperty("reason").GetString())));
        Assert.Contains("source", rejected[0].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains("closed billing period", rejected[4].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(10m, await UsageTotalAsync("partial-co", "widgets"));

        using var notArray = await Client.PostAsJsonAsync("/v1/usage/events", new { id = "x" });
        Assert.Equal(HttpStatusCode.BadRequest, notArray.StatusCode);
        using var broken = await Client.PostAsync(new Uri("/v1/usage/events", UriKind.Relative), new StringContent("[{", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
    }

    [Fact]
    public async Task Events_are_read_whatever_their_field_order_escapes_and_repeats()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        await Client.CreateActiveTenantAsync("order-co");
        var body = """
            [
              {"data": {"n": 4}, "subject": "order-co", "time": null, "type": "widgets", "source": "test", "id": "data-first"},
              {"id": "first", "id": "repeated", "source": "test", "type": "widgets", "subject": "order-co", "data": {"n": 1, "n": 2}, "extra": {"x": [1, {"y": null}]}},
              {"\u0069d": "escaped-name", "source": "test", "type": "widgets", "subject": "order-co", "data": {"n": 3}},
              {"id": "control\u0001", "source": "test", "type": "widgets", "subject": "order-co", "data": {"n": 1}},
              {"id": "no-data", "source": "test", "type": "widgets", "subject": "order-co"},
              {"id": "array-data", "source": "test", "type": "widgets", "subject": "order-co", "data": [1]},
              {"id": "number-time", "source": "test", "type": "widgets", "subject": "order-co", "time": 42, "data": {"n": 1}},
              {"id": "escaped-values", "source": "t\u0065st", "type": "widgets", "subject": "order\u002Dco", "data": {"n": 10}},
              {"id": "long-source-1", "source": "LONG", "type": "widgets", "subject": "order-co", "data": {"n": 1}},
              {"id": "long-source-2", "source": "LONG", "type": "widgets", "subject": "order-co", "data": {"n": 1}}
            ]
            """.Replace("LONG", new string('s', 201), StringComparison.Ordinal);
        using var response = await Client.PostAsync(new Uri("/v1/usage/events", UriKind.Relative), new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        var reply = await response.JsonAsync();
        Assert.Equal(3, reply.GetProperty("accepted").GetInt32());
        var rejected = reply.GetProperty("rejected").EnumerateArray().ToList();
        Assert.Equal([1, 3, 4, 5, 6, 8, 9], rejected.Select(r => r.GetProperty("index").GetInt32()));
        // A repeated field is ambiguous (which id is the event's?), so the event is refused, not read one way.
        Assert.Contains("id", rejected[0].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains("id", rejected[1].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains("data.n", rejected[2].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains("data", rejected[3].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains("time", rejected[4].GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.All(rejected[5..], r => Assert.Contains("source", r.GetProperty("reason").GetString(), StringComparison.Ordinal));
        Assert.Equal(17m, await UsageTotalAsync("order-co", "widgets"));

        // Neither spelling of the refused event's id was stored: both are new events now.
        var replay = await SendAsync([Event("repeated", "order-co", new { n = 2 }), Event("first", "order-co", new { n = 1 })]);
        Assert.Equal(0, replay.GetProperty("duplicates").GetInt32());
        Assert.Equal(2, replay.GetProperty("accepted").GetInt32());

        // A body that is not one JSON array of 1-MaxBatch events is refused whole.
        foreach (var refused in new[] { "[{\"id\": \"a\"}] trailing", "[]", "[" + string.Join(",", Enumerable.Repeat("{}", 1001)) + "]", "" })
        {
            using var bad = await Client.PostAsync(new Uri("/v1/usage/events", UriKind.Relative), new StringContent(refused, System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        Assert.Equal(20m, await UsageTotalAsync("order-co", "widgets"));
    }

    [Fact]
    public async Task Invoice_prorates_a_mid_month_plan_change_and_is_reproducible_from_the_stored_events()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        await CreatePlanAsync(PlanBody("small", 30m, hardWidgets: null, perUnit: 0.25m, included: 10));
        await CreatePlanAsync(PlanBody("large", 300m, hardWidgets: null, perUnit: 0.10m, included: 100));
        var id = await Client.CreateActiveTenantAsync("invoice-co");
        await ChangePlanAsync(id, "small", null, "to-small"); // from now on

        // Usage on the small plan: 40 widgets, 10 included → 30 × 0.25 = 7.50.
        Assert.Equal(4, (await SendAsync(Enumerable.Range(0, 4).Select(i => Event($"w{i}", id, new { n = 10 })).ToArray())).GetProperty("accepted").GetInt32());

        var tenant = await Client.GetJsonAsync($"/v1/tenants/{id}");
        var now = DateTimeOffset.UtcNow;
        var period = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var end = period.AddMonths(1);
        var created = tenant.GetProperty("createdAt").GetDateTimeOffset();
        var planStart = (await Client.GetJsonAsync($"/v1/tenants/{id}/plan")).GetProperty("schedule")[0].GetProperty("effectiveFrom").GetDateTimeOffset();
        var change = TruncateToSecond(now + (end - now) / 2);

        // The change is sent twice with one key: it is stored, and billed, once.
        await ChangePlanAsync(id, "large", change, "upgrade-1");
        using (var retried = await PostPlanChangeAsync(id, "large", change, "upgrade-1"))
        {
            Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
            Assert.Equal("true", retried.Headers.GetValues("Idempotent-Replayed").Single());
        }

        using (var reused = await PostPlanChangeAsync(id, "small", change.AddHours(1), "upgrade-1"))
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, reused.StatusCode);
        }

        var schedule = (await Client.GetJsonAsync($"/v1/tenants/{id}/plan")).GetProperty("schedule");
        Assert.Equal(["small", "large"], schedule.EnumerateArray().Select(a => a.GetProperty("planId").GetString()));

        using var draftResponse = await Client.PostAsJsonAsync($"/v1/tenants/{id}/invoices", new { period = period.ToString("yyyy-MM", CultureInfo.InvariantCulture) });
        Assert.Equal(HttpStatusCode.Created, draftResponse.StatusCode);
        var draft = await draftResponse.JsonAsync();
        Assert.Equal("draft", draft.GetProperty("status").GetString());

        // Hand-computed: small from the tenant's first second (a plan starts no earlier than its tenant), then large from the change.
        var month = (decimal)(end - period).TotalSeconds;
        decimal Prorate(decimal price, DateTimeOffset from, DateTimeOffset to) =>
            Math.Round(price * (decimal)Math.Floor((to - from).TotalSeconds) / month, 2, MidpointRounding.AwayFromZero);
        var lines = draft.GetProperty("lines").EnumerateArray().ToList();
        var prorations = lines.Where(l => l.GetProperty("kind").GetString() == "proration").ToList();
        Assert.Equal(["small", "large"], prorations.TakeLast(2).Select(l => l.GetProperty("planId").GetString()));
        Assert.Equal(Prorate(30m, planStart > created ? planStart : created, change), prorations[^2].GetProperty("amount").GetDecimal());
        Assert.Equal(Prorate(300m, change, end), prorations[^1].GetProperty("amount").GetDecimal());
        var smallUsage = lines.Single(l => l.GetProperty("kind").GetString() == "usage" && l.GetProperty("planId").GetString() == "small");
        Assert.Equal(40m, smallUsage.GetProperty("quantity").GetDecimal());
        Assert.Equal(7.50m, smallUsage.GetProperty("amount").GetDecimal());
        var largeUsage = lines.Single(l => l.GetProperty("kind").GetString() == "usage" && l.GetProperty("planId").GetString() == "large");
        Assert.Equal(0m, largeUsage.GetProperty("amount").GetDecimal());
        Assert.Equal(lines.Sum(l => l.GetProperty("amount").GetDecimal()), draft.GetProperty("total").GetDecimal());

        // Finalize; then the invoice is immutable, and the period takes no more of the tenant's events.
        var invoiceId = draft.GetProperty("id").GetString();
        using var finalizing = await Client.PostAsync(new Uri($"/v1/invoices/{invoiceId}/finalize", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, finalizing.StatusCode);
        var finalized = await finalizing.JsonAsync();
        Assert.Equal("finalized", finalized.GetProperty("status").GetString());
        var late = await SendAsync([Event("late", id, new { n = 1000 })]);
        Assert.Equal(0, late.GetProperty("accepted").GetInt32());
        Assert.Contains("closed", late.GetProperty("rejected")[0].GetProperty("reason").GetString(), StringComparison.Ordinal);
        using (var redraft = await Client.PostAsJsonAsync($"/v1/tenants/{id}/invoices", new { period = period.ToString("yyyy-MM", CultureInfo.InvariantCulture) }))
        {
            Assert.Equal(HttpStatusCode.Conflict, redraft.StatusCode);
        }

        using (var change2 = await PostPlanChangeAsync(id, "small", change.AddHours(2), "late-change"))
        {
            Assert.Equal(HttpStatusCode.Conflict, change2.StatusCode);
        }

        // Recomputed from the stored events: the same lines and total.
        var recomputed = await Client.GetJsonAsync($"/v1/tenants/{id}/invoices/preview?period={period:yyyy-MM}");
        Assert.Equal(finalized.GetProperty("total").GetDecimal(), recomputed.GetProperty("total").GetDecimal());
        Assert.Equal(
            finalized.GetProperty("lines").EnumerateArray().Select(l => l.GetProperty("amount").GetDecimal()),
            recomputed.GetProperty("lines").EnumerateArray().Select(l => l.GetProperty("amount").GetDecimal()));

        using var csv = await Client.GetAsync(new Uri($"/v1/invoices/{invoiceId}?format=csv", UriKind.Relative));
        Assert.Equal("text/csv", csv.Content.Headers.ContentType?.MediaType);
        var rows = (await csv.Content.ReadAsStringAsync()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("invoice_id,", rows[0], StringComparison.Ordinal);
        Assert.Equal(lines.Count + 2, rows.Length);
        Assert.EndsWith(",total,,,Total,,,," + finalized.GetProperty("total").GetDecimal().ToString(CultureInfo.InvariantCulture) + ",,", rows[^1], StringComparison.Ordinal);

        using var voiding = await Client.PostAsync(new Uri($"/v1/invoices/{invoiceId}/void", UriKind.Relative), null);
        Assert.Equal("void", (await voiding.JsonAsync()).GetProperty("status").GetString());
        using var refinalize = await Client.PostAsync(new Uri($"/v1/invoices/{invoiceId}/finalize", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.Conflict, refinalize.StatusCode);
    }

    [Fact]
    public async Task Shared_costs_are_allocated_by_meter_share_and_sum_back_to_the_recorded_total()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        var a = await Client.CreateActiveTenantAsync("cost-a");
        var b = await Client.CreateActiveTenantAsync("cost-b");
        var c = await Client.CreateActiveTenantAsync("cost-c");
        await SendAsync([Event("a1", a, new { n = 2 }), Event("b1", b, new { n = 1 })]); // c uses nothing
        var period = DateTimeOffset.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);

        await RecordCostAsync(new { resource = "pool-db", amount = 100.01m, period, tags = new { tenant = "shared" } }, "cost-1");
        await RecordCostAsync(new { resource = "pool-db", amount = 100.01m, period, tags = new { tenant = "shared" } }, "cost-1"); // a retry
        await RecordCostAsync(new { resource = "silo-db", amount = 7.5m, period, tags = new { tenant = "cost-c", env = "prod" } }, null);
        using (var bad = await Client.PostAsJsonAsync("/v1/costs/lines", new { resource = "x", amount = 1.001m, period = "2026-13", tags = new { } }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        var report = await Client.GetJsonAsync($"/v1/costs?period={period}&meter=widgets");
        Assert.Equal(107.51m, report.GetProperty("totalCost").GetDecimal());
        Assert.Equal(0m, report.GetProperty("unallocatedCost").GetDecimal());
        var items = report.GetProperty("items").EnumerateArray().ToDictionary(i => i.GetProperty("slug").GetString()!);
        Assert.Equal(107.51m, items.Values.Sum(i => i.GetProperty("cost").GetDecimal()));
        Assert.Equal(66.67m, items["cost-a"].GetProperty("sharedCost").GetDecimal()); // 2/3 of 100.01 = 66.673…
        Assert.Equal(33.34m, items["cost-b"].GetProperty("sharedCost").GetDecimal()); // 1/3 = 33.336…
        Assert.Equal(0m, items["cost-c"].GetProperty("sharedCost").GetDecimal());
        Assert.Equal(7.5m, items["cost-c"].GetProperty("directCost").GetDecimal());
        foreach (var item in items.Values)
        {
            Assert.Equal(item.GetProperty("revenue").GetDecimal() - item.GetProperty("cost").GetDecimal(), item.GetProperty("margin").GetDecimal());
        }

        // basic's heavy-lifter share is 25%: a carries 62%, b 31%, c 7%.
        Assert.True(items["cost-a"].GetProperty("heavyLifter").GetBoolean());
        Assert.True(items["cost-b"].GetProperty("heavyLifter").GetBoolean());
        Assert.False(items["cost-c"].GetProperty("heavyLifter").GetBoolean());
        var tiers = report.GetProperty("tiers").EnumerateArray().ToList();
        Assert.Equal(107.51m, tiers.Sum(t => t.GetProperty("cost").GetDecimal()));
        Assert.Equal(report.GetProperty("totalRevenue").GetDecimal(), tiers.Sum(t => t.GetProperty("revenue").GetDecimal()));
    }

    [Fact]
    public async Task Cost_report_revenue_equals_each_tenants_invoice_preview_or_its_finalized_invoice()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        await CreatePlanAsync(PlanBody("small", 30m, hardWidgets: null, perUnit: 0.25m, included: 10));
        await CreatePlanAsync(new
        {
            id = "tiered", name = "tiered", tier = "standard", isolation = "pool", basePrice = 123.45m, heavyLifterShare = 0.1m,
            prices = new object[]
            {
                new { meter = "widgets", model = "graduated", included = 5, tiers = new object[] { new { upTo = 20, unitPrice = 0.333m, flatPrice = 1.005m }, new { upTo = (decimal?)null, unitPrice = 0.1m, flatPrice = 0m } } },
            },
        });
        await CreatePlanAsync(new
        {
            id = "pack", name = "pack", tier = "premium", isolation = "pool", basePrice = 77.77m,
            prices = new object[] { new { meter = "widgets", model = "package", included = 3, packageSize = 7, packagePrice = 2.5m } },
        });
        var now = DateTimeOffset.UtcNow;
        var period = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var month = period.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        var change = TruncateToSecond(now + (period.AddMonths(1) - now) / 2);

        var onBasic = await Client.CreateActiveTenantAsync("rev-basic");
        var onStandard = await Client.CreateActiveTenantAsync("rev-standard", "standard");
        var onSmall = await Client.CreateActiveTenantAsync("rev-small");
        await ChangePlanAsync(onSmall, "small", null, "rev-small-1");
        var prorated = await Client.CreateActiveTenantAsync("rev-prorated");
        await ChangePlanAsync(prorated, "tiered", null, "rev-prorated-1");
        await ChangePlanAsync(prorated, "pack", change, "rev-prorated-2"); // two segments, both prorated
        var closed = await Client.CreateActiveTenantAsync("rev-closed");
        await ChangePlanAsync(closed, "pack", null, "rev-closed-1");
        await SendAsync(
        [
            Event("r1", onBasic, new { n = 4 }), Event("r2", onStandard, new { n = 9 }), Event("r3", onSmall, new { n = 13 }), Event("r4", onSmall, new { n = 18.5 }),
            Event("r5", prorated, new { n = 17 }), Event("r6", prorated, new { n = 11 }), Event("r7", closed, new { n = 40 }),
        ]);

        using (var draft = await Client.PostAsJsonAsync($"/v1/tenants/{closed}/invoices", new { period = month }))
        {
            Assert.Equal(HttpStatusCode.Created, draft.StatusCode);
            var invoiceId = (await draft.JsonAsync()).GetProperty("id").GetString();
            using var finalizing = await Client.PostAsync(new Uri($"/v1/invoices/{invoiceId}/finalize", UriKind.Relative), null);
            Assert.Equal(HttpStatusCode.OK, finalizing.StatusCode);
        }

        await RecordCostAsync(new { resource = "pool-db", amount = 250.03m, period = month, tags = new { tenant = "shared" } }, "rev-cost-1");
        await RecordCostAsync(new { resource = "silo-db", amount = 12.5m, period = month, tags = new { tenant = "rev-prorated" } }, "rev-cost-2");

        var report = await Client.GetJsonAsync($"/v1/costs?period={month}&meter=widgets");
        var items = report.GetProperty("items").EnumerateArray().ToDictionary(i => i.GetProperty("tenantId").GetString()!);
        var finalizedTotal = (await Client.GetJsonAsync($"/v1/tenants/{closed}/invoices")).GetProperty("items").EnumerateArray()
            .Single(i => i.GetProperty("status").GetString() == "finalized").GetProperty("total").GetDecimal();
        Assert.Equal(finalizedTotal, items[closed].GetProperty("revenue").GetDecimal());
        foreach (var (id, planId) in new[] { (onBasic, "basic"), (onStandard, "standard"), (onSmall, "small"), (prorated, "pack"), (closed, "pack") })
        {
            var preview = await Client.GetJsonAsync($"/v1/tenants/{id}/invoices/preview?period={month}");
            Assert.Equal(preview.GetProperty("total").GetDecimal(), items[id].GetProperty("revenue").GetDecimal());
            Assert.Equal(planId, items[id].GetProperty("planId").GetString());
        }

        // The prorated tenant's invoice has its two plans' prorations and usage under both price models (and, on a busy
        // machine, a line for the seconds it spent on its onboarding plan before the first change).
        var lines = (await Client.GetJsonAsync($"/v1/tenants/{prorated}/invoices/preview?period={month}")).GetProperty("lines").EnumerateArray().ToList();
        Assert.Equal(["tiered", "pack"], lines.Where(l => l.GetProperty("kind").GetString() == "proration").Select(l => l.GetProperty("planId").GetString()).Where(p => p != "basic"));
        Assert.Equal(12.5m, items[prorated].GetProperty("directCost").GetDecimal());
        Assert.Equal("premium", items[prorated].GetProperty("tier").GetString());
        Assert.Equal(items.Values.Sum(i => i.GetProperty("revenue").GetDecimal()), report.GetProperty("totalRevenue").GetDecimal());
    }

    [Fact]
    public async Task Hard_quota_refuses_with_problem_details_and_soft_quota_crossing_is_audited()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        await CreatePlanAsync(new { id = "capped", name = "Capped", tier = "basic", isolation = "pool", basePrice = 1, quotas = new object[] { new { meter = "widgets", limit = 10, kind = "hard" } } });
        await CreatePlanAsync(new { id = "calls", name = "Calls", tier = "basic", isolation = "pool", basePrice = 1, quotas = new object[] { new { meter = "api_calls", limit = 1_000_000, kind = "hard" } } });
        await CreatePlanAsync(new { id = "flagged", name = "Flagged", tier = "basic", isolation = "pool", basePrice = 1, quotas = new object[] { new { meter = "widgets", limit = 5, kind = "soft" } } });
        var capped = await Client.CreateActiveTenantAsync("capped-co");
        var calls = await Client.CreateActiveTenantAsync("calls-co");
        var flagged = await Client.CreateActiveTenantAsync("flagged-co");
        await ChangePlanAsync(capped, "capped", null, null);
        await ChangePlanAsync(calls, "calls", null, null);
        await ChangePlanAsync(flagged, "flagged", null, null);

        await SendAsync([Event("c1", capped, new { n = 8 })]);
        using (var ok = await Client.PostAsJsonAsync($"/v1/tenants/{capped}/entitlements/check", new { meter = "widgets", quantity = 2 }))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using (var refused = await Client.PostAsJsonAsync($"/v1/tenants/{capped}/entitlements/check", new { meter = "widgets", quantity = 3 }))
        {
            Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
            Assert.Equal("https://tenantry.dev/problems/quota-exceeded", (await refused.JsonAsync()).GetProperty("type").GetString());
        }

        // api_calls: the control plane meters calls made on the tenant's behalf; once the hard quota
        // is used up (here: lowered below what the tenant has already made) it refuses them.
        using (var allowed = await Client.GetAsync(new Uri($"/v1/tenants/{calls}/entitlements", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        }

        using (var lower = await Client.PatchAsJsonAsync("/v1/plans/calls", new { quotas = new object[] { new { meter = "api_calls", limit = 1, kind = "hard" } } }))
        {
            Assert.Equal(HttpStatusCode.OK, lower.StatusCode);
        }

        using (var call = await Client.GetAsync(new Uri($"/v1/tenants/{calls}/entitlements", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, call.StatusCode);
            Assert.Equal("https://tenantry.dev/problems/quota-exceeded", (await call.JsonAsync()).GetProperty("type").GetString());
            Assert.NotNull(call.Headers.RetryAfter);
        }

        using (var other = await Client.GetAsync(new Uri($"/v1/tenants/{capped}/entitlements", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, other.StatusCode); // Another tenant is not limited by it.
        }

        // Soft: 6 > 5 is allowed, and raises one audit entry (with its quota.exceeded event).
        Assert.Equal(2, (await SendAsync([Event("f1", flagged, new { n = 4 }), Event("f2", flagged, new { n = 2 })])).GetProperty("accepted").GetInt32());
        JsonElement[] soft = [];
        for (var i = 0; i < 200 && soft.Length == 0; i++)
        {
            await Task.Delay(50);
            soft = [.. (await Client.GetJsonAsync($"/v1/audit?tenantId={flagged}&limit=200")).GetProperty("items").EnumerateArray()
                .Where(e => e.GetProperty("action").GetString() == "quota.soft_exceeded")];
        }

        Assert.Single(soft);
        Assert.Equal("widgets", soft[0].GetProperty("detail").GetProperty("meter").GetString());
        await SendAsync([Event("f3", flagged, new { n = 1 })]);
        await Task.Delay(300);
        Assert.Single((await Client.GetJsonAsync($"/v1/audit?tenantId={flagged}&limit=200")).GetProperty("items").EnumerateArray(),
            e => e.GetProperty("action").GetString() == "quota.soft_exceeded");
        var exceeded = Assert.Single((await Client.GetJsonAsync($"/v1/events?tenantId={flagged}&type=quota.exceeded")).GetProperty("items").EnumerateArray());
        Assert.Equal(flagged, exceeded.GetProperty("subject").GetString());
        Assert.Equal("widgets", exceeded.GetProperty("data").GetProperty("meter").GetString());
        Assert.Equal("soft", exceeded.GetProperty("data").GetProperty("kind").GetString());
    }

    [Fact]
    public async Task Usage_query_windows_and_groups_events()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        var id = await Client.CreateActiveTenantAsync("usage-co");
        var now = DateTimeOffset.UtcNow;
        var hour = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, 0, 0, TimeSpan.Zero);
        await SendAsync(
        [
            Event("u1", id, new { n = 1, region = "eu" }, hour.AddMinutes(1)),
            Event("u2", id, new { n = 2, region = "us" }, hour.AddMinutes(2)),
            Event("u3", id, new { n = 4, region = "eu" }, hour.AddMinutes(3)),
        ]);
        var grouped = await Client.GetJsonAsync($"/v1/usage?tenantId={id}&meter=widgets&window=hour&from={Uri.EscapeDataString(hour.ToString("O"))}&to={Uri.EscapeDataString(hour.AddHours(1).ToString("O"))}&groupBy=region");
        var items = grouped.GetProperty("items").EnumerateArray().ToDictionary(i => i.GetProperty("group").GetString()!, i => i.GetProperty("value").GetDecimal());
        Assert.Equal(5m, items["eu"]);
        Assert.Equal(2m, items["us"]);
        using var bad = await Client.GetAsync(new Uri("/v1/usage?meter=widgets&window=week", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
    }

    private static DateTimeOffset TruncateToSecond(DateTimeOffset t) => new(t.UtcTicks - (t.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);

    protected static object Event(string id, string subject, object data, DateTimeOffset? time = null) =>
        new { id, source = "test", type = "widgets", subject, time = time ?? DateTimeOffset.UtcNow, data };

    private static object PlanBody(string id, decimal basePrice, int? hardWidgets, decimal perUnit = 0.5m, decimal included = 0) => new
    {
        id, name = id, tier = "basic", isolation = "pool", basePrice,
        prices = new[] { new { meter = "widgets", model = "per_unit", unitPrice = perUnit, included } },
        quotas = hardWidgets is null ? Array.Empty<object>() : [new { meter = "widgets", limit = hardWidgets, kind = "hard" }],
    };

    protected async Task CreateMeterAsync(string key, string aggregation, string property)
    {
        using var response = await Client.PostAsJsonAsync("/v1/meters", new { key, aggregation, property });
        Assert.True(response.StatusCode is HttpStatusCode.Created or HttpStatusCode.Conflict, await response.Content.ReadAsStringAsync());
    }

    private async Task CreatePlanAsync(object body)
    {
        using var response = await Client.PostAsJsonAsync("/v1/plans", body);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    private Task<HttpResponseMessage> PostPlanChangeAsync(string tenant, string planId, DateTimeOffset? effectiveAt, string? key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/tenants/{tenant}/plan") { Content = JsonContent.Create(new { planId, effectiveAt }) };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return Client.SendAsync(request);
    }

    private async Task ChangePlanAsync(string tenant, string planId, DateTimeOffset? effectiveAt, string? key)
    {
        using var response = await PostPlanChangeAsync(tenant, planId, effectiveAt, key);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
    }

    private async Task RecordCostAsync(object body, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/costs/lines") { Content = JsonContent.Create(body) };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        using var response = await Client.SendAsync(request);
        Assert.True(response.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
    }

    protected async Task<JsonElement> SendAsync(object[] batch)
    {
        using var response = await Client.PostAsJsonAsync("/v1/usage/events", batch);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await response.JsonAsync();
    }

    private async Task<decimal> UsageTotalAsync(string tenant, string meter)
    {
        var usage = await Client.GetJsonAsync($"/v1/usage?tenantId={tenant}&meter={meter}&window=month");
        return usage.GetProperty("items").EnumerateArray().Sum(i => i.GetProperty("value").GetDecimal());
    }
}

[Collection(SoloCollection.Name)]
public sealed class BillingOnSqliteTests : BillingScenarios
{
    protected override Task<string?> StoreAsync() => Task.FromResult<string?>(null);
}
