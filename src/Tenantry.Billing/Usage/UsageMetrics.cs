using System.Diagnostics.Metrics;

namespace Tenantry.Billing.Usage;

/// <summary>
/// The usage instruments of the platform's meter (<c>Tenantry</c>). Usage is recorded once per
/// group commit, not per request, so the ingest path pays a dictionary of tenants per group. With
/// <paramref name="tenantTags"/> every point carries <c>tenant.id</c>.
/// </summary>
public sealed class UsageMetrics
{
    /// <summary>The platform's meter, shared with the control plane's instruments.</summary>
    public const string MeterName = "Tenantry";

    /// <summary>The tag that names the tenant on a metric point or a span.</summary>
    public const string TenantTag = "tenant.id";

    private readonly Counter<long> _usageEvents;
    private readonly Histogram<double> _commitDuration;
    private readonly Histogram<int> _commitSize;

    public UsageMetrics(IMeterFactory meters, bool tenantTags)
    {
        ArgumentNullException.ThrowIfNull(meters);
        TenantTags = tenantTags;
        var meter = meters.Create(MeterName);
        _usageEvents = meter.CreateCounter<long>("tenantry.usage.events", "{event}",
            "Usage events received, by outcome: accepted (stored), duplicate (a replay), closed (billing period closed), rejected (invalid), failed (not stored; the sender retries), dropped (built-in usage the store did not take for so long that its buffer overflowed).");
        _commitDuration = meter.CreateHistogram<double>("tenantry.usage.commit.duration", "s",
            "Time of one group commit of usage events (the acknowledgement waits for it).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        _commitSize = meter.CreateHistogram<int>("tenantry.usage.commit.size", "{event}", "Events in one group commit.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 10, 100, 500, 1000, 2500, 5000, 10000] });
    }

    /// <summary>Whether points carry the tenant (<see cref="TenantTag"/>).</summary>
    public bool TenantTags { get; }

    /// <summary>One group commit: its time, its size, and each event's outcome by tenant.</summary>
    public void UsageCommitted(IReadOnlyList<UsageEvent> events, IReadOnlyList<IngestOutcome> outcomes, TimeSpan elapsed)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(outcomes);
        _commitDuration.Record(elapsed.TotalSeconds);
        _commitSize.Record(events.Count);
        if (!_usageEvents.Enabled)
        {
            return;
        }

        var counts = new Dictionary<(Guid Tenant, IngestOutcome Outcome), long>();
        for (var i = 0; i < events.Count; i++)
        {
            var key = (TenantTags ? events[i].TenantId : Guid.Empty, outcomes[i]);
            counts[key] = counts.GetValueOrDefault(key) + 1;
        }

        foreach (var ((tenant, outcome), count) in counts)
        {
            var name = outcome switch
            {
                IngestOutcome.Accepted => "accepted",
                IngestOutcome.Duplicate => "duplicate",
                _ => "closed",
            };
            if (TenantTags)
            {
                _usageEvents.Add(count, new KeyValuePair<string, object?>("outcome", name), new KeyValuePair<string, object?>(TenantTag, tenant.ToString()));
            }
            else
            {
                _usageEvents.Add(count, new KeyValuePair<string, object?>("outcome", name));
            }
        }
    }

    /// <summary>Events refused before they reached the store (invalid, unknown tenant), lost with a failed commit, or dropped from a full buffer.</summary>
    public void UsageNotStored(int count, string outcome)
    {
        if (count > 0)
        {
            _usageEvents.Add(count, new KeyValuePair<string, object?>("outcome", outcome));
        }
    }
}
