using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Tenantry.Billing.Usage;

/// <summary>
/// A meter: events of <see cref="EventType"/> aggregated over their <c>data.{Property}</c>
/// (<c>sum | count | max | unique_count | latest</c>). <c>count</c> needs no property.
/// </summary>
public sealed record Meter
{
    public required string Key { get; init; }
    public required string EventType { get; init; }
    public required string Aggregation { get; init; }
    public string? Property { get; init; }
    public string? Unit { get; init; }
    public string? Description { get; init; }

    /// <summary>True when every event must carry a numeric <c>data.{Property}</c>.</summary>
    [JsonIgnore]
    public bool NeedsNumber => Aggregation is Aggregations.Sum or Aggregations.Max or Aggregations.Latest;
}

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record MeterRequest(string? Key, string? EventType, string? Aggregation, string? Property, string? Unit, string? Description);

public static partial class Aggregations
{
    public const string Sum = "sum";
    public const string Count = "count";
    public const string Max = "max";
    public const string UniqueCount = "unique_count";
    public const string Latest = "latest";

    public static readonly IReadOnlyList<string> All = [Sum, Count, Max, UniqueCount, Latest];

    /// <summary>
    /// The largest value one event gives a sum, max or latest meter (a petabyte in bytes). Far
    /// below <see cref="decimal.MaxValue"/>, so no number of events overflows a total or its price.
    /// </summary>
    public const decimal MaxValue = 1_000_000_000_000_000m;

    internal const string MaxValueText = "1000000000000000 (10^15)";

    [GeneratedRegex(@"^[a-z][a-z0-9_]{0,62}\z", RegexOptions.CultureInvariant)]
    public static partial Regex KeyPattern();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]{0,62}\z", RegexOptions.CultureInvariant)]
    public static partial Regex PropertyPattern();

    /// <summary>Null when the meter is well formed; else why not.</summary>
    public static string? Check(Meter meter)
    {
        if (!KeyPattern().IsMatch(meter.Key))
        {
            return "key is lowercase letters, digits and '_' (at most 63), starting with a letter.";
        }

        if (meter.EventType.Length is 0 or > 200 || meter.EventType.Any(char.IsControl))
        {
            return "eventType is 1-200 printable characters.";
        }

        if (!All.Contains(meter.Aggregation))
        {
            return "aggregation is sum, count, max, unique_count or latest.";
        }

        if (meter.Aggregation != Count && (meter.Property is null || !PropertyPattern().IsMatch(meter.Property)))
        {
            return $"a {meter.Aggregation} meter needs property: the name of a field of the event's data.";
        }

        return null;
    }

    /// <summary>
    /// Folds the events of one meter (in time order) into its value. A stored value that ingest
    /// refuses now (text that is not Unicode, a negative number, one above <see cref="MaxValue"/>)
    /// is left out rather than failing the read: one such row would otherwise fail every read of
    /// the meter, for every tenant.
    /// </summary>
    public static decimal Aggregate(Meter meter, IEnumerable<JsonElement?> dataInTimeOrder)
    {
        ArgumentNullException.ThrowIfNull(meter);
        decimal sum = 0, max = 0, latest = 0, count = 0;
        HashSet<string>? unique = meter.Aggregation == UniqueCount ? new(StringComparer.Ordinal) : null;
        foreach (var data in dataInTimeOrder)
        {
            count++;
            if (meter.Aggregation == Count)
            {
                continue;
            }

            if (unique is not null)
            {
                if (TryProperty(data, meter.Property!, out var raw) && TryKey(raw, out var key))
                {
                    unique.Add(key);
                }

                continue;
            }

            if (!TryNumber(data, meter.Property!, out var value))
            {
                continue;
            }

            sum += value;
            max = count == 1 ? value : Math.Max(max, value);
            latest = value;
        }

        return meter.Aggregation switch
        {
            Sum => sum,
            Count => count,
            Max => max,
            Latest => latest,
            _ => unique!.Count,
        };
    }

    public static bool TryProperty(JsonElement? data, string property, out JsonElement value)
    {
        value = default;
        return data is { ValueKind: JsonValueKind.Object } d && d.TryGetProperty(property, out value) && value.ValueKind != JsonValueKind.Null;
    }

    /// <summary>
    /// A stored value a sum, max or latest meter counts: a number from 0 to <see cref="MaxValue"/>,
    /// or a string holding one (ingest took numeric strings before it required JSON numbers).
    /// </summary>
    public static bool TryNumber(JsonElement? data, string property, out decimal value)
    {
        value = 0;
        if (!TryProperty(data, property, out var raw))
        {
            return false;
        }

        var read = raw.ValueKind switch
        {
            JsonValueKind.Number => raw.TryGetDecimal(out value),
            JsonValueKind.String => TryText(raw, out var text) && decimal.TryParse(text, NumberStyles.Number, CultureInfo.InvariantCulture, out value),
            _ => false,
        };
        return read && value >= 0 && value <= MaxValue;
    }

    /// <summary>The key a unique_count meter counts a value by: a string's text, another value's JSON text.</summary>
    public static bool TryKey(JsonElement value, [NotNullWhen(true)] out string? key)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            return TryText(value, out key);
        }

        key = value.GetRawText();
        return true;
    }

    /// <summary>A string value's text; false when it holds an escaped surrogate without its pair, which has no text.</summary>
    public static bool TryText(JsonElement value, [NotNullWhen(true)] out string? text)
    {
        try
        {
            text = value.GetString();
            return text is not null;
        }
        catch (InvalidOperationException)
        {
            text = null;
            return false;
        }
    }

    /// <summary>The meters every installation has: the platform meters itself with them.</summary>
    public static IReadOnlyList<Meter> BuiltIn { get; } =
    [
        new Meter { Key = "api_calls", EventType = "api_calls", Aggregation = Count, Unit = "calls", Description = "Calls to the API on behalf of the tenant." },
        new Meter { Key = "storage_bytes", EventType = "storage_bytes", Aggregation = Max, Property = "bytes", Unit = "bytes", Description = "Largest sampled size of the tenant's storage prefix." },
        new Meter { Key = "active_users", EventType = "active_users", Aggregation = UniqueCount, Property = "userId", Unit = "users", Description = "Distinct users seen." },
        new Meter { Key = "compute_seconds", EventType = "compute_seconds", Aggregation = Sum, Property = "seconds", Unit = "seconds", Description = "Seconds a dedicated instance was deployed." },
        new Meter { Key = "job_seconds", EventType = "job_seconds", Aggregation = Sum, Property = "seconds", Unit = "seconds", Description = "Seconds the tenant's background jobs ran (lease to ack or nack)." },
    ];
}
