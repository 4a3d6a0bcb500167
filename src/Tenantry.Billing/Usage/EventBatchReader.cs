using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
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
/// any event is used, so a broken body is refused whole. Text that is well-formed JSON but not
/// Unicode (bytes that are not UTF-8, or an escaped surrogate without its pair) rejects only its
/// event: stored, it would fail every later read of the meter.
/// </summary>
internal static class EventBatchReader
{
    public const int MaxField = 200;

    public const string NotUnicode =
        "The event holds text that is not Unicode: bytes that are not UTF-8, or an escaped surrogate (\\uD800-\\uDFFF) without its pair.";

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
        var utf8 = Utf8.IsValid(body); // one vectorised pass; only a body that is not UTF-8 is checked event by event

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

            var start = reader.TokenStartIndex;
            var depth = reader.CurrentDepth;
            EventCandidate candidate;
            try
            {
                candidate = checks.ReadEvent(ref reader, body);
            }
            catch (InvalidOperationException)
            {
                // Decoding a string (or checking the escapes of data) met text that is not Unicode.
                SkipRestOfObject(ref reader, depth);
                candidate = EventCandidate.Rejected(NotUnicode);
            }

            if (!utf8 && !Utf8.IsValid(body[(int)start..(int)reader.BytesConsumed]))
            {
                candidate = EventCandidate.Rejected(NotUnicode);
            }

            into.Add(candidate);
        }

        EnsureEnd(ref reader);
        if (count == 0 || count > maxBatch)
        {
            into.Clear();
            return ApiError.Validation("events", $"A batch holds 1-{maxBatch} events.");
        }

        return null;
    }

    /// <summary>Moves the reader, somewhere inside the object that starts at <paramref name="depth"/>, to its end.</summary>
    private static void SkipRestOfObject(ref Utf8JsonReader reader, int depth)
    {
        while (!(reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == depth))
        {
            if (!reader.Read())
            {
                throw new JsonException("The body ends inside an event.", null, 0, reader.BytesConsumed);
            }
        }
    }

    /// <summary>
    /// Walks a value to its end, like <see cref="Utf8JsonReader.Skip"/>, unescaping each escaped
    /// string and property name on the way: one with a lone surrogate throws
    /// <see cref="InvalidOperationException"/>. Unescaped text costs nothing more than the walk.
    /// </summary>
    private static void SkipCheckingEscapes(ref Utf8JsonReader reader)
    {
        if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
        {
            if (reader.TokenType == JsonTokenType.String && reader.ValueIsEscaped)
            {
                CheckEscapes(ref reader);
            }

            return;
        }

        var depth = reader.CurrentDepth;
        while (reader.Read() && reader.CurrentDepth > depth)
        {
            if (reader.ValueIsEscaped)
            {
                CheckEscapes(ref reader);
            }
        }
    }

    private static void CheckEscapes(ref Utf8JsonReader reader)
    {
        var length = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        byte[]? rented = null;
        var buffer = length <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            reader.CopyString(buffer);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
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

            // Property names are matched after unescaping; a field given twice rejects the event (which one counts would be a guess).
            string? repeated = null;
            var seen = 0;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    repeated ??= Repeat(ref seen, 1, "id");
                    id = Text(ref reader);
                }
                else if (reader.ValueTextEquals("source"u8))
                {
                    repeated ??= Repeat(ref seen, 2, "source");
                    source = _sources.Text(ref reader);
                }
                else if (reader.ValueTextEquals("type"u8))
                {
                    repeated ??= Repeat(ref seen, 4, "type");
                    type = _types.Text(ref reader);
                }
                else if (reader.ValueTextEquals("subject"u8))
                {
                    repeated ??= Repeat(ref seen, 8, "subject");
                    subject = _subjects.Text(ref reader);
                }
                else if (reader.ValueTextEquals("time"u8))
                {
                    repeated ??= Repeat(ref seen, 16, "time");
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
                    repeated ??= Repeat(ref seen, 32, "data");
                    reader.Read();
                    badData = reader.TokenType is not (JsonTokenType.Null or JsonTokenType.StartObject);
                    dataStart = reader.TokenType == JsonTokenType.StartObject ? reader.TokenStartIndex : -1;
                    SkipCheckingEscapes(ref reader);
                    dataEnd = reader.BytesConsumed;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (repeated is not null)
            {
                return EventCandidate.Rejected($"The property '{repeated}' appears more than once; each property may be given once.");
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

        /// <summary>Marks a field as read; its name when it was read before.</summary>
        private static string? Repeat(ref int seen, int bit, string name)
        {
            var before = (seen & bit) != 0;
            seen |= bit;
            return before ? name : null;
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
                var reason = meter.NeedsNumber ? NumberReason(meter, data, _lastProperties[m])
                    : meter.Aggregation == Aggregations.UniqueCount ? UniqueValueReason(meter, data, _lastProperties[m])
                    : null;
                if (reason is not null)
                {
                    return reason;
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

    /// <summary>
    /// Null when <c>data.{property}</c> is a value a sum, max or latest meter can bill: a JSON number
    /// from 0 to <see cref="Aggregations.MaxValue"/>. A negative value would lower the bill, a
    /// numeric string was never documented, and a larger one could overflow an invoice.
    /// </summary>
    private static string? NumberReason(Meter meter, ReadOnlySpan<byte> data, ReadOnlySpan<byte> property)
    {
        if (!TryDataValue(data, property, out var value))
        {
            return $"data.{meter.Property} is required: a JSON number from 0 to {Aggregations.MaxValueText} (meter {meter.Key}).";
        }

        if (value.TokenType != JsonTokenType.Number)
        {
            return $"data.{meter.Property} must be a JSON number (not a string or other value) from 0 to {Aggregations.MaxValueText} (meter {meter.Key}).";
        }

        return value.TryGetDecimal(out var number) && number >= 0 && number <= Aggregations.MaxValue
            ? null
            : $"data.{meter.Property} must be a number from 0 to {Aggregations.MaxValueText} (meter {meter.Key}).";
    }

    /// <summary>Null when <c>data.{property}</c> is a value a unique_count meter counts: a string of 1-<see cref="MaxField"/> characters, or a number (compared by its text).</summary>
    private static string? UniqueValueReason(Meter meter, ReadOnlySpan<byte> data, ReadOnlySpan<byte> property)
    {
        var ok = TryDataValue(data, property, out var value) && value.TokenType switch
        {
            JsonTokenType.Number => true,
            JsonTokenType.String => (value.ValueIsEscaped || value.HasValueSequence ? value.GetString()!.Length : Encoding.UTF8.GetCharCount(value.ValueSpan)) is > 0 and <= MaxField,
            _ => false,
        };
        return ok ? null : $"data.{meter.Property} is required: a string of 1-{MaxField} characters or a number (meter {meter.Key}).";
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
