using System.Diagnostics;
using System.Threading.RateLimiting;

namespace Tenantry.Gateway.Tests;

/// <summary>The in-process per-tenant bucket: a burst, then one request per 1/rate seconds, never more.</summary>
public sealed class SmoothTokenBucketTests
{
    [Fact]
    public void The_burst_is_granted_then_the_next_request_is_refused_with_a_retry_after_of_at_most_one_token()
    {
        using var bucket = new SmoothTokenBucket(requestsPerSecond: 10, burst: 3);
        for (var i = 0; i < 3; i++)
        {
            using var lease = bucket.AttemptAcquire();
            Assert.True(lease.IsAcquired);
        }

        using var refused = bucket.AttemptAcquire();
        Assert.False(refused.IsAcquired);
        Assert.True(refused.TryGetMetadata(MetadataName.RetryAfter, out var wait));
        Assert.InRange(wait, TimeSpan.Zero, TimeSpan.FromMilliseconds(100));
        Assert.Equal(3, bucket.GetStatistics()!.TotalSuccessfulLeases);
        Assert.Equal(1, bucket.GetStatistics()!.TotalFailedLeases);

        // Asking for zero permits only says whether one would be granted; it takes nothing.
        using var probe = bucket.AttemptAcquire(0);
        Assert.False(probe.IsAcquired);
        using var tooMany = bucket.AttemptAcquire(4);
        Assert.False(tooMany.IsAcquired);
    }

    [Fact]
    public void A_flooder_is_admitted_one_request_per_refill_interval_never_in_a_clump()
    {
        // 50 r/s with a burst of 1: a caller asking as fast as it can gets one grant every 20 ms.
        // (The framework's partitioned token bucket refills on a 100 ms timer and hands out
        // five at once instead.)
        using var bucket = new SmoothTokenBucket(requestsPerSecond: 50, burst: 1);
        var grants = new List<long>();
        var clock = Stopwatch.StartNew();
        for (var attempts = 0; clock.ElapsedMilliseconds < 300 && attempts < 5_000_000; attempts++)
        {
            using var lease = bucket.AttemptAcquire();
            if (lease.IsAcquired)
            {
                grants.Add(Stopwatch.GetTimestamp());
            }
        }

        var elapsed = clock.Elapsed.TotalSeconds;
        Assert.InRange(grants.Count, 2, 1 + (int)Math.Ceiling(elapsed * 50));
        var gaps = grants.Zip(grants.Skip(1), (a, b) => Stopwatch.GetElapsedTime(a, b));
        Assert.All(gaps, gap => Assert.True(gap >= TimeSpan.FromMilliseconds(19.9), $"two grants {gap.TotalMilliseconds:0.00} ms apart"));
    }

    [Fact]
    public void A_bucket_is_idle_only_once_it_is_full_again()
    {
        using var bucket = new SmoothTokenBucket(requestsPerSecond: 1, burst: 2);
        Assert.NotNull(bucket.IdleDuration);
        using (bucket.AttemptAcquire())
        {
        }

        Assert.Null(bucket.IdleDuration);
    }
}
