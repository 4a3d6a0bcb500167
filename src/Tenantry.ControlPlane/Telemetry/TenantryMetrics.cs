using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Tenantry.Billing.Usage;

namespace Tenantry.ControlPlane.Telemetry;

/// <summary>
/// The platform's own instruments (meter <c>Tenantry</c>) and its activity source (a trace per tenant
/// operation, a span per step). Billing records usage on the same meter (<see cref="UsageMetrics"/>).
/// With <see cref="TelemetryOptions.TenantTags"/> every point carries <c>tenant.id</c>.
/// </summary>
public sealed class TenantryMetrics
{
    public const string Name = UsageMetrics.MeterName;
    public const string TenantTag = UsageMetrics.TenantTag;

    /// <summary>Operations and their steps, as traces (exported when an OTLP endpoint is set).</summary>
    public static readonly ActivitySource Source = new(Name);

    private readonly Counter<long> _operations;
    private readonly Histogram<double> _operationDuration;

    public TenantryMetrics(IMeterFactory meters, IOptions<TelemetryOptions> options)
    {
        ArgumentNullException.ThrowIfNull(meters);
        ArgumentNullException.ThrowIfNull(options);
        TenantTags = options.Value.TenantTags;
        var meter = meters.Create(Name);
        _operations = meter.CreateCounter<long>("tenantry.operations", "{operation}", "Tenant operations finished, by kind and status.");
        _operationDuration = meter.CreateHistogram<double>("tenantry.operation.duration", "s",
            "From an operation's creation to its end (onboarding, offboarding, …), by kind and status.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300] });
    }

    public bool TenantTags { get; }

    public void OperationFinished(string kind, bool succeeded, TimeSpan elapsed)
    {
        var tags = new TagList { { "operation.kind", kind }, { "operation.status", succeeded ? "succeeded" : "failed" } };
        _operations.Add(1, tags);
        _operationDuration.Record(Math.Max(0, elapsed.TotalSeconds), tags);
    }
}
