namespace Tenantry.Billing.Costs;

/// <summary>
/// Splits an amount in cents by weights with the largest-remainder rule: each share is rounded
/// down, then the cents left over go one each to the largest remainders (ties by key), so the
/// shares always add up to the amount exactly.
/// </summary>
public static class CostAllocator
{
    public static Dictionary<TKey, long> Allocate<TKey>(long cents, IReadOnlyDictionary<TKey, decimal> weights, IComparer<TKey> tieBreak)
        where TKey : notnull
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(tieBreak);
        ArgumentOutOfRangeException.ThrowIfNegative(cents);
        var result = weights.Keys.ToDictionary(k => k, _ => 0L);
        if (weights.Count == 0 || cents == 0)
        {
            return result;
        }

        if (weights.Values.Any(w => w < 0))
        {
            throw new ArgumentException("Weights cannot be negative.", nameof(weights));
        }

        var total = weights.Values.Sum();
        var equal = total == 0; // Nobody used the meter: the cost is shared equally.
        var remainders = new List<(TKey Key, decimal Remainder)>(weights.Count);
        long given = 0;
        foreach (var (key, weight) in weights)
        {
            var exact = equal ? (decimal)cents / weights.Count : cents * (weight / total);
            var floor = (long)Math.Floor(exact);
            result[key] = floor;
            given += floor;
            remainders.Add((key, exact - floor));
        }

        var left = cents - given;
        foreach (var (key, _) in remainders
                     .OrderByDescending(r => r.Remainder)
                     .ThenBy(r => r.Key, tieBreak)
                     .Take((int)left))
        {
            result[key]++;
        }

        return result;
    }
}
