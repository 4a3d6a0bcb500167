using System.Buffers.Text;
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

    public static ApiError? CheckLimit(int? limit, out int value)
    {
        value = limit ?? DefaultLimit;
        return value is < 1 or > MaxLimit ? ApiError.Validation("limit", $"limit is 1-{MaxLimit}.") : null;
    }
}

public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);
