using System.Buffers;
using System.Globalization;
using System.Text;

namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary>A refused object key or prefix; the API answers 400 with <see cref="Reason"/>.</summary>
public sealed class InvalidObjectKeyException(string reason) : Exception(reason)
{
    public string Reason { get; } = reason;
}

/// <summary>
/// A validated object name: <c>tenants/{Slug}/{Path}</c>. Only the full key is kept; the tenant
/// and the path are cut from it when asked for, so validating a key allocates nothing.
/// </summary>
public readonly record struct ObjectKey
{
    private const int SlugStart = 8; // ObjectKeys.Root, "tenants/"
    private readonly int _slugLength;

    /// <summary>A key known to be valid: <paramref name="fullKey"/> is <c>tenants/{slug}/…</c> with a slug of <paramref name="slugLength"/> characters.</summary>
    internal ObjectKey(string fullKey, int slugLength)
    {
        FullKey = fullKey;
        _slugLength = slugLength;
    }

    public string FullKey { get; }

    public string Slug => FullKey.Substring(SlugStart, _slugLength);

    /// <summary>The tenant's slug without allocating it.</summary>
    public ReadOnlySpan<char> SlugSpan => FullKey.AsSpan(SlugStart, _slugLength);

    /// <summary>The name below the tenant's prefix (empty for the prefix itself).</summary>
    public string Path => FullKey[(SlugStart + _slugLength + 1)..];

    /// <summary>The same, without allocating it.</summary>
    public ReadOnlySpan<char> PathSpan => FullKey.AsSpan(SlugStart + _slugLength + 1);
}

/// <summary>
/// Object keys are checked before any policy or provider sees them, because an IAM prefix match
/// alone would let <c>tenants/acme/../beta/x</c> through. Refused: <c>.</c>/<c>..</c> and empty
/// segments, absolute paths, backslashes, percent-encoded traversal, control characters,
/// characters that normalise into traversal, and keys over S3's 1024 bytes. Keys are NFC-normalised.
/// </summary>
public static class ObjectKeys
{
    public const int MaxKeyBytes = 1024;
    public const int MaxSegmentBytes = 255;
    internal const string Root = "tenants/";
    internal const string OwnerFile = ".tenant-id";
    internal const string ExportsFolder = "exports";

    private static readonly SearchValues<char> SlugCharacters = SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-");

    /// <summary>Printable ASCII but backslash and percent: a key of only these needs no decoding or normalising.</summary>
    private static readonly SearchValues<char> PlainAscii = SearchValues.Create(
        string.Concat(Enumerable.Range(0x20, 0x7F - 0x20).Select(c => (char)c).Where(c => c is not ('\\' or '%'))));

    public static string TenantPrefix(string slug) => $"{Root}{slug}/";

    /// <summary>Validates a full object key (<c>tenants/{slug}/…</c>).</summary>
    public static ObjectKey Parse(string? key) => Split(key, isPrefix: false);

    /// <summary>Whether a key is valid, without saying why not.</summary>
    public static bool IsValid(string? key)
    {
        try
        {
            Parse(key);
            return true;
        }
        catch (InvalidObjectKeyException)
        {
            return false;
        }
    }

    /// <summary>Validates a listing prefix: <c>tenants/{slug}/</c> followed by any partial key.</summary>
    public static ObjectKey ParsePrefix(string? prefix) => Split(prefix, isPrefix: true);

    private static ObjectKey Split(string? key, bool isPrefix)
    {
        var text = Normalise(key, isPrefix);
        if (!text.StartsWith(Root, StringComparison.Ordinal))
        {
            throw new InvalidObjectKeyException($"An object key starts with {Root}{{tenant}}/.");
        }

        var slash = text.IndexOf('/', Root.Length);
        if (slash < 0)
        {
            throw new InvalidObjectKeyException($"An object key starts with {Root}{{tenant}}/.");
        }

        var slug = text.AsSpan(Root.Length, slash - Root.Length);
        if (!IsSlugShaped(slug))
        {
            throw new InvalidObjectKeyException($"'{slug}' is not a tenant slug.");
        }

        var path = text.AsSpan(slash + 1);
        if (!isPrefix && path.Length == 0)
        {
            throw new InvalidObjectKeyException("The object name after the tenant prefix is empty.");
        }

        // The owner file and the temporary file it is written through ('.tenant-id.tmp') are the platform's.
        if (path.StartsWith(OwnerFile, StringComparison.Ordinal))
        {
            throw new InvalidObjectKeyException($"Names starting '{OwnerFile}' are reserved by the platform.");
        }

        return new ObjectKey(text, slug.Length);
    }

