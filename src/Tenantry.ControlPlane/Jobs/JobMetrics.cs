using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Telemetry;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>
/// The queues' instruments on the platform meter: jobs enqueued, started (with their wait from due
/// to start), finished (by outcome, with their run time), and per-queue depth and oldest waiting
/// job's age from the last figures the maintenance loop read. With tenant tags each carries
/// <c>tenant.id</c>; without, the gauges are summed (depth) or the largest (age) over tenants.
/// </summary>
public sealed class JobMetrics
{
    private readonly bool _tenantTags;
    private readonly Counter<long> _enqueued;
    private readonly Counter<long> _started;
    private readonly Counter<long> _finished;
    private readonly Histogram<double> _wait;
    private readonly Histogram<double> _run;
    private volatile IReadOnlyList<JobQueueFigures> _figures = [];

    public JobMetrics(IMeterFactory meters, IOptions<TelemetryOptions> options)
    {
        ArgumentNullException.ThrowIfNull(meters);
        ArgumentNullException.ThrowIfNull(options);
        _tenantTags = options.Value.TenantTags;
        var meter = meters.Create(TenantryMetrics.Name);
        _enqueued = meter.CreateCounter<long>("tenantry.jobs.enqueued", "{job}", "Jobs enqueued, by type.");
        _started = meter.CreateCounter<long>("tenantry.jobs.started", "{job}", "Job runs started (leased), by type.");
        _finished = meter.CreateCounter<long>("tenantry.jobs.finished", "{job}", "Job runs finished by an ack or nack, by type and resulting status (succeeded, queued for a retry, dead).");
        _wait = meter.CreateHistogram<double>("tenantry.jobs.wait", "s", "From a job's due time to its lease.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        _run = meter.CreateHistogram<double>("tenantry.jobs.run", "s", "From a job's lease to its ack or nack.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        meter.CreateObservableGauge("tenantry.jobs.depth", () => Gauge(f => f.Depth, sum: true), "{job}", "Jobs queued or leased, per tenant queue.");
        meter.CreateObservableGauge("tenantry.jobs.oldest_age", () => Gauge(f => f.OldestAgeSeconds ?? 0, sum: false), "s", "Age of the oldest due job waiting, per tenant queue.");
        meter.CreateObservableGauge("tenantry.jobs.dead", () => Gauge(f => f.Dead, sum: true), "{job}", "Jobs in the dead-letter queue, per tenant.");
    }

    internal void Update(IReadOnlyList<JobQueueFigures> figures) => _figures = figures;

    internal void Enqueued(Guid tenantId, string type) => _enqueued.Add(1, Tags(tenantId, type));

    internal void Started(Guid tenantId, string type, double waitSeconds)
    {
        var tags = Tags(tenantId, type);
        _started.Add(1, tags);
        _wait.Record(Math.Max(0, waitSeconds), tags);
    }

    internal void Finished(Guid tenantId, string type, string status, double runSeconds)
    {
        var tags = Tags(tenantId, type);
        tags.Add("job.status", status);
        _finished.Add(1, tags);
        _run.Record(Math.Max(0, runSeconds), tags);
    }

    private TagList Tags(Guid tenantId, string type)
    {
        var tags = new TagList { { "job.type", type } };
        if (_tenantTags)
        {
            tags.Add(TenantryMetrics.TenantTag, tenantId.ToString());
        }

        return tags;
    }

    private IEnumerable<Measurement<double>> Gauge(Func<JobQueueFigures, double> value, bool sum)
    {
        var figures = _figures;
        if (_tenantTags)
        {
            return figures.Select(f => new Measurement<double>(value(f), new KeyValuePair<string, object?>(TenantryMetrics.TenantTag, f.TenantId.ToString())));
        }

        var values = figures.Select(value).ToList();
        return [new Measurement<double>(values.Count == 0 ? 0 : sum ? values.Sum() : values.Max())];
    }
}
