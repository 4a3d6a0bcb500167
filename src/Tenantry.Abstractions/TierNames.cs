using System.Text.RegularExpressions;

namespace Tenantry;

/// <summary>Tier names (and the plan ids that name a tier's plan): 1-40 of a-z, 0-9 and inner hyphens.</summary>
public static partial class TierNames
{
    [GeneratedRegex(@"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?\z", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();

    /// <summary>True when <paramref name="tier"/> is 1-40 of a-z, 0-9 and inner hyphens.</summary>
    public static bool IsValid(string tier)
    {
        ArgumentNullException.ThrowIfNull(tier);
        return Pattern().IsMatch(tier);
    }
}
