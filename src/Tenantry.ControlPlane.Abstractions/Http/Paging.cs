using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace Tenantry.ControlPlane.Http;

/// <summary>Opaque cursors and limits for list calls.</summary>
internal static class Paging
{
    public const int DefaultLimit = 50;
    public const int MaxLimit = 200;

    public static string Encode(string position) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(position));

    public static string? Decode(string cursor)
    {
        try
        {
            return Encoding.UTF8.GetString(Base64Url.DecodeFromChars(cursor));
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// A cursor of a list in descending sequence order: <paramref name="before"/> is the sequence the
    /// next page starts below (<see cref="long.MaxValue"/> without a cursor); a problem for a cursor
    /// this API did not return.
    /// </summary>
    public static ApiError? CheckSequenceCursor(string? cursor, out long before)
    {
        before = long.MaxValue;
        return cursor is null || (Decode(cursor) is { } position && long.TryParse(position, NumberStyles.None, CultureInfo.InvariantCulture, out before))
            ? null
            : ApiError.Validation("cursor", "The cursor is not one this API returned.");
    }

    public static ApiError? CheckLimit(int? limit, out int value)
    {
        value = limit ?? DefaultLimit;
        return value is < 1 or > MaxLimit ? ApiError.Validation("limit", $"limit is 1-{MaxLimit}.") : null;
    }
}

public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);
