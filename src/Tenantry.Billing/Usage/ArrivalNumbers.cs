namespace Tenantry.Billing.Usage;

/// <summary>
/// Numbers events in the order they arrive, for PostgreSQL's <c>seq</c> column (the tie-break of
/// events of equal time). A number is the clock's microseconds since 1970 times 1024, or one more
/// than the last number given, whichever is larger; so numbers rise within this process, and across
/// restarts and replicas they follow the clock (they stay below 2^63 until the year 2255).
/// Numbering here costs one atomic operation per batch. A database sequence cost a call and a
/// locked write of a shared page per row, ~6 % of the server's instructions per inserted event.
/// </summary>
internal sealed class ArrivalNumbers(TimeProvider time)
{
    private const int PerMicrosecond = 1024;

    private long _last;

    /// <summary>Takes <paramref name="count"/> consecutive numbers; returns the first.</summary>
    public long Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var clock = (time.GetUtcNow().UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TimeSpan.TicksPerMicrosecond * PerMicrosecond;
        while (true)
        {
            var last = Volatile.Read(ref _last);
            var first = Math.Max(last + 1, clock);
            if (Interlocked.CompareExchange(ref _last, first + count - 1, last) == last)
            {
                return first;
            }
        }
    }
}
