using System.ComponentModel.DataAnnotations;

namespace Tenantry.Billing;

/// <summary>Settings under <c>Tenantry:Billing</c>.</summary>
public sealed class BillingOptions
{
    public const string Section = "Tenantry:Billing";

    /// <summary>How long after a month ends its usage events are still accepted; then the period is closed.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "31.00:00:00")]
    public TimeSpan LateEventGrace { get; set; } = TimeSpan.FromDays(3);

    /// <summary>How far in the future an event's time may be (clock skew of the sender).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan MaxFutureSkew { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Events in one <c>POST /v1/usage/events</c>.</summary>
    [Range(1, 10_000)]
    public int MaxBatch { get; set; } = 1000;

    /// <summary>Events committed in one transaction at most (concurrent batches are committed together).</summary>
    [Range(1, 100_000)]
    public int MaxGroupCommit { get; set; } = 5000;

    /// <summary>
    /// Group commits in flight at once on PostgreSQL, each on its own connection, so the server
    /// inserts on several cores (SQLite commits one at a time whatever this says).
    /// </summary>
    [Range(1, 16)]
    public int ConcurrentCommits { get; set; } = 2;

    /// <summary>How often storage_bytes and compute_seconds are sampled; zero turns sampling off.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often buffered api_calls are flushed to the usage store.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan ApiCallFlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often soft quotas of tenants with new usage are evaluated.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan QuotaCheckInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether the control plane meters its own API calls as <c>api_calls</c>.</summary>
    public bool MeterApiCalls { get; set; } = true;
}
