using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Tenantry.ControlPlane.Http;

namespace Tenantry.Billing.Usage;

/// <summary>
/// One element of a posted batch after every check that needs no query: an event waiting only
/// for its tenant to be resolved, or the reason it is rejected. <see cref="ReasonAfterTenant"/>
/// is reported only when the tenant exists, so reasons come in the same order as before.
/// </summary>
internal readonly record struct EventCandidate(
    string? Reason, string? Source, string? Id, string? Type, string? Subject, DateTimeOffset Time, string? Data, string? ReasonAfterTenant)
{
    public static EventCandidate Rejected(string reason) => new(reason, null, null, null, null, default, null, null);
}

/// <summary>
/// Reads a batch of CloudEvents in one forward pass over the UTF-8 body with
/// <see cref="Utf8JsonReader"/>: no document tree, one string per field kept, <c>data</c>
/// copied as its raw text. Malformed JSON anywhere throws <see cref="JsonException"/> before
/// any event is used, so a broken body is refused whole.
/// </summary>
internal static class EventBatchReader
{
    public const int MaxField = 200;

    private static readonly SearchValues<char> ControlChars = SearchValues.Create(
        string.Concat(Enumerable.Range(0, 0x20).Concat(Enumerable.Range(0x7F, 0x21)).Select(c => (char)c)));

    /// <summary>Fills <paramref name="into"/> with one candidate per element; an error when the body is not a batch.</summary>
    public static ApiError? Read(
        ReadOnlySpan<byte> body, int maxBatch, BillingCatalog.Snapshot snapshot, DateTimeOffset now, DateTimeOffset openFrom, DateTimeOffset latest, List<EventCandidate> into)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
        if (!reader.Read())
        {
            throw new JsonException("The body is empty.", null, 0, 0);
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            reader.Skip();
            EnsureEnd(ref reader);
            return ApiError.BadRequest("The body is a JSON array of events: [{id, source, type, subject, time, data}].");
        }