    /// <summary>The shape of a tenant slug (reserved words included: they are refused at onboarding, not here).</summary>
    private static bool IsSlugShaped(ReadOnlySpan<char> slug) => slug.Length is >= 3 and <= 40 && !slug.ContainsAnyExcept(SlugCharacters);

    private static string Normalise(string? key, bool isPrefix)
    {
        if (string.IsNullOrEmpty(key))
        {
            throw new InvalidObjectKeyException("The object key is empty.");
        }

        if (key.Length > MaxKeyBytes)
        {
            throw new InvalidObjectKeyException($"An object key is at most {MaxKeyBytes} bytes.");
        }

        // Most keys are printable ASCII without '\' or '%': nothing to decode or normalise, one
        // byte per character, so only the shape and the segments need checking (one vector scan first).
        if (!key.AsSpan().ContainsAnyExcept(PlainAscii))
        {
            CheckShape(key);
            CheckSegments(key, isPrefix, "");
            return key;
        }

        if (Encoding.UTF8.GetByteCount(key) > MaxKeyBytes)
        {
            throw new InvalidObjectKeyException($"An object key is at most {MaxKeyBytes} bytes.");
        }

        for (var i = 0; i < key.Length; i++)
        {
            var c = key[i];
            var unpaired = char.IsHighSurrogate(c) ? i + 1 >= key.Length || !char.IsLowSurrogate(key[++i]) : char.IsLowSurrogate(c);
            if (unpaired || char.IsControl(c) || c is '\u2028' or '\u2029' or '\uFEFF')
            {
                throw new InvalidObjectKeyException("An object key cannot contain control characters or broken Unicode.");
            }
        }

        // Most keys are ASCII: no Unicode normalisation can change them.
        var ascii = Ascii.IsValid(key);
        if (!ascii && !key.IsNormalized(NormalizationForm.FormC))
        {
            key = key.Normalize(NormalizationForm.FormC);
        }

        if (key.Contains('\\', StringComparison.Ordinal))
        {
            throw new InvalidObjectKeyException("An object key uses '/' as separator; backslashes are refused.");
        }

        CheckShape(key);
        CheckSegments(key, isPrefix, "");

        // What a proxy, an S3 gateway or a later decode could turn into traversal.
        var decoded = key;
        for (var i = 0; i < 3 && decoded.Contains('%', StringComparison.Ordinal); i++)
        {
            var next = Uri.UnescapeDataString(decoded);
            if (next == decoded)
            {
                break;
            }

            decoded = next;
            if (decoded.Contains('\\', StringComparison.Ordinal) || decoded.Any(char.IsControl) || decoded.StartsWith('/'))
            {
                throw new InvalidObjectKeyException("An object key cannot hide separators or control characters in percent-encoding.");
            }

            CheckSegments(decoded, isPrefix: true, " once percent-decoded");
        }

        var compatible = ascii ? key : key.Normalize(NormalizationForm.FormKC);
        if (!ascii && compatible != key)
        {
            CheckSegments(compatible.Replace('\\', '/'), isPrefix: true, " once Unicode-normalised");
        }

        return key;
    }

    private static void CheckShape(string key)
    {
        if (key[0] == '/' || key[0] == '~' || (key.Length > 1 && key[1] == ':' && char.IsAsciiLetter(key[0])))
        {
            throw new InvalidObjectKeyException("An object key is relative: no leading '/', '~' or drive letter.");
        }
    }

    private static void CheckSegments(string key, bool isPrefix, string how)
    {
        var rest = key.AsSpan();
        while (true)
        {
            var slash = rest.IndexOf('/');
            var segment = slash < 0 ? rest : rest[..slash];
            var last = slash < 0;
            if (segment is "." or "..")
            {
                throw new InvalidObjectKeyException($"An object key cannot contain '.' or '..' segments{how}.");
            }

            // An empty last segment is a trailing '/': fine for a listing prefix only.
            if (segment.IsEmpty && !(isPrefix && last))
            {
                throw new InvalidObjectKeyException($"An object key cannot contain empty segments ('//' or a trailing '/'){how}.");
            }

            if (segment.Length > MaxSegmentBytes / 3 && Encoding.UTF8.GetByteCount(segment) > MaxSegmentBytes)
            {
                throw new InvalidObjectKeyException($"A segment of an object key is at most {MaxSegmentBytes.ToString(CultureInfo.InvariantCulture)} bytes.");
            }

            if (last)
            {
                return;
            }

            rest = rest[(slash + 1)..];
        }
    }
}
