using System.Collections.Concurrent;
using Tenantry.Health;

namespace Tenantry.Gateway;

/// <summary>
/// Per-tenant, per-minute counters of the gateway's traffic, in memory: requests, 4xx, 5xx, 429s and
/// a latency histogram (<see cref="LatencySketch"/>'s buckets). Recording is lock-free (one dictionary
/// look-up and a few interlocked increments); <see cref="Drain"/> takes what was counted since the
/// last drain, each counter atomically exchanged for zero, so no request is lost or counted twice
/// however recording and draining interleave. A request counted while a drain runs may land partly
/// in this drain and partly in the next; both belong to the same minute, so the minute's row adds up.
/// </summary>
internal sealed class TenantHealthRecorder(TimeProvider time)
{
    /// <summary>A minute's cell is dropped this many minutes after it ended (after one last drain); nothing records into it by then.</summary>
    private const long KeepMinutes = 2;

    private readonly ConcurrentDictionary<CellKey, HealthCell> _cells = new();

    /// <summary>Counts one request of <paramref name="tenantId"/> answered with <paramref name="status"/> after <paramref name="elapsed"/>.</summary>
    public void Record(Guid tenantId, int status, TimeSpan elapsed)
    {
        var minute = time.GetUtcNow().UtcTicks / TimeSpan.TicksPerMinute;
        var cell = _cells.GetOrAdd(new CellKey(tenantId, minute), static _ => new HealthCell());
        cell.Add(status, elapsed.TotalMilliseconds);
    }

    /// <summary>Everything counted since the last drain, one sample per tenant and minute with traffic.</summary>
    public List<TenantHealthSample> Drain()
    {
        var current = time.GetUtcNow().UtcTicks / TimeSpan.TicksPerMinute;
        var samples = new List<TenantHealthSample>();
        foreach (var (key, cell) in _cells)
        {
            if (key.Minute <= current - KeepMinutes)
            {
                _cells.TryRemove(key, out _);
            }

            if (cell.Drain(key, out var sample))
            {
                samples.Add(sample);
            }
        }

        return samples;
    }

    private readonly record struct CellKey(Guid TenantId, long Minute);

    /// <summary>One tenant's counters for one minute.</summary>
    private sealed class HealthCell
    {
        private const int PageBits = 6;
        private const int PageSize = 1 << PageBits;

        // Latency buckets in pages of 64, made on first use: a tenant's traffic spans a few pages, not all of them.
        private readonly int[]?[] _pages = new int[]?[(LatencySketch.BucketCount + PageSize - 1) / PageSize];
        private long _requests;
        private long _status4xx;
        private long _status5xx;
        private long _throttled;

        public void Add(int status, double milliseconds)
        {
            var bucket = LatencySketch.IndexOf(milliseconds) - LatencySketch.MinIndex;
            var page = Volatile.Read(ref _pages[bucket >> PageBits]) ?? NewPage(bucket >> PageBits);
            Interlocked.Increment(ref page[bucket & (PageSize - 1)]);
            if (status >= 400)
            {
                if (status >= 500)
                {
                    Interlocked.Increment(ref _status5xx);
                }
                else
                {
                    Interlocked.Increment(ref _status4xx);
                    if (status == 429)
                    {
                        Interlocked.Increment(ref _throttled);
                    }
                }
            }

            Interlocked.Increment(ref _requests);
        }

        public bool Drain(CellKey key, out TenantHealthSample sample)
        {
            var requests = Interlocked.Exchange(ref _requests, 0);
            var status4xx = Interlocked.Exchange(ref _status4xx, 0);
            var status5xx = Interlocked.Exchange(ref _status5xx, 0);
            var throttled = Interlocked.Exchange(ref _throttled, 0);
            var latency = new LatencySketch();
            for (var p = 0; p < _pages.Length; p++)
            {
                if (Volatile.Read(ref _pages[p]) is not { } page)
                {
                    continue;
                }

                for (var i = 0; i < page.Length; i++)
                {
                    if (Volatile.Read(ref page[i]) != 0 && Interlocked.Exchange(ref page[i], 0) is var count and > 0)
                    {
                        latency.AddToBucket(LatencySketch.MinIndex + (p << PageBits) + i, count);
                    }
                }
            }

            sample = new TenantHealthSample(
                key.TenantId, new DateTimeOffset(key.Minute * TimeSpan.TicksPerMinute, TimeSpan.Zero), requests, status4xx, status5xx, throttled, latency);
            return requests != 0 || status4xx != 0 || status5xx != 0 || throttled != 0 || !latency.IsEmpty;
        }

        private int[] NewPage(int index)
        {
            var page = new int[PageSize];
            return Interlocked.CompareExchange(ref _pages[index], page, null) ?? page;
        }
    }
}
