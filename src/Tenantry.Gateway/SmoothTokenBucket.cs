using System.Diagnostics;
using System.Threading.RateLimiting;

namespace Tenantry.Gateway;

/// <summary>
/// A token bucket that refills continuously, computed at each request, like the Redis limiter's
/// script. The framework's <see cref="TokenBucketRateLimiter"/> inside a partitioned limiter is
/// refilled by one shared timer every 100 ms, so a tenant over its limit is let through in bursts
/// (5 requests at once, ten times a second, for a 50 r/s plan) that land on the shared app together
/// and raise every other tenant's tail latency. Here a flooder is admitted one request every
/// 1/rate seconds, evenly.
/// </summary>
internal sealed class SmoothTokenBucket : RateLimiter
{
    private static readonly RateLimitLease Granted = new Lease(true, null);
    private static readonly RateLimitLease NothingToGrant = new Lease(false, null);

    private readonly Lock _lock = new();
    private readonly double _perTick;
    private readonly double _burst;
    private readonly double _rate;
    private double _tokens;
    private long _stamp;
    private long _granted;
    private long _refused;

    public SmoothTokenBucket(double requestsPerSecond, int burst)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(requestsPerSecond);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(burst);
        _rate = requestsPerSecond;
        _perTick = requestsPerSecond / Stopwatch.Frequency;
        _burst = burst;
        _tokens = burst;
        _stamp = Stopwatch.GetTimestamp();
    }

    /// <summary>How long the bucket has been full (a full bucket holds no state worth keeping).</summary>
    public override TimeSpan? IdleDuration
    {
        get
        {
            lock (_lock)
            {
                var now = Stopwatch.GetTimestamp();
                var fullAt = _stamp + (long)((_burst - _tokens) / _perTick);
                return now >= fullAt ? Stopwatch.GetElapsedTime(fullAt, now) : null;
            }
        }
    }

    public override RateLimiterStatistics? GetStatistics()
    {
        lock (_lock)
        {
            Refill(Stopwatch.GetTimestamp());
            return new RateLimiterStatistics
            {
                CurrentAvailablePermits = (long)_tokens,
                CurrentQueuedCount = 0,
                TotalSuccessfulLeases = _granted,
                TotalFailedLeases = _refused,
            };
        }
    }

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(permitCount);
        lock (_lock)
        {
            Refill(Stopwatch.GetTimestamp());
            // Zero permits asks "would one be granted now?", as the framework's limiters answer it.
            var needed = Math.Max(1, permitCount);
            if (_tokens >= needed)
            {
                if (permitCount > 0)
                {
                    _tokens -= permitCount;
                    _granted++;
                }

                return Granted;
            }

            if (permitCount > _burst)
            {
                _refused++;
                return NothingToGrant;
            }

            _refused++;
            return new Lease(false, TimeSpan.FromSeconds((needed - _tokens) / _rate));
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        ValueTask.FromResult(AttemptAcquireCore(permitCount));

    private void Refill(long now)
    {
        if (now > _stamp)
        {
            _tokens = Math.Min(_burst, _tokens + ((now - _stamp) * _perTick));
            _stamp = now;
        }
    }

    private sealed class Lease(bool acquired, TimeSpan? retryAfter) : RateLimitLease
    {
        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => retryAfter is null ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (retryAfter is { } wait && metadataName == MetadataName.RetryAfter.Name)
            {
                metadata = wait;
                return true;
            }

            metadata = null;
            return false;
        }
    }
}
