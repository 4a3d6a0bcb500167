using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Tenantry.Health;

/// <summary>
/// A latency histogram with fixed, logarithmically spaced buckets (DDSketch's logarithmic mapping):
/// bucket <c>i</c> holds the latencies in <c>(γ^(i-1), γ^i]</c> milliseconds, with
/// <c>γ = (1 + α) / (1 - α)</c> and <c>α = </c><see cref="RelativeAccuracy"/>. A quantile is read as
/// the middle of its bucket, <c>2γ^i / (γ + 1)</c>, which is within <c>α</c> (2 %) of every latency
/// in the bucket. The buckets are the same everywhere, so sketches merge by adding counts: the
/// merge of two gateways' sketches, or of sixty minutes into an hour, is exactly the sketch of all
/// their latencies together. Latencies under <see cref="MinMs"/> count in its bucket, and over
/// <see cref="MaxMs"/> in its bucket.
/// </summary>
[JsonConverter(typeof(LatencySketchJsonConverter))]
public sealed class LatencySketch
{
    /// <summary>α: a quantile read from the sketch is within this share of the true latency at that rank.</summary>
    public const double RelativeAccuracy = 0.02;

    /// <summary>The smallest latency told apart from smaller ones: 1 µs.</summary>
    public const double MinMs = 0.001;

    /// <summary>The largest latency told apart from larger ones: one hour.</summary>
    public const double MaxMs = 3_600_000;

    /// <summary>The bucket growth factor γ.</summary>
    public static readonly double Gamma = (1 + RelativeAccuracy) / (1 - RelativeAccuracy);

    private const byte FormatVersion = 1;

    private static readonly double LogGamma = Math.Log(Gamma);

    /// <summary>The index of the lowest bucket (latencies up to <see cref="MinMs"/>).</summary>
    public static readonly int MinIndex = RawIndex(MinMs);

    /// <summary>The index of the highest bucket (latencies from just under <see cref="MaxMs"/> up).</summary>
    public static readonly int MaxIndex = RawIndex(MaxMs);

    /// <summary>How many buckets there are.</summary>
    public static readonly int BucketCount = MaxIndex - MinIndex + 1;

    // Dense over the buckets in use: _counts[k] is bucket _offset + k.
    private long[] _counts = [];
    private int _offset;

    /// <summary>Latencies counted.</summary>
    public long Count { get; private set; }

    /// <summary>True when nothing is counted.</summary>
    public bool IsEmpty => Count == 0;

    /// <summary>The bucket a latency of <paramref name="milliseconds"/> falls in.</summary>
    public static int IndexOf(double milliseconds) =>
        double.IsNaN(milliseconds) || milliseconds <= MinMs ? MinIndex : milliseconds >= MaxMs ? MaxIndex : Math.Clamp(RawIndex(milliseconds), MinIndex, MaxIndex);

    /// <summary>The latency a bucket stands for: within <see cref="RelativeAccuracy"/> of any latency in it.</summary>
    public static double ValueOf(int index) => 2 * Math.Pow(Gamma, index) / (Gamma + 1);

    /// <summary>Counts one latency.</summary>
    public void Add(double milliseconds) => AddToBucket(IndexOf(milliseconds), 1);

    /// <summary>Counts <paramref name="count"/> latencies in bucket <paramref name="index"/>.</summary>
    public void AddToBucket(int index, long count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(index, MinIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, MaxIndex);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0)
        {
            return;
        }

