using System.Text.Json;
using Tenantry.Billing;
using Tenantry.Billing.Costs;
using Tenantry.Billing.Invoices;
using Tenantry.Billing.Plans;
using Tenantry.Billing.Usage;

namespace Tenantry.Billing.Tests;

public sealed class PricingTests
{
    private static readonly BillingPeriod November = new(2026, 11); // 30 days
    private static readonly Guid TenantId = Guid.Parse("11111111-1111-1111-1111-111111111111");

    [Fact]
    public void Per_unit_charges_units_above_the_included_quantity()
    {
        var price = new MeteredPrice { Meter = "api_calls", Model = Pricing.PerUnit, Included = 1000, UnitPrice = 0.0015m };
        // 12,345 calls - 1,000 included = 11,345 × 0.0015 = 17.0175 → 17.02
        Assert.Equal(17.0175m, Pricing.Charge(price, Pricing.Billable(12_345, price.Included)));
        Assert.Equal(17.02m, Pricing.RoundMoney(17.0175m));
        Assert.Equal(0m, Pricing.Charge(price, Pricing.Billable(999, price.Included)));
    }

    [Fact]
    public void Graduated_prices_each_unit_in_the_band_it_falls_in()
    {
        var price = new MeteredPrice
        {
            Meter = "m", Model = Pricing.Graduated,
            Tiers = [new PriceTier(100, 1m), new PriceTier(1000, 0.5m, FlatPrice: 10m), new PriceTier(null, 0.1m)],
        };
        // 100 × 1 + (10 + 900 × 0.5) + 500 × 0.1 = 100 + 460 + 50 = 610
        Assert.Equal(610m, Pricing.Charge(price, 1500));
        // Exactly at the first boundary: 100 × 1 = 100, the second band is not entered.
        Assert.Equal(100m, Pricing.Charge(price, 100));
        // One unit into the second band enters it: 100 + 10 + 0.5.
        Assert.Equal(110.5m, Pricing.Charge(price, 101));
        Assert.Null(Pricing.Check(price));
    }

    [Fact]
    public void Package_charges_whole_packages_rounding_up()
    {
        var price = new MeteredPrice { Meter = "m", Model = Pricing.Package, PackageSize = 1000, PackagePrice = 2.5m, Included = 500 };
        // 2,501 - 500 = 2,001 units → 3 packages × 2.50 = 7.50
        Assert.Equal(7.5m, Pricing.Charge(price, Pricing.Billable(2_501, price.Included)));
        Assert.Equal(5m, Pricing.Charge(price, 2000));
    }

    [Fact]
    public void Malformed_prices_are_refused()
    {
        Assert.NotNull(Pricing.Check(new MeteredPrice { Meter = "m", Model = "per_unit" }));
        Assert.NotNull(Pricing.Check(new MeteredPrice { Meter = "m", Model = "graduated", Tiers = [new PriceTier(10, 1), new PriceTier(5, 1), new PriceTier(null, 1)] }));
        Assert.NotNull(Pricing.Check(new MeteredPrice { Meter = "m", Model = "graduated", Tiers = [new PriceTier(null, 1), new PriceTier(null, 1)] }));
        Assert.NotNull(Pricing.Check(new MeteredPrice { Meter = "m", Model = "package", PackageSize = 0, PackagePrice = 1 }));
        Assert.NotNull(Pricing.Check(new MeteredPrice { Meter = "m", Model = "tiered-volume" }));
    }

    [Fact]
    public void Mid_month_plan_change_prorates_both_plans_by_the_seconds_each_covers()
    {
        var basic = new Plan { Id = "basic", Name = "Basic", Tier = "basic", Isolation = "pool", BasePrice = 49m };
        var standard = new Plan { Id = "standard", Name = "Standard", Tier = "standard", Isolation = "bridge", BasePrice = 199m };
        var change = new DateTimeOffset(2026, 11, 16, 0, 0, 0, TimeSpan.Zero); // 15 of 30 days on each
        var invoice = InvoiceCalculator.Compute(TenantId, November,
            [new PlanSegment(basic, November.Start, change), new PlanSegment(standard, change, November.End)], (_, _, _) => 0);

        Assert.Equal(["proration", "proration"], invoice.Lines.Select(l => l.Kind));
        Assert.Equal(24.50m, invoice.Lines[0].Amount); // 49 × 15/30
        Assert.Equal(99.50m, invoice.Lines[1].Amount); // 199 × 15/30
        Assert.Equal(124.00m, invoice.Total);
    }

    [Fact]
    public void Proration_of_an_uneven_stretch_rounds_once_per_line()
    {
        var plan = new Plan { Id = "p", Name = "P", Tier = "basic", Isolation = "pool", BasePrice = 100m };
        var from = new DateTimeOffset(2026, 11, 21, 0, 0, 0, TimeSpan.Zero); // 10 of 30 days
        var invoice = InvoiceCalculator.Compute(TenantId, November, [new PlanSegment(plan, from, November.End)], (_, _, _) => 0);
        Assert.Equal(33.33m, invoice.Total); // 100 × 1/3 = 33.333… → 33.33
    }

