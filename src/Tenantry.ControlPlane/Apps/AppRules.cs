using System.Text.RegularExpressions;

namespace Tenantry.ControlPlane.Apps;

/// <summary>
/// Validation of app and release fields. An app's name becomes part of process, database and
/// cluster names, so it is a strict slug; route prefixes and health paths are request paths.
/// </summary>
public static partial class AppRules
{
    public const int NameMinLength = 2;
    public const int NameMaxLength = 40;
    public const int PathMaxLength = 200;
    public const int MinInstances = 1;
    public const int MaxInstances = 16;

    /// <summary>Registered apps at most: every tenant runs every app.</summary>
    public const int MaxApps = 50;
    public const int VersionMaxLength = 64;
    public const int MaxArgs = 100;
    public const int MaxEnv = 100;
    public const int MaxMigrations = 1000;
    public const int MigrationIdMaxLength = 100;
    public const string DefaultRoutePrefix = "/";
    public const string DefaultHealthPath = "/healthz";

    [GeneratedRegex(@"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){1,39}\z", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();

    // Path segments of unreserved characters (RFC 3986), no empty segment.
    [GeneratedRegex(@"^(?:/[A-Za-z0-9._~-]+)*/?\z", RegexOptions.CultureInvariant)]
    private static partial Regex RoutePattern();

    [GeneratedRegex(@"^/[A-Za-z0-9._~/-]*(?:\?[A-Za-z0-9._~=&-]*)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex HealthPattern();

    // Semantic versioning 2.0.0: MAJOR.MINOR.PATCH, an optional pre-release and build metadata.
    [GeneratedRegex(@"^(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex VersionPattern();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*\z", RegexOptions.CultureInvariant)]
    private static partial Regex EnvNamePattern();

    [GeneratedRegex(@"^([0-9]{1,9})_[A-Za-z0-9_-]+\z", RegexOptions.CultureInvariant)]
    private static partial Regex MigrationIdPattern();

    /// <summary>Null when valid, else why not.</summary>
    public static string? CheckName(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return "name is required.";
        }

        return name.Length is < NameMinLength or > NameMaxLength || !NamePattern().IsMatch(name)
            ? $"An app name is {NameMinLength}-{NameMaxLength} of a-z, 0-9 and single hyphens, starting with a letter and ending with a letter or digit."
            : null;
    }

    /// <summary>The prefix without a trailing slash (the root stays <c>/</c>), or why it is not valid.</summary>
    public static (string? Value, string? Error) NormalizeRoutePrefix(string? prefix)
    {
        prefix ??= DefaultRoutePrefix;
        if (!prefix.StartsWith('/'))
        {
            return (null, "routePrefix starts with '/'.");
        }

        if (prefix.Length > PathMaxLength)
        {
            return (null, $"routePrefix is at most {PathMaxLength} characters.");
        }

        if (prefix.Split('/').Any(s => s is "." or ".."))
        {
            return (null, "routePrefix cannot contain '.' or '..' segments.");
        }

        if (!RoutePattern().IsMatch(prefix))
        {
            return (null, "routePrefix is a path of segments of letters, digits and . _ ~ - (no query, no empty segment).");
        }

        return (prefix.Length > 1 ? prefix.TrimEnd('/') : prefix, null);
    }

    /// <summary>The key two prefixes collide on: the gateway matches paths without regard to case.</summary>
    public static string RouteKey(string normalizedPrefix) => normalizedPrefix.ToUpperInvariant();

    public static string? CheckHealthPath(string healthPath)
    {
        ArgumentNullException.ThrowIfNull(healthPath);
        if (!healthPath.StartsWith('/'))
        {
            return "healthPath starts with '/'.";
        }

        if (healthPath.Length > PathMaxLength)
        {
            return $"healthPath is at most {PathMaxLength} characters.";
        }

        if (healthPath.Split('?')[0].Split('/').Any(s => s is "." or ".."))
        {
            return "healthPath cannot contain '.' or '..' segments.";
        }

        return HealthPattern().IsMatch(healthPath) ? null : "healthPath is a path of letters, digits and . _ ~ - /, with an optional simple query.";
    }

    public static string? CheckInstances(int instances) =>
        instances is < MinInstances or > MaxInstances ? $"shared.instances is {MinInstances}-{MaxInstances}." : null;

    public static string? CheckVersion(string? version)
    {
        if (string.IsNullOrEmpty(version))
        {
            return "version is required.";
        }

        return version.Length > VersionMaxLength || !VersionPattern().IsMatch(version)
            ? $"version is a semantic version (MAJOR.MINOR.PATCH, optional -pre.release and +build), at most {VersionMaxLength} characters."
            : null;
    }

    /// <summary>
    /// Environment names the platform sets itself (<c>PORT</c>, <c>TENANTRY_*</c>): a release
    /// cannot override the port an instance listens on or the tenant context it is given.
    /// </summary>
    public static bool IsReservedEnv(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return string.Equals(name, "PORT", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("TENANTRY_", StringComparison.OrdinalIgnoreCase);
    }

    public static string? CheckEnvName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > 128 || !EnvNamePattern().IsMatch(name))
        {
            return "An environment variable name is letters, digits and '_', not starting with a digit, at most 128 characters.";
        }

        return IsReservedEnv(name) ? $"'{name}' is set by Tenantry (PORT and TENANTRY_* are reserved)." : null;
    }

    /// <summary>The number a migration id starts with, or null when the id is not <c>NNN_name</c>.</summary>
    public static int? MigrationNumber(string? id)
    {
        if (id is null || id.Length > MigrationIdMaxLength)
        {
            return null;
        }

        var match = MigrationIdPattern().Match(id);
        return match.Success ? int.Parse(match.Groups[1].ValueSpan, System.Globalization.CultureInfo.InvariantCulture) : null;
    }

    /// <summary>True when the text holds a NUL or another control character other than tab, CR and LF.</summary>
    public static bool HasControl(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Any(c => char.IsControl(c) && c is not ('\t' or '\r' or '\n'));
    }
}
