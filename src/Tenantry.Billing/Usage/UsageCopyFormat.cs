using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Npgsql;

namespace Tenantry.Billing.Usage;

/// <summary>
/// Writes usage events as PostgreSQL's binary <c>COPY</c> format straight into a pooled buffer and
/// sends it in 64 KB writes on Npgsql's raw copy stream: per row a field count, then each field as a
/// length and its bytes (int8 and timestamptz big-endian, uuid in RFC 4122 order, text as UTF-8).
/// Npgsql's own importer resolves a converter and runs an async write per field, which cost the
/// host ~0.9 µs per event at 128 clients (4 % of all the machine's CPU in a profile).
/// </summary>
internal static class UsageCopyFormat
{
    /// <summary>The columns in the order each row writes them.</summary>
    private const string Copy = "COPY usage_events (seq, source, id, tenant_id, type, time, data) FROM STDIN (FORMAT BINARY)";

    private const int ChunkBytes = 64 * 1024;
    private const short FieldCount = 7;

    /// <summary>"PGCOPY\n\377\r\n\0", then flags and header extension length (0 and 0).</summary>
    private static readonly byte[] Header = [.. "PGCOPY\n"u8, 0xFF, (byte)'\r', (byte)'\n', 0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// <summary>PostgreSQL's epoch for timestamps.</summary>
    private static readonly long PostgresEpochTicks = new DateTime(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc).Ticks;

    /// <summary>
    /// Copies the events at <paramref name="rows"/>, in that order, with their arrival numbers, into
    /// <c>usage_events</c> in the open transaction: the server adds them to the heap a page at a time
    /// (one WAL record per page, no executor per row), then to the indexes. A stored copy of one of
    /// them fails the copy, and with it the transaction, on the primary key.
    /// </summary>
    public static async Task CopyAsync(NpgsqlConnection c, IReadOnlyList<UsageEvent> events, long[] seqs, List<int> rows)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        var stream = await c.BeginRawBinaryCopyAsync(Copy);
        try
        {
            Header.CopyTo(buffer, 0);
            var used = Header.Length;
            foreach (var i in rows)
            {
                var e = events[i];
                var size = RowSize(e);
                if (buffer.Length - used < size)
                {
                    await stream.WriteAsync(buffer.AsMemory(0, used));
                    used = 0;
                    if (buffer.Length < size)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = ArrayPool<byte>.Shared.Rent(size);
                    }
                }

                used += WriteRow(buffer.AsSpan(used), e, seqs[i]);
            }

            if (buffer.Length - used < sizeof(short))
            {
                await stream.WriteAsync(buffer.AsMemory(0, used));
                used = 0;
            }

            BinaryPrimitives.WriteInt16BigEndian(buffer.AsSpan(used), -1); // the trailer
            await stream.WriteAsync(buffer.AsMemory(0, used + sizeof(short)));
        }
        catch
        {
            // Nothing of a half-written copy is kept (the transaction is rolled back anyway); the first error is the one reported.
            try
            {
                await stream.CancelAsync();
            }
            catch (Exception cancel) when (cancel is NpgsqlException or IOException or InvalidOperationException)
            {
            }

            throw;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        await stream.DisposeAsync(); // ends the copy; the server's verdict (e.g. a unique violation) is thrown here
    }

    /// <summary>PostgreSQL keeps microseconds; truncating (never rounding up) keeps the event in its period.</summary>
    public static DateTime PostgresTime(DateTimeOffset time) => new(time.UtcTicks - (time.UtcTicks % 10), DateTimeKind.Utc);

    private static int RowSize(UsageEvent e) =>
        sizeof(short) + (FieldCount * sizeof(int)) + sizeof(long) + 16 + sizeof(long)
        + Encoding.UTF8.GetByteCount(e.Source) + Encoding.UTF8.GetByteCount(e.Id) + Encoding.UTF8.GetByteCount(e.Type)
        + (e.Data is null ? 0 : Encoding.UTF8.GetByteCount(e.Data));

    private static int WriteRow(Span<byte> into, UsageEvent e, long seq)
    {
        BinaryPrimitives.WriteInt16BigEndian(into, FieldCount);
        var at = sizeof(short);
        at += Int64(into[at..], seq);
        at += Text(into[at..], e.Source);
        at += Text(into[at..], e.Id);
        BinaryPrimitives.WriteInt32BigEndian(into[at..], 16);
        e.TenantId.TryWriteBytes(into[(at + sizeof(int))..], bigEndian: true, out _);
        at += sizeof(int) + 16;
        at += Text(into[at..], e.Type);
        at += Int64(into[at..], (PostgresTime(e.Time).Ticks - PostgresEpochTicks) / 10); // microseconds since 2000
        if (e.Data is null)
        {
            BinaryPrimitives.WriteInt32BigEndian(into[at..], -1);
            at += sizeof(int);
        }
        else
        {
            at += Text(into[at..], e.Data);
        }

        return at;
    }

    private static int Text(Span<byte> into, string value)
    {
        var length = Encoding.UTF8.GetBytes(value, into[sizeof(int)..]);
        BinaryPrimitives.WriteInt32BigEndian(into, length);
        return sizeof(int) + length;
    }

    private static int Int64(Span<byte> into, long value)
    {
        BinaryPrimitives.WriteInt32BigEndian(into, sizeof(long));
        BinaryPrimitives.WriteInt64BigEndian(into[sizeof(int)..], value);
        return sizeof(int) + sizeof(long);
    }
}