        Grow(index, index);
        _counts[index - _offset] += count;
        Count += count;
    }

    /// <summary>Adds every count of <paramref name="other"/> to this sketch (exact: the buckets are the same).</summary>
    public void Merge(LatencySketch other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.IsEmpty)
        {
            return;
        }

        var (low, high) = other.Range();
        Grow(low, high);
        for (var i = low; i <= high; i++)
        {
            _counts[i - _offset] += other._counts[i - other._offset];
        }

        Count += other.Count;
    }

    /// <summary>
    /// The latency at quantile <paramref name="q"/> (0 to 1), in milliseconds: within
    /// <see cref="RelativeAccuracy"/> of the latency of rank <c>⌊q·(n−1)⌋</c> (from 0) among the
    /// <c>n</c> counted, sorted; null when the sketch is empty.
    /// </summary>
    public double? Quantile(double q)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(q, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(q, 1);
        if (Count == 0)
        {
            return null;
        }

        var rank = Math.Floor(q * (Count - 1));
        long seen = 0;
        for (var k = 0; k < _counts.Length; k++)
        {
            seen += _counts[k];
            if (seen > rank)
            {
                return ValueOf(k + _offset);
            }
        }

        return ValueOf(_offset + _counts.Length - 1);
    }

    /// <summary>The non-empty buckets, lowest first.</summary>
    public IEnumerable<(int Index, long Count)> Buckets()
    {
        for (var k = 0; k < _counts.Length; k++)
        {
            if (_counts[k] != 0)
            {
                yield return (k + _offset, _counts[k]);
            }
        }
    }

    /// <summary>
    /// The sketch in its stored form: a version byte, the number of non-empty buckets, then for each,
    /// lowest first, the distance from the previous one (the first: from <see cref="MinIndex"/>) and
    /// its count, all as unsigned LEB128 varints. A few hundred bytes at most for a minute's traffic.
    /// </summary>
    public byte[] ToBytes()
    {
        var buffer = new ArrayBufferWriter<byte>(16 + (_counts.Length * 4));
        var span = buffer.GetSpan(1);
        span[0] = FormatVersion;
        buffer.Advance(1);
        var buckets = Buckets().ToList();
        WriteVarint(buffer, (ulong)buckets.Count);
        var previous = MinIndex;
        foreach (var (index, count) in buckets)
        {
            WriteVarint(buffer, (ulong)(index - previous));
            WriteVarint(buffer, (ulong)count);
            previous = index;
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads the form <see cref="ToBytes"/> writes; false (and why) for anything else.</summary>
    public static bool TryRead(ReadOnlySpan<byte> bytes, out LatencySketch sketch, out string? error)
    {
        sketch = new LatencySketch();
        error = null;
        if (bytes.Length == 0 || bytes[0] != FormatVersion)
        {
            error = "It does not start with the sketch format's version (1).";
            return false;
        }

        var position = 1;
        if (!ReadVarint(bytes, ref position, out var buckets) || buckets > (ulong)BucketCount)
        {
            error = $"The number of buckets is missing or over {BucketCount}.";
            return false;
        }

        var index = (long)MinIndex;
        for (ulong b = 0; b < buckets; b++)
        {
            if (!ReadVarint(bytes, ref position, out var step) || !ReadVarint(bytes, ref position, out var count))
            {
                error = "It ends inside a bucket.";
                return false;
            }

            index += (long)Math.Min(step, (ulong)BucketCount + 1);
            if ((b > 0 && step == 0) || index > MaxIndex || count == 0 || count > long.MaxValue / 2 || sketch.Count > (long.MaxValue / 2) - (long)count)
            {
                error = "A bucket is out of order, out of range, empty or too large.";
                return false;
            }

            sketch.AddToBucket((int)index, (long)count);
        }

        if (position != bytes.Length)
        {
            error = "Bytes follow the last bucket.";
            return false;
        }

        return true;
    }

    /// <summary>Reads the form <see cref="ToBytes"/> writes.</summary>
    public static LatencySketch FromBytes(ReadOnlySpan<byte> bytes) =>
        TryRead(bytes, out var sketch, out var error) ? sketch : throw new FormatException("Not a latency sketch: " + error);

    private static int RawIndex(double milliseconds) => (int)Math.Ceiling(Math.Log(milliseconds) / LogGamma);

    private (int Low, int High) Range()
    {
        var low = 0;
        while (_counts[low] == 0)
        {
            low++;
        }

        var high = _counts.Length - 1;
        while (_counts[high] == 0)
        {
            high--;
        }

        return (low + _offset, high + _offset);
    }

    private void Grow(int low, int high)
    {
        if (_counts.Length == 0)
        {
            _offset = low;
            _counts = new long[high - low + 1];
            return;
        }

        var currentHigh = _offset + _counts.Length - 1;
        if (low >= _offset && high <= currentHigh)
        {
            return;
        }

        var newLow = Math.Min(low, _offset);
        var newHigh = Math.Max(high, currentHigh);
        var counts = new long[newHigh - newLow + 1];
        Array.Copy(_counts, 0, counts, _offset - newLow, _counts.Length);
        _counts = counts;
        _offset = newLow;
    }

    private static void WriteVarint(ArrayBufferWriter<byte> buffer, ulong value)
    {
        var span = buffer.GetSpan(10);
        var n = 0;
        while (value >= 0x80)
        {
            span[n++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[n++] = (byte)value;
        buffer.Advance(n);
    }

    private static bool ReadVarint(ReadOnlySpan<byte> bytes, ref int position, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (position >= bytes.Length)
            {
                return false;
            }

            var b = bytes[position++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>A sketch in JSON: the base64 of its stored form (<see cref="LatencySketch.ToBytes"/>).</summary>
public sealed class LatencySketchJsonConverter : JsonConverter<LatencySketch>
{
    public override LatencySketch Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String || !reader.TryGetBytesFromBase64(out var bytes))
        {
            throw new JsonException("A latency sketch is a base64 string.");
        }

        return LatencySketch.TryRead(bytes, out var sketch, out var error) ? sketch : throw new JsonException("Not a latency sketch: " + error);
    }

    public override void Write(Utf8JsonWriter writer, LatencySketch value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        writer.WriteBase64StringValue(value.ToBytes());
    }
}

/// <summary>
/// One tenant's traffic in one minute as one gateway saw it since its last flush: counts to add to
/// the minute's row. <see cref="Status4xx"/> counts every 4xx (429s included, and requests whose client
/// went away before the answer, as 499); <see cref="Throttled"/> counts the 429s alone.
/// </summary>
public sealed record TenantHealthSample(Guid TenantId, DateTimeOffset Minute, long Requests, long Status4xx, long Status5xx, long Throttled, LatencySketch Latency)
{
    /// <summary>The minute as whole minutes since the Unix epoch, the store's key.</summary>
    [JsonIgnore]
    public long UnixMinute => Minute.ToUnixTimeSeconds() / 60;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{TenantId} {Minute:u}: {Requests} requests");
}

/// <summary>
/// What a gateway flushes at once. <see cref="Id"/> is new for each batch and kept when the batch
/// is sent again after an unknown outcome (a timeout), so the store counts it once.
/// </summary>
public sealed record TenantHealthBatch(string Id, IReadOnlyList<TenantHealthSample> Samples);
