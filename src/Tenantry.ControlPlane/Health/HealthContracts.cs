using Tenantry.Health;

namespace Tenantry.ControlPlane.Health;

/// <summary>A tenant's traffic in one step of a series: counts, and latency percentiles (null without requests).</summary>
public sealed record HealthPoint(DateTimeOffset At, long Requests, long Status4xx, long Status5xx, long Throttled, double? P50Ms, double? P95Ms, double? P99Ms);

/// <summary><c>GET /v1/tenants/{id}/health</c>: one point per step from <c>From</c> to <c>To</c>, empty steps included, and the tenant's job queue now.</summary>
public sealed record HealthSeries(Guid TenantId, DateTimeOffset From, DateTimeOffset To, string Step, IReadOnlyList<HealthPoint> Items)
{
    /// <summary>The tenant's job queue as it is now; null when the tenant has none (not onboarded, or offboarded).</summary>
    public JobQueueHealth? Jobs { get; init; }
}

/// <summary>
/// A tenant's job queue now: jobs queued or leased (<c>Depth</c>), due and waiting (<c>Ready</c>),
/// leased, in the dead-letter queue, the age of the oldest due job, and runs that succeeded or failed so far.
/// </summary>
public sealed record JobQueueHealth(long Depth, long Ready, long Leased, long Dead, double? OldestAgeSeconds, long Succeeded, long Failed);

/// <summary>
/// Figures over a span: <c>ErrorRate</c> is 5xx over requests (0 without requests); percentiles are
/// within <see cref="LatencySketch.RelativeAccuracy"/> of the true latency, null without requests.
/// </summary>
public sealed record HealthFigures(long Requests, long Status4xx, long Status5xx, long Throttled, double ErrorRate, double? P50Ms, double? P95Ms, double? P99Ms)
{
    public static HealthFigures Empty { get; } = new(0, 0, 0, 0, 0, null, null, null);
}

/// <summary>
/// <see cref="ITenantHealth.SummarizeAsync"/>'s answer: each tenant's figures and all of them together
/// (the percentiles of the merged latencies, not an average of percentiles), over the whole minutes
/// from <c>From</c> to <c>To</c>.
/// </summary>
public sealed record HealthSummary(DateTimeOffset From, DateTimeOffset To, HealthFigures Combined, IReadOnlyDictionary<Guid, HealthFigures> Tenants);

/// <summary>One row of the fleet's "worst tenants now".</summary>
public sealed record WorstTenant(Guid TenantId, string Slug, string Tier, long Requests, long Status4xx, long Status5xx, long Throttled, double ErrorRate, double? P99Ms);

/// <summary><c>GET /v1/health/worst</c>: tenants ranked by <c>By</c> over the last <c>Window</c>.</summary>
public sealed record WorstTenants(string Window, string By, DateTimeOffset From, DateTimeOffset To, IReadOnlyList<WorstTenant> Items);

/// <summary>A sample of a batch that was not stored, and why (<c>late</c>, <c>future</c>, <c>unknown-tenant</c>).</summary>
public sealed record SkippedSample(int Index, string Reason);

/// <summary><c>POST /v1/health/samples</c>: how many samples were merged; a batch id seen before is a duplicate and changes nothing.</summary>
public sealed record HealthWriteResult(int Accepted, bool Duplicate, IReadOnlyList<SkippedSample> Skipped);

/// <summary>What to rank the fleet's worst tenants by.</summary>
public enum WorstBy
{
    /// <summary>5xx over requests.</summary>
    ErrorRate,

    /// <summary>The 99th percentile latency.</summary>
    P99,

    /// <summary>The number of 429s.</summary>
    Throttled,
}

/// <summary>
/// Per-tenant health as other features read it (a rollout's gates): figures of a set of tenants over
/// a span. The figures are the stored ones: a gateway writes what it counted every
/// <c>Tenantry:Health:FlushInterval</c> (2 s by default), so a caller that judges the last seconds
/// waits one flush interval after the span ends before it asks.
/// </summary>
public interface ITenantHealth
{
    /// <summary>
    /// The figures of <paramref name="tenantIds"/>, each and combined, over the minutes that overlap
    /// [<paramref name="from"/>, <paramref name="to"/>): rows are per minute, so the span is widened to
    /// whole minutes (the answer says which). A tenant without traffic gets zeros.
    /// </summary>
    Task<HealthSummary> SummarizeAsync(IReadOnlyCollection<Guid> tenantIds, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken);
}

/// <summary>Takes the gateways' batches into the store (the host's gateway in process, replicas through the API).</summary>
public interface ITenantHealthWriter
{
    Task<HealthWriteResult> WriteAsync(TenantHealthBatch batch, CancellationToken cancellationToken);
}
