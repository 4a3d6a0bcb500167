using Tenantry.Billing.Usage;

namespace Tenantry.Billing.Tests;

public sealed class ArrivalNumbersTests
{
    [Fact]
    public void Numbers_follow_the_clock_and_never_repeat_or_fall_even_when_the_clock_does()
    {
        var clock = new SettableClock(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
        var numbers = new ArrivalNumbers(clock);

        var first = numbers.Take(100);
        Assert.Equal(clock.Now.ToUnixTimeMilliseconds() * 1000 * 1024, first);
        Assert.Equal(first + 100, numbers.Take(1)); // same microsecond: the next ones follow on

        clock.Now = clock.Now.AddSeconds(-5); // the clock steps back
        Assert.Equal(first + 101, numbers.Take(3));

        clock.Now = clock.Now.AddMinutes(1);
        Assert.Equal(clock.Now.ToUnixTimeMilliseconds() * 1000 * 1024, numbers.Take(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => numbers.Take(0));
    }

    [Fact]
    public void Batches_taken_at_once_from_many_threads_get_disjoint_ranges()
    {
        var numbers = new ArrivalNumbers(TimeProvider.System);
        var ranges = new System.Collections.Concurrent.ConcurrentBag<(long First, int Count)>();
        Parallel.For(0, 2000, i => ranges.Add((numbers.Take(1 + (i % 100)), 1 + (i % 100))));

        var sorted = ranges.OrderBy(r => r.First).ToList();
        for (var i = 1; i < sorted.Count; i++)
        {
            Assert.True(sorted[i].First >= sorted[i - 1].First + sorted[i - 1].Count, "ranges overlap");
        }

        var micros = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
        Assert.InRange(sorted[^1].First / 1024, micros - 60_000_000, micros + 1); // the clock's microseconds
    }

    private sealed class SettableClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
