using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Billing.Usage;

namespace Tenantry.ControlPlane.Telemetry;

/// <summary>
/// The platform's own instruments (meter <c>Tenantry</c>) and its activity source (a trace per tenant
/// operation, a span per step). Usage is recorded once per group commit, not per request, so the
/// ingest path pays a dictionary of tenants per group. With <see cref="TelemetryOptions.TenantTags"/>
/// every point carries <c>tenant.id</c>.
/// </summary>
public sealed class TenantryMetrics
{
    public const string Name = "Tenantry";
    public const string TenantTag = "tenant.id";

    /// <summary>Operations and their steps, as traces (exported when an OTLP endpoint is set).</summary>
    public static readonly ActivitySource Source = new(Name);

    private readonly Counter<long> _usageEvents;
    private readonly Histogram<double> _commitDuration;
    private readonly Histogram<int> _commitSize;
    private readonly Counter<long> _operations;
    private readonly Histogram<double> _operationDuration;

    public TenantryMetrics(IMeterFactory meters, IOptions<TelemetryOptions> options)
    {
        ArgumentNullException.ThrowIfNull(meters);
        ArgumentNullException.ThrowIfNull(options);
        TenantTags = options.Value.TenantTags;
        var meter = meters.Create(Name);
        _usageEvents = meter.CreateCounter<long>("tenantry.usage.events", "{event}",
            "Usage events received, by outcome: accepted (stored), duplicate (a replay), closed (billing period closed), rejected (invalid), failed (not stored; the sender retries).");
        _commitDuration = meter.CreateHistogram<double>("tenantry.usage.commit.duration", "s",
            "Time of one group commit of usage events (the acknowledgement waits for it).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        _commitSize = meter.CreateHistogram<int>("tenantry.usage.commit.size", "{event}", "Events in one group commit.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 10, 100, 500, 1000, 2500, 5000, 10000] });
        _operations = meter.CreateCounter<long>("tenantry.operations", "{operation}", "Tenant operations finished, by kind and status.");
        _operationDuration = meter.CreateHistogram<double>("tenantry.operation.duration", "s",
            "From an operation's creation to its end (onboarding, offboarding, …), by kind and status.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300] });
    }

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

    /// <summary>Events refused before they reached the store (invalid, unknown tenant), or lost with a failed commit.</summary>
    public void UsageNotStored(int count, string outcome)
    {
        if (count > 0)
        {
            _usageEvents.Add(count, new KeyValuePair<string, object?>("outcome", outcome));
        }
    }

    public void OperationFinished(string kind, bool succeeded, TimeSpan elapsed)
    {
        var tags = new TagList { { "operation.kind", kind }, { "operation.status", succeeded ? "succeeded" : "failed" } };
        _operations.Add(1, tags);
        _operationDuration.Record(Math.Max(0, elapsed.TotalSeconds), tags);
    }
}
