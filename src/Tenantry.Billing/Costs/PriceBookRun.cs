using System.Data.Common;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Tenantry.Billing.Usage;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Costs;

/// <summary>One priced item of one tenant on one day.</summary>
public sealed record PricedLine(
    string CostLineId, string TenantId, string Slug, string Item, string Resource, decimal Quantity, string Unit, decimal UnitPrice, decimal Amount);

/// <summary>A day costed by the price book: its lines and their total, in the price book's currency.</summary>
public sealed record PriceBookRunResult(string Day, string Currency, bool Preview, int Lines, decimal Total, IReadOnlyList<PricedLine> Items);

/// <summary>
/// Turns one UTC day into cost lines (source <c>price-book</c>): each tenant's metered usage of the day
/// and the dedicated resources it held, priced by <see cref="PriceBook"/>. A line's id is made of the day,
/// the tenant and the item, so running a day again replaces its lines instead of adding to them (a
/// late usage event changes the amount, never the count); an item that comes to zero has no line.
/// Amounts are computed in decimal and rounded to the cent, half away from zero, once per line.
/// </summary>
public sealed class PriceBookRun(IControlPlaneDatabase db, ITenantDirectory directory, IDedicatedResources resources, BillingCatalog catalog, IOptionsMonitor<CostOptions> options, TimeProvider time)
{
    public const string Source = "price-book";

    private const decimal BytesPerGb = 1_000_000_000m;

    public static string LinePrefix(DateOnly day) => $"cost_pb_{day:yyyyMMdd}_";

    /// <summary>Prices <paramref name="day"/>; unless <paramref name="preview"/>, writes its lines and records the run, in one transaction.</summary>
    public async Task<PriceBookRunResult> RunAsync(DateOnly day, bool preview, string actor, CancellationToken cancellationToken = default)
    {
        var settings = options.CurrentValue;
        var snapshot = await catalog.GetAsync(cancellationToken);
        var now = time.GetUtcNow();
        var lines = await db.ReadAsync(c => PriceAsync(c, day, settings.PriceBook, snapshot), cancellationToken);
        var result = new PriceBookRunResult(day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), settings.Currency, preview, lines.Count, lines.Sum(l => l.Amount), lines);
        if (preview)
        {
            return result;
        }

        var period = new BillingPeriod(day.Year, day.Month).ToString();
        await db.WriteAsync(
            async (c, tx) =>
            {
                var keep = lines.Select(l => l.CostLineId).ToHashSet(StringComparer.Ordinal);
                foreach (var stale in (await CostStore.DayLineIdsAsync(c, tx, LinePrefix(day))).Where(id => !keep.Contains(id)))
                {
                    await CostStore.DeleteAsync(c, tx, stale);
                }

                foreach (var line in lines)
                {
                    await CostStore.UpsertAsync(c, tx, new CostLine(
                        line.CostLineId, line.Resource, line.Amount, period, line.TenantId, Shared: false,
                        new Dictionary<string, string>
                        {
                            ["tenant"] = line.TenantId,
                            ["source"] = Source,
                            ["day"] = result.Day,
                            ["item"] = line.Item,
                            ["quantity"] = line.Quantity.ToString(CultureInfo.InvariantCulture),
                            ["unit"] = line.Unit,
                            ["unitPrice"] = line.UnitPrice.ToString(CultureInfo.InvariantCulture),
                            ["currency"] = settings.Currency,
                        },
                        now));
                }

                await CostStore.RecordRunAsync(c, tx, result.Day, lines.Count, result.Total, now);
                await AuditLog.AppendAsync(c, tx, AuditLog.By(actor, null, "cost.price-book-run", "succeeded", new JsonObject
                {
                    ["day"] = result.Day,
                    ["lines"] = lines.Count,
                    ["total"] = result.Total.ToString(CultureInfo.InvariantCulture),
                    ["currency"] = settings.Currency,
                }, now));
            },
            cancellationToken);
        return result;
    }

    private async Task<List<PricedLine>> PriceAsync(DbConnection c, DateOnly day, PriceBook book, BillingCatalog.Snapshot snapshot)
    {
        var lines = new List<PricedLine>();
        if (book.IsEmpty)
        {
            return lines;
        }

        var start = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        var end = start.AddDays(1);
        var daysInMonth = DateTime.DaysInMonth(day.Year, day.Month);
        var tenants = (await directory.ListAsync(c, null))
            .Where(t => t.CreatedAt < end && !(t.Status == TenantStatus.Offboarded && t.UpdatedAt < start))
            .OrderBy(t => t.Slug, StringComparer.Ordinal)
            .ToList();
        if (tenants.Count == 0)
        {
            return lines;
        }

        var holdings = (await resources.ListAsync(c, null)).ToDictionary(h => h.TenantId);
        async Task<Dictionary<Guid, decimal>> Usage(string meter, decimal price) =>
            price == 0 || !snapshot.Meters.TryGetValue(meter, out var m) ? [] : await UsageReader.TotalsAsync(c, m, null, start, end);

        var calls = await Usage("api_calls", book.PerMillionRequests);
        var stored = await Usage("storage_bytes", book.GbMonthStored);
        var jobs = await Usage("job_seconds", book.PerJobHour);
        foreach (var t in tenants)
        {
            void Add(string item, string resource, decimal quantity, string unit, decimal unitPrice, decimal amount)
            {
                var cents = Math.Round(amount, 2, MidpointRounding.AwayFromZero);
                if (unitPrice > 0 && cents > 0)
                {
                    lines.Add(new PricedLine(
                        $"{LinePrefix(day)}{t.Id:N}_{item}", t.Id.ToString(), t.Slug, item, resource, quantity, unit, unitPrice, cents));
                }
            }

            var q = calls.GetValueOrDefault(t.Id);
            Add(nameof(PriceBook.PerMillionRequests), "requests", q, "requests", book.PerMillionRequests, q / 1_000_000m * book.PerMillionRequests);
            q = stored.GetValueOrDefault(t.Id) / BytesPerGb;
            Add(nameof(PriceBook.GbMonthStored), "storage", q, "GB", book.GbMonthStored, q * book.GbMonthStored / daysInMonth);
            q = jobs.GetValueOrDefault(t.Id) / 3600m;
            Add(nameof(PriceBook.PerJobHour), "jobs", q, "hours", book.PerJobHour, q * book.PerJobHour);

            // A resource is held from the tenant's creation (or the day's start) to its offboarding (or the day's end).
            var from = t.CreatedAt > start ? t.CreatedAt : start;
            var until = t.Status == TenantStatus.Offboarded && t.UpdatedAt < end ? t.UpdatedAt : end;
            var held = Math.Max(0m, (decimal)(until - from).Ticks / TimeSpan.TicksPerDay);
            if (!holdings.TryGetValue(t.Id, out var h) || held == 0)
            {
                continue;
            }

            if (h.Database)
            {
                Add(nameof(PriceBook.DatabaseMonth), "silo-database", held, "days", book.DatabaseMonth, held * book.DatabaseMonth / daysInMonth);
            }

            if (h.Schema)
            {
                Add(nameof(PriceBook.SchemaMonth), "bridge-schema", held, "days", book.SchemaMonth, held * book.SchemaMonth / daysInMonth);
            }

            if (h.Instance)
            {
                Add(nameof(PriceBook.DedicatedInstanceHour), "dedicated-instance", held * 24, "hours", book.DedicatedInstanceHour, held * 24 * book.DedicatedInstanceHour);
            }
        }

        return lines;
    }
}
