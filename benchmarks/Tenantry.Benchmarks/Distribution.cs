using System.Globalization;

namespace Tenantry.Benchmarks;

/// <summary>Summary of a set of measurements (nearest-rank percentiles: p99 of 1000 values is the 990th smallest).</summary>
internal sealed record Distribution(int Count, double Mean, double P50, double P95, double P99, double Max)
{
    public static readonly Distribution Empty = new(0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);

    public static Distribution Of(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        return sorted.Length == 0
            ? Empty
            : new Distribution(sorted.Length, sorted.Average(), Rank(sorted, 50), Rank(sorted, 95), Rank(sorted, 99), sorted[^1]);
    }

    private static double Rank(double[] sorted, double percentile)
    {
        var rank = (int)Math.Ceiling(percentile / 100.0 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}

internal static class Format
{
    /// <summary>Milliseconds with one decimal ("12.3"), or "n/a".</summary>
    public static string Ms(double value) => double.IsFinite(value) ? value.ToString("0.0", CultureInfo.InvariantCulture) : "n/a";

    /// <summary>A ratio with two decimals and a times sign ("1.25×"), or "n/a".</summary>
    public static string Ratio(double value) => double.IsFinite(value) ? value.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "n/a";

    public static string Number(double value, string format) => double.IsFinite(value) ? value.ToString(format, CultureInfo.InvariantCulture) : "n/a";

    public static string Percent(double value) => double.IsFinite(value) ? value.ToString("0.0", CultureInfo.InvariantCulture) + " %" : "n/a";
}
