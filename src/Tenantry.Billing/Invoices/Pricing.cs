using Tenantry.Billing.Plans;

namespace Tenantry.Billing.Invoices;

/// <summary>
/// The price models, exact in <see cref="decimal"/>. Amounts are rounded once, per invoice line, to
/// the currency's cents (half away from zero); totals are sums of rounded lines, so they add up.
/// </summary>
public static class Pricing
{
    public const string PerUnit = "per_unit";
    public const string Graduated = "graduated";
    public const string Package = "package";

    public static decimal RoundMoney(decimal amount) => Math.Round(amount, 2, MidpointRounding.AwayFromZero);

    /// <summary>Units above the included quantity (never negative).</summary>
    public static decimal Billable(decimal quantity, decimal included) => Math.Max(0, quantity - included);

    /// <summary>The unrounded charge for <paramref name="billable"/> units under <paramref name="price"/>.</summary>
    public static decimal Charge(MeteredPrice price, decimal billable)
    {
        ArgumentNullException.ThrowIfNull(price);
        if (billable <= 0)
        {
            return 0;
        }

        switch (price.Model)
        {
            case PerUnit:
                return billable * price.UnitPrice!.Value;
            case Package:
                return Math.Ceiling(billable / price.PackageSize!.Value) * price.PackagePrice!.Value;
            case Graduated:
                decimal total = 0, floor = 0;
                foreach (var tier in price.Tiers!)
                {
                    var ceiling = tier.UpTo ?? decimal.MaxValue;
                    var inTier = Math.Min(billable, ceiling) - floor;
                    if (inTier <= 0)
                    {
                        break;
                    }

                    total += tier.FlatPrice + inTier * tier.UnitPrice;
                    floor = ceiling;
                }

                return total;
            default:
                throw new ArgumentException($"Unknown price model '{price.Model}'.", nameof(price));
        }
    }

    /// <summary>Null when the price is well formed; else why not.</summary>
    public static string? Check(MeteredPrice price)
    {
        if (price.Included < 0)
        {
            return "included cannot be negative.";
        }

        switch (price.Model)
        {
            case PerUnit:
                return price.UnitPrice is >= 0 ? null : "a per_unit price needs unitPrice >= 0.";
            case Package:
                return price.PackageSize is > 0 && price.PackagePrice is >= 0 ? null : "a package price needs packageSize > 0 and packagePrice >= 0.";
            case Graduated:
                if (price.Tiers is not { Count: > 0 } tiers)
                {
                    return "a graduated price needs tiers.";
                }

                decimal previous = 0;
                for (var i = 0; i < tiers.Count; i++)
                {
                    var tier = tiers[i];
                    if (tier.UnitPrice < 0 || tier.FlatPrice < 0)
                    {
                        return $"tiers[{i}]: prices cannot be negative.";
                    }

                    if (tier.UpTo is null != (i == tiers.Count - 1))
                    {
                        return "every tier but the last has upTo; the last has none.";
                    }

                    if (tier.UpTo is { } upTo)
                    {
                        if (upTo <= previous)
                        {
                            return $"tiers[{i}]: upTo must grow from tier to tier.";
                        }

                        previous = upTo;
                    }
                }

                return null;
            default:
                return "model is per_unit, graduated or package.";
        }
    }

    /// <summary>The fraction of <paramref name="period"/> covered by [from, to), exact to the second.</summary>
    public static decimal Fraction(BillingPeriod period, DateTimeOffset from, DateTimeOffset to)
    {
        var seconds = (decimal)(period.End - period.Start).TotalSeconds;
        var covered = (decimal)Math.Floor((to - from).TotalSeconds);
        return covered / seconds;
    }
}