        var count = 0;
        var checks = new Checks(snapshot, now, openFrom, latest);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (count++ >= maxBatch)
            {
                reader.Skip(); // Too many: the rest is only checked to be JSON, then the batch is refused.
                continue;
            }

            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                into.Add(EventCandidate.Rejected("An event is a JSON object."));
                continue;
            }

            into.Add(checks.ReadEvent(ref reader, body));
        }

        EnsureEnd(ref reader);
        if (count == 0 || count > maxBatch)
        {
            into.Clear();
            return ApiError.Validation("events", $"A batch holds 1-{maxBatch} events.");
        }

        return null;
    }

    /// <summary>Trailing content after the root value is malformed JSON; the reader throws on it.</summary>
    private static void EnsureEnd(ref Utf8JsonReader reader)
    {
        if (reader.Read())
        {
            throw new JsonException("Content after the JSON value.", null, 0, reader.BytesConsumed);
        }
    }

    /// <summary>The per-request inputs of the checks, and the meters of the last event type seen (batches repeat types).</summary>
    private sealed class Checks(BillingCatalog.Snapshot snapshot, DateTimeOffset now, DateTimeOffset openFrom, DateTimeOffset latest)
    {
        private readonly Repeated _sources = new(), _types = new(), _subjects = new();
        private string? _lastType;
        private Meter[] _lastMeters = [];
        private byte[][] _lastProperties = [];

        public EventCandidate ReadEvent(ref Utf8JsonReader reader, ReadOnlySpan<byte> body)
        {
            string? id = null, source = null, type = null, subject = null;
            var time = now;
            bool badTime = false, badData = false;
            long dataStart = -1, dataEnd = -1;

            // Property names are matched after unescaping; a repeated property counts as its last occurrence.
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    id = Text(ref reader);
                }
                else if (reader.ValueTextEquals("source"u8))
                {
                    source = _sources.Text(ref reader);
                }
                else if (reader.ValueTextEquals("type"u8))
                {
                    type = _types.Text(ref reader);
                }
                else if (reader.ValueTextEquals("subject"u8))
                {
                    subject = _subjects.Text(ref reader);
                }
                else if (reader.ValueTextEquals("time"u8))
                {
                    reader.Read();
                    time = now;
                    badTime = reader.TokenType switch
                    {
                        JsonTokenType.Null => false,
                        JsonTokenType.String => !reader.TryGetDateTimeOffset(out time) && !DateTimeOffset.TryParse(
                            reader.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out time),
                        _ => true,
                    };
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("data"u8))
                {
                    reader.Read();
                    badData = reader.TokenType is not (JsonTokenType.Null or JsonTokenType.StartObject);
                    dataStart = reader.TokenType == JsonTokenType.StartObject ? reader.TokenStartIndex : -1;
                    reader.Skip();
                    dataEnd = reader.BytesConsumed;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (id is null)
            {
                return EventCandidate.Rejected($"id is required: a string of 1-{MaxField} characters.");
            }

            if (source is null)
            {
                return EventCandidate.Rejected($"source is required: a string of 1-{MaxField} characters.");
            }

            if (type is null)
            {
                return EventCandidate.Rejected($"type is required: a string of 1-{MaxField} characters.");
            }

            var meters = MetersOf(type);
            if (meters.Length == 0)
            {
                return EventCandidate.Rejected($"No meter counts events of type '{type}' (GET /v1/meters lists them).");
            }

            if (subject is null)
            {
                return EventCandidate.Rejected("subject is required: the tenant's id or slug.");
            }

            var data = dataStart < 0 ? ReadOnlySpan<byte>.Empty : body[(int)dataStart..(int)dataEnd];
            var after = ReasonAfterTenant(time, badTime, badData, data);
            return new EventCandidate(null, source, id, type, subject, time, dataStart < 0 ? null : Encoding.UTF8.GetString(data), after);
        }

        private Meter[] MetersOf(string type)
        {
            if (!string.Equals(type, _lastType, StringComparison.Ordinal))
            {
                _lastMeters = [.. snapshot.MetersByType[type]];
                _lastProperties = [.. _lastMeters.Select(m => Encoding.UTF8.GetBytes(m.Property ?? ""))];
                _lastType = type;
            }

            return _lastMeters;
        }

        /// <summary>Checks after the tenant lookup; the meters are those of the event's type, just looked up.</summary>
        private string? ReasonAfterTenant(DateTimeOffset time, bool badTime, bool badData, ReadOnlySpan<byte> data)
        {
            if (badTime)
            {
                return "time is an RFC 3339 timestamp, e.g. 2026-11-23T10:00:00Z.";
            }

            if (time < openFrom)
            {
                return $"The event is older than the closed billing period: events from {openFrom:yyyy-MM-dd'T'HH:mm:ss'Z'} on are accepted.";
            }

            if (time > latest)
            {
                return "The event's time is in the future.";
            }

            if (badData)
            {
                return "data is a JSON object.";
            }

            for (var m = 0; m < _lastMeters.Length; m++)
            {
                var meter = _lastMeters[m];
                if (meter.NeedsNumber && !IsNumber(data, _lastProperties[m]))
                {
                    return $"data.{meter.Property} must be a number (meter {meter.Key}).";
                }

                if (meter.Aggregation == Aggregations.UniqueCount && !TryDataValue(data, _lastProperties[m], out _))
                {
                    return $"data.{meter.Property} is required (meter {meter.Key}).";
                }
            }

            return null;
        }
    }

    /// <summary>
    /// <see cref="Text"/> for a field whose value batches mostly repeat (source, type, subject): a
    /// value spelt byte for byte like the last one read is that same (already checked) string.
    /// </summary>
    private sealed class Repeated
    {
        private byte[] _utf8 = [];
        private string? _value;

        public string? Text(ref Utf8JsonReader reader)
        {
            reader.Read();
            var isPlain = reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped && !reader.HasValueSequence;
            var utf8 = isPlain ? reader.ValueSpan : default;
            if (_value is not null && isPlain && utf8.SequenceEqual(_utf8))
            {
                return _value;
            }

            var value = EventBatchReader.Text(ref reader, moved: true);
            if (value is not null && isPlain)
            {
                (_utf8, _value) = (utf8.ToArray(), value);
            }

            return value;
        }
    }

    /// <summary>A string of 1-<see cref="MaxField"/> characters without control characters, or null; the reader moves past the value.</summary>
    /// <param name="moved">The reader is on the value already.</param>
    private static string? Text(ref Utf8JsonReader reader, bool moved = false)
    {
        if (!moved)
        {
            reader.Read();
        }

        if (reader.TokenType != JsonTokenType.String)
        {
            reader.Skip();
            return null;
        }

        var s = reader.GetString()!;
        return s.Length is > 0 and <= MaxField && !s.AsSpan().ContainsAny(ControlChars) ? s : null;
    }

    /// <summary>Same rule as <see cref="Aggregations.TryNumber"/>: a JSON number, or a string holding one.</summary>
    private static bool IsNumber(ReadOnlySpan<byte> data, ReadOnlySpan<byte> property)
    {
        if (!TryDataValue(data, property, out var value))
        {
            return false;
        }

        return value.TokenType switch
        {
            JsonTokenType.Number => value.TryGetDecimal(out _),
            JsonTokenType.String => decimal.TryParse(value.GetString(), NumberStyles.Number, CultureInfo.InvariantCulture, out _),
            _ => false,
        };
    }

    /// <summary>A reader on the value of <c>data.{property}</c> (its last occurrence); false when absent or null.</summary>
    private static bool TryDataValue(ReadOnlySpan<byte> data, ReadOnlySpan<byte> property, out Utf8JsonReader value)
    {
        value = default;
        if (data.IsEmpty)
        {
            return false;
        }

        var found = false;
        var reader = new Utf8JsonReader(data);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var match = reader.ValueTextEquals(property);
            reader.Read();
            if (match)
            {
                value = reader;
                found = reader.TokenType != JsonTokenType.Null;
            }

            reader.Skip();
        }

        return found;
    }
}
