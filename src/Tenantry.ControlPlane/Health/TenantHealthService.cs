using System.Data.Common;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.Health;

namespace Tenantry.ControlPlane.Health;

/// <summary>
/// Per-tenant health over the store: takes the gateways' batches (merged into minute rows, a batch id
/// counted once) and answers series, summaries and the fleet's worst tenants. Figures within the
/// minute retention come from minute rows; older ones from the hourly roll-ups, which are exact
/// merges of the same minutes.
/// </summary>
internal sealed class TenantHealthService(IControlPlaneDatabase db, ITenantRegistry tenants, IOptions<HealthOptions> options, TimeProvider time)
    : ITenantHealth, ITenantHealthWriter
{
    /// <summary>How far ahead of the store's clock a sample's minute may be (a gateway's clock skew).</summary>
    public const long MaxFutureMinutes = 2;

    public async Task<HealthWriteResult> WriteAsync(TenantHealthBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var now = UnixMinute(time.GetUtcNow());
        var oldest = now - (long)options.Value.MaxLateness.TotalMinutes;
        return await db.WriteAsync(async (c, tx) =>
        {
            if (!await TenantHealthStore.TakeBatchAsync(c, tx, batch.Id, now))
            {
                return new HealthWriteResult(0, true, []);
            }

            var skipped = new List<SkippedSample>();
            var known = new Dictionary<Guid, bool>();
            var hours = new SortedSet<long>();
            var accepted = 0;
            for (var i = 0; i < batch.Samples.Count; i++)
            {
                var sample = batch.Samples[i];
                var minute = sample.UnixMinute;
                string? reason = null;
                if (minute < oldest)
                {
                    reason = "late";
                }
                else if (minute > now + MaxFutureMinutes)
                {
                    reason = "future";
                }
                else
                {
                    if (!known.TryGetValue(sample.TenantId, out var exists))
                    {
                        known[sample.TenantId] = exists = await tenants.GetAsync(c, tx, sample.TenantId) is not null;
                    }

                    reason = exists ? null : "unknown-tenant";
                }

                if (reason is not null)
                {
                    skipped.Add(new SkippedSample(i, reason));
                    continue;
                }

                await TenantHealthStore.MergeMinuteAsync(c, tx, sample);
                hours.Add(Math.DivRem(minute, 60).Quotient);
                accepted++;
            }

            foreach (var hour in hours)
            {
                await TenantHealthStore.TouchHourAsync(c, tx, hour);
            }

            return new HealthWriteResult(accepted, false, skipped);
        }, cancellationToken);
    }

    public async Task<HealthSummary> SummarizeAsync(IReadOnlyCollection<Guid> tenantIds, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenantIds);
        if (to <= from)
        {
            throw new ArgumentException("The span must end after it starts.", nameof(to));
        }

        var first = UnixMinute(from);
        var end = CeilingMinute(to);
        var combined = new HealthTally();
        var each = new Dictionary<Guid, HealthFigures>();
        foreach (var tenantId in tenantIds.Distinct())
        {
            var tally = (await ReadAsync(tenantId, first, end, end - first, cancellationToken))[0];
            combined.Add(tally);
            each[tenantId] = tally.ToFigures();
        }

        return new HealthSummary(FromUnixMinute(first), FromUnixMinute(end), combined.ToFigures(), each);
    }

    /// <summary>One point per <paramref name="stepMinutes"/> from the step that holds <paramref name="from"/> to the one that holds the last moment before <paramref name="to"/>.</summary>
    public async Task<HealthSeries> SeriesAsync(Guid tenantId, DateTimeOffset from, DateTimeOffset to, int stepMinutes, string step, CancellationToken cancellationToken)
    {
        var (first, end) = Steps(from, to, stepMinutes);
        var tallies = await ReadAsync(tenantId, first, end, stepMinutes, cancellationToken);
        var points = tallies.Select((t, i) => t.ToPoint(FromUnixMinute(first + (i * (long)stepMinutes)))).ToList();
        return new HealthSeries(tenantId, FromUnixMinute(first), FromUnixMinute(end), step, points);
    }

    /// <summary>The first and the end (exclusive) of the steps that cover [<paramref name="from"/>, <paramref name="to"/>), in Unix minutes.</summary>
    public static (long First, long End) Steps(DateTimeOffset from, DateTimeOffset to, int stepMinutes)
    {
        var first = UnixMinute(from) / stepMinutes * stepMinutes;
        var last = CeilingMinute(to);
        var end = (last + stepMinutes - 1) / stepMinutes * stepMinutes;
        return (first, Math.Max(end, first + stepMinutes));
    }

    /// <summary>The start (Unix minutes) of the oldest hour not rolled up: the current hour, or an earlier one whose minutes changed since.</summary>
    private async Task<long> RolledUpBeforeAsync(DbConnection c)
    {
        var current = UnixMinute(time.GetUtcNow()) / 60 * 60;
        return await TenantHealthStore.FirstPendingHourAsync(c) is { } pending ? Math.Min(current, pending * 60) : current;
    }

    /// <summary>The first minute read from minute rows; before it, figures come from hourly rows.</summary>
    public long MinuteRowsFrom()
    {
        var oldest = UnixMinute(time.GetUtcNow()) - (long)options.Value.MinuteRetention.TotalMinutes;
        return (oldest + 59) / 60 * 60;
    }

    public async Task<WorstTenants> WorstAsync(int windowMinutes, string window, WorstBy by, int limit, long minRequests, CancellationToken cancellationToken)
    {
        var now = UnixMinute(time.GetUtcNow());
        var (from, to) = (now - windowMinutes + 1, now + 1);
        var totals = (await db.ReadAsync(c => TenantHealthStore.TotalsAsync(c, from, to), cancellationToken))
            .Where(t => t.Requests >= minRequests)
            .ToList();
        Dictionary<Guid, double?> p99 = [];
        IEnumerable<(Guid TenantId, long Requests, long Status4xx, long Status5xx, long Throttled)> ranked;
        if (by == WorstBy.P99)
        {
            var sketches = new Dictionary<Guid, LatencySketch>();
            var rows = await db.ReadAsync(
                async c =>
                {
                    // The whole hours of the window that are rolled up are read from their hour rows (one per
                    // tenant instead of 60); the minutes at either end, and hours not rolled up yet, from minute rows.
                    var hoursFrom = (from + 59) / 60 * 60;
                    var hoursTo = Math.Min(to / 60 * 60, await RolledUpBeforeAsync(c));
                    if (hoursTo <= hoursFrom)
                    {
                        return await TenantHealthStore.MinutesAsync(c, from, to);
                    }

                    var all = await TenantHealthStore.MinutesAsync(c, from, hoursFrom);
                    all.AddRange(await TenantHealthStore.HoursAsync(c, hoursFrom / 60, hoursTo / 60));
                    all.AddRange(await TenantHealthStore.MinutesAsync(c, hoursTo, to));
                    return all;
                },
                cancellationToken);
            foreach (var row in rows)
            {
                if (!sketches.TryGetValue(row.TenantId, out var sketch))
                {
                    sketches[row.TenantId] = sketch = new LatencySketch();
                }

                sketch.Merge(row.Latency);
            }

            p99 = sketches.ToDictionary(s => s.Key, s => Round(s.Value.Quantile(0.99)));
            ranked = totals.OrderByDescending(t => p99.GetValueOrDefault(t.TenantId) ?? -1).ThenByDescending(t => t.Requests);
        }
        else
        {
            ranked = by == WorstBy.ErrorRate
                ? totals.OrderByDescending(t => Rate(t.Status5xx, t.Requests)).ThenByDescending(t => t.Status5xx).ThenByDescending(t => t.Requests)
                : totals.OrderByDescending(t => t.Throttled).ThenByDescending(t => t.Requests);
        }

        var top = ranked.Take(limit).ToList();
        var items = new List<WorstTenant>(top.Count);
        await db.ReadAsync(async c =>
        {
            foreach (var t in top)
            {
                if (by != WorstBy.P99)
                {
                    var latency = new LatencySketch();
                    foreach (var row in await TenantHealthStore.TenantMinutesAsync(c, t.TenantId, from, to))
                    {
                        latency.Merge(row.Latency);
                    }

                    p99[t.TenantId] = Round(latency.Quantile(0.99));
                }

                var tenant = await tenants.GetAsync(c, null, t.TenantId);
                items.Add(new WorstTenant(t.TenantId, tenant?.Slug ?? "", tenant?.Tier ?? "", t.Requests, t.Status4xx, t.Status5xx, t.Throttled,
                    Rate(t.Status5xx, t.Requests), p99.GetValueOrDefault(t.TenantId)));
            }

            return true;
        }, cancellationToken);
        return new WorstTenants(window, ByName(by), FromUnixMinute(from), FromUnixMinute(to), items);
    }

    public static string ByName(WorstBy by) => by switch
    {
        WorstBy.ErrorRate => "errorRate",
        WorstBy.P99 => "p99",
        _ => "throttled",
    };

    public static long UnixMinute(DateTimeOffset at)
    {
        var seconds = at.ToUnixTimeSeconds();
        return seconds >= 0 ? seconds / 60 : ((seconds + 1) / 60) - 1;
    }

    public static DateTimeOffset FromUnixMinute(long minute) => DateTimeOffset.FromUnixTimeSeconds(minute * 60);

    private static long CeilingMinute(DateTimeOffset at)
    {
        var minute = UnixMinute(at);
        return FromUnixMinute(minute) == at ? minute : minute + 1;
    }

    private static double Rate(long part, long whole) => whole == 0 ? 0 : Math.Round((double)part / whole, 6);

    private static double? Round(double? value) => value is { } v ? Math.Round(v, 3) : null;

    /// <summary>The tenant's figures per step of <paramref name="stepMinutes"/> from <paramref name="first"/> to <paramref name="end"/> (Unix minutes).</summary>
    private async Task<HealthTally[]> ReadAsync(Guid tenantId, long first, long end, long stepMinutes, CancellationToken cancellationToken)
    {
        var tallies = new HealthTally[(int)((end - first + stepMinutes - 1) / stepMinutes)];
        for (var i = 0; i < tallies.Length; i++)
        {
            tallies[i] = new HealthTally();
        }

        await db.ReadAsync(async c =>
        {
            var split = MinuteRowsFrom();
            if (stepMinutes % 60 == 0)
            {
                // Whole-hour steps: the hours already rolled up hold the same figures as their 60 minute rows.
                split = Math.Max(split, Math.Min(end, await RolledUpBeforeAsync(c)));
            }

            if (first < split)
            {
                // Older than the minute retention: whole hours, from their roll-ups.
                foreach (var row in await TenantHealthStore.TenantHoursAsync(c, tenantId, first / 60, (Math.Min(split, end) + 59) / 60))
                {
                    tallies[(int)(Math.Max(row.Slot - first, 0) / stepMinutes)].Add(row);
                }
            }

            foreach (var row in await TenantHealthStore.TenantMinutesAsync(c, tenantId, Math.Max(first, split), end))
            {
                tallies[(int)((row.Slot - first) / stepMinutes)].Add(row);
            }

            return true;
        }, cancellationToken);
        return tallies;
    }

    /// <summary>Counts and a sketch added up over rows.</summary>
    private sealed class HealthTally
    {
        private readonly LatencySketch _latency = new();
        private long _requests;
        private long _status4xx;
        private long _status5xx;
        private long _throttled;

        public void Add(HealthRow row)
        {
            _requests += row.Requests;
            _status4xx += row.Status4xx;
            _status5xx += row.Status5xx;
            _throttled += row.Throttled;
            _latency.Merge(row.Latency);
        }

        public void Add(HealthTally other)
        {
            _requests += other._requests;
            _status4xx += other._status4xx;
            _status5xx += other._status5xx;
            _throttled += other._throttled;
            _latency.Merge(other._latency);
        }

        public HealthFigures ToFigures() => new(
            _requests, _status4xx, _status5xx, _throttled, Rate(_status5xx, _requests),
            Round(_latency.Quantile(0.5)), Round(_latency.Quantile(0.95)), Round(_latency.Quantile(0.99)));

        public HealthPoint ToPoint(DateTimeOffset at) => new(
            at, _requests, _status4xx, _status5xx, _throttled, Round(_latency.Quantile(0.5)), Round(_latency.Quantile(0.95)), Round(_latency.Quantile(0.99)));
    }
}
