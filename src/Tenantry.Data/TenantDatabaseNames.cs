using System.Text.RegularExpressions;

namespace Tenantry.Data;

/// <summary>
/// Database object names derived from a tenant's slug. Slugs are validated before any name is
/// built, and the names are still always quoted where they reach SQL.
/// </summary>
public static partial class TenantDatabaseNames
{
    /// <summary>Prefix of every per-tenant schema, database and role, so none can collide with system names.</summary>
    public const string Prefix = "tenant_";

    [GeneratedRegex(@"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,39}\z", RegexOptions.CultureInvariant)]
    private static partial Regex SlugPattern();

    [GeneratedRegex(@"^[a-z_][a-z0-9_]{0,62}\z", RegexOptions.CultureInvariant)]
    private static partial Regex IdentifierPattern();

    /// <summary>True for a tenant slug: 3-40 of a-z, 0-9 and single inner hyphens.</summary>
    public static bool IsValidSlug(string? slug) => slug is not null && SlugPattern().IsMatch(slug);

    /// <summary>Throws unless <paramref name="slug"/> is a tenant slug (3-40 of a-z, 0-9 and single inner hyphens).</summary>
    public static string ValidateSlug(string? slug, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(slug))] string? parameterName = null)
    {
        ArgumentNullException.ThrowIfNull(slug, parameterName);
        return IsValidSlug(slug)
            ? slug
            : throw new ArgumentException("A tenant slug is 3-40 characters of a-z, 0-9 and single hyphens, starting and ending with a letter or digit.", parameterName);
    }

    /// <summary>True for the plain lowercase identifiers Tenantry builds and accepts for tables, columns and roles.</summary>
    public static bool IsValidIdentifier(string? name) => name is not null && IdentifierPattern().IsMatch(name);

    /// <summary>Throws unless <paramref name="name"/> is a plain lowercase identifier (see <see cref="IsValidIdentifier"/>); returns it.</summary>
    public static string ValidateIdentifier(string? name, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(name))] string? parameterName = null)
    {
        ArgumentNullException.ThrowIfNull(name, parameterName);
        return IsValidIdentifier(name)
            ? name
            : throw new ArgumentException($"'{name}' is not a valid identifier here: 1-63 characters of a-z, 0-9 and '_', not starting with a digit.", parameterName);
    }

    /// <summary>The bridge tenant's schema: <c>tenant_acme_corp</c> for slug <c>acme-corp</c>.</summary>
    public static string BridgeSchema(string slug) => Prefix + Stem(slug);

    /// <summary>The bridge tenant's login role, whose search_path is its schema.</summary>
    public static string BridgeRole(string slug) => Prefix + Stem(slug) + "_app";

    /// <summary>The silo tenant's database.</summary>
    public static string SiloDatabase(string slug) => Prefix + Stem(slug);

    /// <summary>The silo tenant's login role, owner of its database.</summary>
    public static string SiloRole(string slug) => Prefix + Stem(slug) + "_owner";

    /// <summary>Hyphens become underscores; slugs have no underscores, so this is one-to-one.</summary>
    private static string Stem(string slug) => ValidateSlug(slug).Replace('-', '_');

    /// <summary>A PostgreSQL / SQLite quoted identifier.</summary>
    public static string Quote(string identifier)
    {
        ArgumentException.ThrowIfNullOrEmpty(identifier);
        if (identifier.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("An identifier cannot contain NUL.", nameof(identifier));
        }

        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }
}
