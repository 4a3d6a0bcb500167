using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Audit;
using Tenantry.Billing.Invoices;
using Tenantry.Billing.Plans;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Costs;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CostLineRequest(string? Resource, decimal? Amount, string? Period, Dictionary<string, string>? Tags);

public sealed record CostLine(string Id, string Resource, decimal Amount, string Period, string? TenantId, bool Shared, IReadOnlyDictionary<string, string> Tags, DateTimeOffset CreatedAt);

public sealed record TenantCost(
    string TenantId, string Slug, string Tier, string PlanId, decimal Revenue, decimal DirectCost, decimal SharedCost, decimal Cost,
    decimal Margin, decimal? MarginPercent, decimal Usage, decimal CostShare, bool HeavyLifter);

public sealed record TierCost(string Tier, int Tenants, decimal Revenue, decimal Cost, decimal Margin, decimal? MarginPercent);

public sealed record CostReport(
    string Period, string Meter, decimal TotalRevenue, decimal TotalCost, decimal DirectCost, decimal SharedCost, decimal UnallocatedCost,
    decimal Margin, decimal? MarginPercent, IReadOnlyList<TenantCost> Items, IReadOnlyList<TierCost> Tiers);

/// <summary>Infrastructure cost lines and the per-tenant margin report built from them and the invoices.</summary>
public static class CostsApi
{
    public const string DefaultMeter = "api_calls";

