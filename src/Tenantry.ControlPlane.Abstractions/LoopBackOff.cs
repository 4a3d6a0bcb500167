namespace Tenantry.ControlPlane;

/// <summary>
/// How long a background loop waits after rounds that failed in a row: its usual interval at
/// first, then doubled per failure up to <see cref="Max"/>. A loop that meets a failure logs it and
/// goes on, so it picks up again by itself once the cause is gone, without hammering a store that
/// is down.
/// </summary>
public static class LoopBackOff
{
    public static readonly TimeSpan Max = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan Min = TimeSpan.FromMilliseconds(100);

    public static TimeSpan After(TimeSpan interval, int failures)
    {
        if (failures <= 0)
        {
            return interval;
        }

        var first = interval > Min ? interval : Min;
        var delay = first * Math.Pow(2, Math.Min(failures - 1, 16));
        return delay < Max ? delay : (first > Max ? first : Max);
    }
}