    [Fact]
    public void Whole_month_invoice_adds_base_and_each_price_model_less_included()
    {
        var plan = new Plan
        {
            Id = "mix", Name = "Mix", Tier = "basic", Isolation = "pool", BasePrice = 10m,
            Prices =
            [
                new MeteredPrice { Meter = "a", Model = Pricing.PerUnit, Included = 100, UnitPrice = 0.01m },
                new MeteredPrice { Meter = "b", Model = Pricing.Graduated, Included = 0, Tiers = [new PriceTier(10, 2m), new PriceTier(null, 1m)] },
                new MeteredPrice { Meter = "c", Model = Pricing.Package, Included = 5, PackageSize = 10, PackagePrice = 3m },
            ],
        };
        var usage = new Dictionary<string, decimal> { ["a"] = 350, ["b"] = 15, ["c"] = 26 };
        var invoice = InvoiceCalculator.Compute(TenantId, November, [new PlanSegment(plan, November.Start, November.End)], (m, _, _) => usage[m]);

        // base 10; a: (350-100) × 0.01 = 2.50; b: 10 × 2 + 5 × 1 = 25; c: ceil((26-5)/10) = 3 × 3 = 9
        Assert.Equal([10m, 2.50m, 25m, 9m], invoice.Lines.Select(l => l.Amount));
        Assert.Equal(46.50m, invoice.Total);
        Assert.Equal(250m, invoice.Lines[1].Billable);
    }

    [Fact]
    public void Shared_cost_allocation_sums_back_to_the_total_exactly()
    {
        var weights = new Dictionary<string, decimal> { ["a"] = 1, ["b"] = 1, ["c"] = 1 };
        var split = CostAllocator.Allocate(100_00 + 1, weights, StringComparer.Ordinal); // 100.01 three ways
        Assert.Equal(10_001, split.Values.Sum());
        Assert.Equal([3334L, 3334L, 3333L], split.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value));

        var random = new Random(7);
        for (var round = 0; round < 200; round++)
        {
            var w = Enumerable.Range(0, random.Next(1, 30)).ToDictionary(i => i, _ => (decimal)random.Next(0, 1_000_000) / random.Next(1, 1000));
            var cents = random.NextInt64(0, 10_000_000_000);
            Assert.Equal(cents, CostAllocator.Allocate(cents, w, Comparer<int>.Default).Values.Sum());
        }
    }

    [Fact]
    public void Allocation_follows_usage_share_and_gives_leftover_cents_to_largest_remainders()
    {
        var split = CostAllocator.Allocate(1000, new Dictionary<string, decimal> { ["big"] = 2, ["small"] = 1 }, StringComparer.Ordinal);
        Assert.Equal(667, split["big"]);   // 666.67
        Assert.Equal(333, split["small"]); // 333.33
        var none = CostAllocator.Allocate(10, new Dictionary<string, decimal> { ["x"] = 0, ["y"] = 0, ["z"] = 0 }, StringComparer.Ordinal);
        Assert.Equal(10, none.Values.Sum());
    }

    [Fact]
    public void Each_aggregation_folds_events_as_named()
    {
        JsonElement? Data(string json) => JsonDocument.Parse(json).RootElement;
        var events = new[] { Data("""{"v":5,"u":"a"}"""), Data("""{"v":2,"u":"b"}"""), Data("""{"v":9,"u":"a"}"""), Data("""{"v":"1.5","u":"c"}""") };
        Meter M(string aggregation) => new() { Key = "m", EventType = "m", Aggregation = aggregation, Property = aggregation == "unique_count" ? "u" : "v" };
        Assert.Equal(17.5m, Aggregations.Aggregate(M("sum"), events));
        Assert.Equal(4m, Aggregations.Aggregate(M("count"), events));
        Assert.Equal(9m, Aggregations.Aggregate(M("max"), events));
        Assert.Equal(1.5m, Aggregations.Aggregate(M("latest"), events));
        Assert.Equal(3m, Aggregations.Aggregate(M("unique_count"), events));
    }

    [Fact]
    public void Plan_segments_follow_the_schedule_and_the_tenant_lifetime()
    {
        var plans = DefaultPlans.All.ToDictionary(p => p.Id);
        var tenant = new BilledTenant(
            TenantId, "acme", "basic", TenantStatus.Active, CreatedAt: new DateTimeOffset(2026, 11, 6, 0, 0, 0, TimeSpan.Zero), UpdatedAt: November.Start);
        var change = new PlanAssignment("pc", TenantId, "premium", new DateTimeOffset(2026, 11, 16, 0, 0, 0, TimeSpan.Zero), "op", November.Start);
        var segments = TenantPlans.Segments(tenant, [change], plans, November);
        Assert.Equal([("basic", tenant.CreatedAt, change.EffectiveFrom), ("premium", change.EffectiveFrom, November.End)],
            segments.Select(s => (s.Plan.Id, s.From, s.To)));
        Assert.Equal("basic", TenantPlans.PlanAt(tenant, [change], change.EffectiveFrom.AddSeconds(-1)));
        Assert.Empty(TenantPlans.Segments(tenant, [change], plans, new BillingPeriod(2026, 10)));
    }

    [Fact]
    public void A_retried_plan_change_gets_the_same_id()
    {
        var at = new DateTimeOffset(2026, 11, 16, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(TenantPlans.ChangeId(TenantId, null, "standard", at), TenantPlans.ChangeId(TenantId, null, "standard", at));
        Assert.Equal(TenantPlans.ChangeId(TenantId, "k1", "standard", at), TenantPlans.ChangeId(TenantId, "k1", "premium", at.AddDays(1)));
        Assert.NotEqual(TenantPlans.ChangeId(TenantId, "k1", "standard", at), TenantPlans.ChangeId(TenantId, "k2", "standard", at));
    }

    [Fact]
    public void Events_of_last_month_are_open_only_during_the_grace()
    {
        var grace = TimeSpan.FromDays(3);
        Assert.Equal(new BillingPeriod(2026, 10).Start, UsageApi.OpenFrom(new DateTimeOffset(2026, 11, 2, 0, 0, 0, TimeSpan.Zero), grace));
        Assert.Equal(November.Start, UsageApi.OpenFrom(new DateTimeOffset(2026, 11, 4, 0, 0, 0, TimeSpan.Zero), grace));
    }
}