    public static RouteGroupBuilder MapCostsApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/costs/lines", Record).WithTags("Costs").Accepts<CostLineRequest>("application/json")
            .WithSummary("Record an infrastructure cost: resource, amount, period (YYYY-MM), tags with tenant (id or slug) or tenant: shared.");
        v1.MapGet("/costs/lines", Lines).WithTags("Costs").WithSummary("The cost lines of ?period=YYYY-MM.");
        v1.MapGet("/costs", Report).WithTags("Costs")
            .WithSummary("Revenue, cost, margin and margin % per tenant and tier for ?period=YYYY-MM; shared costs split by each tenant's share of ?meter= (default api_calls).");
        v1.MapPost("/costs/run", Run).WithTags("Costs")
            .WithSummary("Apply the price book (Tenantry:Costs:PriceBook) to ?day=YYYY-MM-DD (UTC, not after today): a cost line per tenant and priced item, source price-book, replacing the day's earlier lines; ?preview=true answers the lines without writing them.");
        return v1;
    }

    private static async Task<Results<Ok<PriceBookRunResult>, ProblemHttpResult>> Run(string? day, bool? preview, PriceBookRun run, TimeProvider time, HttpContext http, CancellationToken ct)
    {
        if (!DateOnly.TryParseExact(day, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d) || d.Year < 2000)
        {
            return ApiError.Validation("day", "day is a UTC date: YYYY-MM-DD.").ToResult();
        }

        if (d > DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime))
        {
            return ApiError.Validation("day", "day is today or before: a day that has not begun has no usage to cost.").ToResult();
        }

        return TypedResults.Ok(await run.RunAsync(d, preview ?? false, http.User.Actor(), ct));
    }

    private static async Task<Results<Created<CostLine>, Ok<CostLine>, ProblemHttpResult>> Record(HttpContext http, IControlPlaneDatabase db, ITenantDirectory tenants, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<CostLineRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        if (string.IsNullOrWhiteSpace(body!.Resource) || body.Resource.Length > 200)
        {
            errors["resource"] = ["resource names what the cost is for (1-200 characters)."];
        }

        if (body.Amount is not { } amount || amount < 0 || amount != Math.Round(amount, 2) || amount > 1_000_000_000_000m)
        {
            errors["amount"] = ["amount is >= 0 with at most two decimals."];
        }

        if (!BillingPeriod.TryParse(body.Period, out var period))
        {
            errors["period"] = ["period is a month: YYYY-MM."];
        }

        var tags = body.Tags ?? [];
        if (!tags.TryGetValue("tenant", out var tenantTag) || string.IsNullOrEmpty(tenantTag) || tags.Count > 20 ||
            tags.Any(t => t.Key.Length is 0 or > 64 || t.Value is null || t.Value.Length > 200))
        {
            errors["tags"] = ["tags holds tenant: a tenant id or slug, or \"shared\"; at most 20 tags of 64/200 characters."];
        }

        var key = http.Request.Headers[IdempotencyKey.Header].ToString();
        if (key.Length > 255 || key.Any(c => c is < ' ' or > '~'))
        {
            errors[IdempotencyKey.Header] = ["An Idempotency-Key is 1-255 printable ASCII characters."];
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var shared = tenantTag == "shared";
        var id = key.Length > 0
            ? "cost_" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(http.User.Actor() + "|" + key)))[..32]
            : "cost_" + Guid.NewGuid().ToString("N");
        var now = time.GetUtcNow();
        var outcome = await db.WriteAsync<(CostLine? Line, ApiError? Error, bool Created)>(async (c, tx) =>
        {
            Guid? tenantId = null;
            if (!shared)
            {
                tenantId = (await tenants.FindAsync(c, tx, tenantTag!))?.Id;
                if (tenantId is null)
                {
                    return (null, ApiError.Validation("tags.tenant", $"No tenant '{tenantTag}'."), false);
                }
            }

            var line = new CostLine(id, body.Resource!.Trim(), body.Amount!.Value, period.ToString(), tenantId?.ToString(), shared, tags, now);
            if (await CostStore.GetAsync(c, tx, id) is { } earlier)
            {
                return earlier.Resource == line.Resource && earlier.Amount == line.Amount && earlier.Period == line.Period && earlier.TenantId == line.TenantId
                    ? (earlier, null, false)
                    : (null, new ApiError(StatusCodes.Status422UnprocessableEntity, "idempotency-key-reused", "The Idempotency-Key was used for a different request.",
                        $"The key '{key}' was first sent with another cost line."), false);
            }

            await CostStore.InsertAsync(c, tx, line);
            await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, tenantId, "cost.record",
                new JsonObject { ["costId"] = id, ["resource"] = line.Resource, ["amount"] = line.Amount.ToString(CultureInfo.InvariantCulture), ["period"] = line.Period }, now));
            return (line, null, true);
        });
        if (outcome.Error is not null)
        {
            return outcome.Error.ToResult();
        }

        return outcome.Created ? TypedResults.Created($"/v1/costs/lines?period={outcome.Line!.Period}", outcome.Line) : TypedResults.Ok(outcome.Line!);
    }

    private static async Task<Results<Ok<Page<CostLine>>, ProblemHttpResult>> Lines(string? period, IControlPlaneDatabase db)
    {
        if (!BillingPeriod.TryParse(period, out var p))
        {
            return ApiError.Validation("period", "period is a month: YYYY-MM.").ToResult();
        }

        var lines = await db.ReadAsync(c => CostStore.ListAsync(c, null, p));
        return TypedResults.Ok(new Page<CostLine>(lines, null));
    }

    private static async Task<Results<Ok<CostReport>, ProblemHttpResult>> Report(string? period, string? meter, IControlPlaneDatabase db, ITenantDirectory tenants, BillingCatalog catalog)
    {
        if (!BillingPeriod.TryParse(period, out var p))
        {
            return ApiError.Validation("period", "period is a month: YYYY-MM.").ToResult();
        }

        var snapshot = await catalog.ReloadAsync();
        meter ??= DefaultMeter;
        if (!snapshot.Meters.TryGetValue(meter, out var m))
        {
            return ApiError.Validation("meter", "meter names a meter (GET /v1/meters).").ToResult();
        }

        var report = await db.ReadAsync(c => BuildAsync(c, tenants, p, m, snapshot));
        return TypedResults.Ok(report);
    }

    internal static async Task<CostReport> BuildAsync(DbConnection c, ITenantDirectory directory, BillingPeriod period, Meter meter, BillingCatalog.Snapshot snapshot)
    {
        var lines = await CostStore.ListAsync(c, null, period, ordered: false);
        var directByTenant = new Dictionary<string, decimal>(StringComparer.Ordinal);
        foreach (var line in lines.Where(l => l.TenantId is not null))
        {
            directByTenant[line.TenantId!] = directByTenant.GetValueOrDefault(line.TenantId!) + line.Amount;
        }

        var tenants = (await directory.ListAsync(c, null))
            .Where(t => t.CreatedAt < period.End && !(t.Status == TenantStatus.Offboarded && t.UpdatedAt < period.Start)
                        || directByTenant.ContainsKey(t.Id.ToString()))
            .ToList();

        // One pass for the whole fleet: plan changes read once, each meter's month read once; a
        // finalized invoice's total stands, every other tenant's revenue is its draft as computed now.
        var finalized = (await InvoiceStore.FinalizedAsync(c, null, period))
            .ToDictionary(i => i.TenantId, StringComparer.Ordinal);
        var schedules = await TenantPlans.ListAllAsync(c, null);
        var drafts = await InvoiceCalculator.ComputeManyAsync(
            c, null, tenants.Where(t => !finalized.ContainsKey(t.Id.ToString())).ToList(), schedules, period, snapshot);
        var usage = await UsageReader.TotalsAsync(c, meter, null, period.Start, period.End);
        var rows = new List<(BilledTenant Tenant, Plan? Plan, decimal Revenue, decimal Direct, decimal Usage)>();
        foreach (var tenant in tenants)
        {
            var revenue = finalized.TryGetValue(tenant.Id.ToString(), out var invoice) ? invoice.Total : drafts[tenant.Id].Total;
            var schedule = schedules.TryGetValue(tenant.Id, out var s) ? s : [];
            snapshot.Plans.TryGetValue(TenantPlans.PlanAt(tenant, schedule, period.End.AddTicks(-1)), out var plan);
            rows.Add((tenant, plan, revenue, directByTenant.GetValueOrDefault(tenant.Id.ToString()), usage.GetValueOrDefault(tenant.Id)));
        }

        var sharedTotal = lines.Where(l => l.Shared).Sum(l => l.Amount);
        var sharedCents = (long)(sharedTotal * 100);
        var allocation = CostAllocator.Allocate(
            sharedCents, rows.ToDictionary(r => r.Tenant.Id, r => r.Usage), Comparer<Guid>.Create((a, b) => string.CompareOrdinal(a.ToString(), b.ToString())));
        var directTotal = lines.Where(l => !l.Shared).Sum(l => l.Amount);
        var totalCost = directTotal + sharedTotal;
        var items = rows.Select(r =>
        {
            var shared = allocation.GetValueOrDefault(r.Tenant.Id) / 100m;
            var cost = r.Direct + shared;
            var share = totalCost == 0 ? 0 : Math.Round(cost / totalCost, 6, MidpointRounding.AwayFromZero);
            var tier = r.Plan?.Tier ?? r.Tenant.Tier;
            return new TenantCost(
                r.Tenant.Id.ToString(), r.Tenant.Slug, tier, r.Plan?.Id ?? r.Tenant.Tier, r.Revenue, r.Direct, shared, cost,
                r.Revenue - cost, Percent(r.Revenue - cost, r.Revenue), r.Usage, share,
                totalCost > 0 && cost / totalCost > (r.Plan?.HeavyLifterShare ?? 1m));
        }).OrderBy(i => i.Slug, StringComparer.Ordinal).ToList();

        var tiers = items.GroupBy(i => i.Tier, StringComparer.Ordinal)
            .Select(g => new TierCost(g.Key, g.Count(), g.Sum(i => i.Revenue), g.Sum(i => i.Cost), g.Sum(i => i.Margin), Percent(g.Sum(i => i.Margin), g.Sum(i => i.Revenue))))
            .OrderBy(t => t.Tier, StringComparer.Ordinal).ToList();
        var revenueTotal = items.Sum(i => i.Revenue);
        var allocated = items.Sum(i => i.Cost);
        return new CostReport(
            period.ToString(), meter.Key, revenueTotal, totalCost, directTotal, sharedTotal, totalCost - allocated,
            revenueTotal - totalCost, Percent(revenueTotal - totalCost, revenueTotal), items, tiers);
    }

    private static decimal? Percent(decimal margin, decimal revenue) =>
        revenue == 0 ? null : Math.Round(margin / revenue * 100, 2, MidpointRounding.AwayFromZero);
}
