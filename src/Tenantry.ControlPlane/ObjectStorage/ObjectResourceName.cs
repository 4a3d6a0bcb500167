using Tenantry.ControlPlane.Policies;

namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary>The policy resource name of a stored object: <c>trn:tenantry:storage::{tenant}:{full key}</c>.</summary>
public static class ObjectResourceName
{
    public static string Of(ObjectKey key) =>
        string.Create(Length(key), key, static (buffer, k) => Write(k, buffer));

    /// <summary>The length of <see cref="Of(ObjectKey)"/>, for a caller that composes it in a buffer.</summary>
    public static int Length(ObjectKey key) => PlatformPolicies.StorageResourcePrefix.Length + key.SlugSpan.Length + 1 + key.FullKey.Length;

    /// <summary>The same name written into <paramref name="buffer"/> (at least <see cref="Length"/> long), with no allocation.</summary>
    public static ReadOnlySpan<char> Write(ObjectKey key, Span<char> buffer)
    {
        PlatformPolicies.StorageResourcePrefix.CopyTo(buffer);
        var at = PlatformPolicies.StorageResourcePrefix.Length;
        key.SlugSpan.CopyTo(buffer[at..]);
        at += key.SlugSpan.Length;
        buffer[at++] = ':';
        key.FullKey.CopyTo(buffer[at..]);
        return buffer[..(at + key.FullKey.Length)];
    }
}
