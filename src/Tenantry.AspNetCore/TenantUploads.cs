using System.Buffers;

namespace Tenantry.AspNetCore;

/// <summary>
/// Files in the tenant's storage prefix (<c>{DataDir}/tenants/{slug}/uploads/…</c>). Names are
/// checked before any path is built: one path segment, no dot segments, no separators or control
/// characters, and the resolved path must stay inside the tenant's folder.
/// </summary>
public static class TenantUploads
{
    private static readonly SearchValues<char> Punctuation = SearchValues.Create("._-+=,@() ");

    /// <summary>
    /// True for a safe file name: 1-128 letters, digits and <c>._-+=,@() </c>, not starting with a dot
    /// or space and not ending with a space. Separators, <c>%</c>, control characters and dot segments are never allowed.
    /// </summary>
    public static bool IsSafeName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= 128 && name[0] is not ('.' or ' ') && name[^1] != ' '
        && name.All(c => char.IsLetterOrDigit(c) || Punctuation.Contains(c));

    /// <summary>The absolute path of <paramref name="segments"/> under the tenant's uploads folder; throws for an unsafe segment.</summary>
    public static string UploadPath(string dataDir, ITenantContext tenant, params string[] segments)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDir);
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(segments);
        if (!IsSafeName(tenant.Slug) || segments.Any(s => !IsSafeName(s)))
        {
            throw new ArgumentException("Unsafe storage name.", nameof(segments));
        }

        var root = Path.GetFullPath(Path.Combine(dataDir, "tenants", tenant.Slug, "uploads")) + Path.DirectorySeparatorChar;
        var path = Path.GetFullPath(Path.Combine([root, .. segments]));
        if (!path.StartsWith(root, StringComparison.Ordinal))
        {
            throw new ArgumentException("The name resolves outside the tenant's storage.", nameof(segments));
        }

        return path;
    }
}
