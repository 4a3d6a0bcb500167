using System.Net.Mail;
using System.Text;
using System.Text.RegularExpressions;

namespace Tenantry.ControlPlane;

/// <summary>Validation of tenant fields. Slugs become folder, database and schema names, so they are strict.</summary>
public static partial class TenantRules
{
    public const int SlugMinLength = 3;
    public const int SlugMaxLength = 40;
    public const int NameMaxLength = 200;
    public const int ConfigMaxBytes = 16 * 1024;

    private static readonly HashSet<string> ReservedSlugs = new(StringComparer.Ordinal)
    {
        "admin", "api", "app", "console", "connect", "default", "healthz", "internal", "new", "null",
        "openapi", "operator", "pool", "public", "root", "shared", "system", "tenantry", "www",
    };

    [GeneratedRegex(@"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,39}\z", RegexOptions.CultureInvariant)]
    private static partial Regex SlugPattern();

    /// <summary>Null when valid, else why not.</summary>
    public static string? CheckSlug(string? slug)
    {
        if (string.IsNullOrEmpty(slug))
        {
            return "The slug is required.";
        }

        if (slug.Length is < SlugMinLength or > SlugMaxLength)
        {
            return $"A slug is {SlugMinLength}-{SlugMaxLength} characters long.";
        }

        if (!SlugPattern().IsMatch(slug))
        {
            return "A slug uses lowercase letters a-z, digits and single hyphens, and starts and ends with a letter or digit.";
        }

        return ReservedSlugs.Contains(slug) ? $"'{slug}' is reserved." : null;
    }

    public static string? CheckName(string? name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return "The name is required.";
        }

        if (name.Trim().Length > NameMaxLength)
        {
            return $"A name is at most {NameMaxLength} characters.";
        }

        return name.Any(char.IsControl) ? "A name cannot contain control characters." : null;
    }

    public static string? CheckEmail(string? email)
    {
        if (string.IsNullOrWhiteSpace(email))
        {
            return "The admin email is required.";
        }

        if (email.Length > 254 || email.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            return "The admin email is not a valid address.";
        }

        return MailAddress.TryCreate(email, out var address) && address.Address == email && address.Host.Contains('.', StringComparison.Ordinal)
            ? null
            : "The admin email is not a valid address (name@example.com).";
    }

    public static bool IsValidTierName(string tier) => TierNames.IsValid(tier);

    /// <summary>A slug suggestion from a display name: "Acme Corp." → "acme-corp".</summary>
    public static string SlugFromName(string name)
    {
        var builder = new StringBuilder(SlugMaxLength);
        foreach (var c in name.Normalize(NormalizationForm.FormD).ToLowerInvariant())
        {
            if (c is >= 'a' and <= 'z' or >= '0' and <= '9')
            {
                builder.Append(c);
            }
            else if (builder.Length > 0 && builder[^1] != '-' && char.GetUnicodeCategory(c) != System.Globalization.UnicodeCategory.NonSpacingMark)
            {
                builder.Append('-');
            }

            if (builder.Length >= SlugMaxLength - 5)
            {
                break;
            }
        }

        var slug = builder.ToString().Trim('-');
        if (slug.Length < SlugMinLength)
        {
            slug = (slug + "-tenant").Trim('-');
        }

        return CheckSlug(slug) is null ? slug : slug + "-t";
    }
}
