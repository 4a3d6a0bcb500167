using System.Data.Common;
using System.Globalization;
using Tenantry.Billing.Plans;
using Tenantry.Billing.Usage;

namespace Tenantry.Billing.Invoices;

public sealed record InvoiceLine
{
    /// <summary><c>base</c> (whole month on one plan), <c>proration</c> (part of a month) or <c>usage</c>.</summary>
    public required string Kind { get; init; }
    public required string Description { get; init; }
    public required string PlanId { get; init; }
    public string? Meter { get; init; }
    public decimal Quantity { get; init; }
    public decimal Included { get; init; }
    public decimal Billable { get; init; }
    public required decimal Amount { get; init; }
    public required DateTimeOffset From { get; init; }
    public required DateTimeOffset To { get; init; }
}

public sealed record InvoiceDocument(string TenantId, string Period, string Currency, IReadOnlyList<InvoiceLine> Lines, decimal Total);

/// <summary>
/// An invoice from the plans in effect and the stored usage, nothing else: the same events and
/// plans always give the same lines and total. Each plan segment of the month is charged its
/// base price prorated by the seconds it covers, and the usage inside it at its prices, less its
/// included quantities (included quantities are per segment, not prorated).
/// </summary>
public static class InvoiceCalculator
{
    public static InvoiceDocument Compute(
        Guid tenantId, BillingPeriod period, IReadOnlyList<PlanSegment> segments, Func<string, DateTimeOffset, DateTimeOffset, decimal> usage)
    {
        ArgumentNullException.ThrowIfNull(segments);
        ArgumentNullException.ThrowIfNull(usage);
        var lines = new List<InvoiceLine>();
        foreach (var segment in segments)
        {
            var plan = segment.Plan;
            var whole = segment.From == period.Start && segment.To == period.End;
            if (whole)
            {
                lines.Add(new InvoiceLine
                {
                    Kind = "base", Description = $"{plan.Name} plan, {period}", PlanId = plan.Id, Quantity = 1, Billable = 1,
                    Amount = Pricing.RoundMoney(plan.BasePrice), From = segment.From, To = segment.To,
                });
            }
            else
            {
                var fraction = Pricing.Fraction(period, segment.From, segment.To);
                var days = (segment.To - segment.From).TotalDays;
                var monthDays = (period.End - period.Start).TotalDays;
                lines.Add(new InvoiceLine
                {
                    Kind = "proration",
                    Description = string.Create(CultureInfo.InvariantCulture,
                        $"{plan.Name} plan, {segment.From:yyyy-MM-dd HH:mm} to {segment.To:yyyy-MM-dd HH:mm} UTC ({days:0.###} of {monthDays:0} days)"),
                    PlanId = plan.Id, Quantity = fraction, Billable = fraction,
                    Amount = Pricing.RoundMoney(plan.BasePrice * fraction), From = segment.From, To = segment.To,
                });
            }

            foreach (var price in plan.Prices)
            {
                var quantity = usage(price.Meter, segment.From, segment.To);
                var billable = Pricing.Billable(quantity, price.Included);
                lines.Add(new InvoiceLine
                {
                    Kind = "usage",
                    Description = $"{price.Meter} ({price.Model.Replace('_', '-')}), {plan.Name} plan",
                    PlanId = plan.Id, Meter = price.Meter, Quantity = quantity, Included = price.Included, Billable = billable,
                    Amount = Pricing.RoundMoney(Pricing.Charge(price, billable)), From = segment.From, To = segment.To,
                });
            }
        }

        var currency = segments.Count > 0 ? segments[^1].Plan.Currency : "USD";
        return new InvoiceDocument(tenantId.ToString(), period.ToString(), currency, lines, lines.Sum(l => l.Amount));
    }

    /// <summary>Computes the tenant's invoice for <paramref name="period"/> from the store.</summary>
    internal static async Task<InvoiceDocument> ComputeAsync(DbConnection c, DbTransaction? tx, BilledTenant tenant, BillingPeriod period, BillingCatalog.Snapshot catalog)
    {
        var schedule = await TenantPlans.ListAsync(c, tx, tenant.Id);
        var segments = TenantPlans.Segments(tenant, schedule, catalog.Plans, period);
        var events = new Dictionary<string, List<StoredEvent>>(StringComparer.Ordinal);
        foreach (var meterKey in segments.SelectMany(s => s.Plan.Prices).Select(p => p.Meter).Distinct(StringComparer.Ordinal))
        {
            if (catalog.Meters.TryGetValue(meterKey, out var meter))
            {
                events[meterKey] = await UsageReader.EventsAsync(c, tx, tenant.Id, meter.EventType, period.Start, period.End);
            }
        }

        return Compute(tenant.Id, period, segments, (meterKey, from, to) =>
            events.TryGetValue(meterKey, out var list)
                ? Aggregations.Aggregate(catalog.Meters[meterKey], list.Where(e => e.Time >= from && e.Time < to).Select(e => e.Data))
                : 0);
    }

    /// <summary>
    /// The invoices of many tenants for <paramref name="period"/> in one pass: the plan changes are
    /// given (read once for all), and each meter's events of the month are read once for every tenant;
    /// each invoice is then computed exactly as <see cref="ComputeAsync"/> computes it alone.
    /// </summary>
    internal static async Task<Dictionary<Guid, InvoiceDocument>> ComputeManyAsync(
        DbConnection c, DbTransaction? tx, IReadOnlyList<BilledTenant> tenants, IReadOnlyDictionary<Guid, List<PlanAssignment>> schedules,
        BillingPeriod period, BillingCatalog.Snapshot catalog)
    {
        var segments = tenants.ToDictionary(
            t => t.Id, t => TenantPlans.Segments(t, schedules.TryGetValue(t.Id, out var s) ? s : [], catalog.Plans, period));
        var events = new Dictionary<string, Dictionary<Guid, List<StoredEvent>>>(StringComparer.Ordinal);
        foreach (var meterKey in segments.Values.SelectMany(s => s).SelectMany(s => s.Plan.Prices).Select(p => p.Meter).Distinct(StringComparer.Ordinal))
        {
            if (catalog.Meters.TryGetValue(meterKey, out var meter))
            {
                events[meterKey] = await UsageReader.EventsByTenantAsync(c, tx, meter, period.Start, period.End);
            }
        }

        return tenants.ToDictionary(t => t.Id, t => Compute(t.Id, period, segments[t.Id], (meterKey, from, to) =>
            events.TryGetValue(meterKey, out var byTenant)
                ? Aggregations.Aggregate(
                    catalog.Meters[meterKey],
                    byTenant.TryGetValue(t.Id, out var list) ? list.Where(e => e.Time >= from && e.Time < to).Select(e => e.Data) : [])
                : 0));
    }
}
