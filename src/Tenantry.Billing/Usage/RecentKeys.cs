using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace Tenantry.Billing.Usage;

/// <summary>
/// Hashes of (source, id) keys this process has recently seen stored, in a fixed table of 2^bits
/// slots in buckets of <see cref="Ways"/>: a key goes first in its bucket and pushes the bucket's
/// oldest out, so a key stays until that many later keys fell into its bucket. (With single slots
/// a recent key was often overwritten once the table had filled: in the benchmark one group in 60
/// met a stored copy it did not know of.) Only a hint for choosing an insert:
/// a key found here is certainly stored already or a hash collision, one not found may still be
/// stored (before a restart, by another replica, or pushed out) — the unique key decides. Writers
/// share it without locks: a slot is one 64-bit word, read and written whole (two writers adding to
/// one bucket at once may lose a key, which only sends a later copy the slower way).
/// </summary>
internal sealed class RecentKeys(int bits)
{
    private const int Ways = 4;

    private readonly ulong[] _slots = new ulong[1 << bits];

    /// <summary>
    /// 64 bits of the key (XXH3 of its UTF-16 text), the same in every process: replicas sort a
    /// group's keys by it, so they take their key locks in one order.
    /// </summary>
    public static ulong Hash(string source, string id) =>
        XxHash3.HashToUInt64(MemoryMarshal.AsBytes(id.AsSpan()), (long)XxHash3.HashToUInt64(MemoryMarshal.AsBytes(source.AsSpan())));

    /// <summary>Which of <paramref name="writers"/> owns the key (from bits the slot does not use).</summary>
    public static int Share(ulong hash, int writers) => (int)((uint)(hash >> 32) % (uint)writers);

    public bool Contains(ulong hash)
    {
        var stamp = Stamp(hash);
        var bucket = Bucket(hash);
        for (var w = 0; w < Ways; w++)
        {
            if (Volatile.Read(ref _slots[bucket + w]) == stamp)
            {
                return true;
            }
        }

        return false;
    }

    public void Add(ulong hash)
    {
        if (Contains(hash))
        {
            return;
        }

        var bucket = Bucket(hash);
        for (var w = Ways - 1; w > 0; w--)
        {
            Volatile.Write(ref _slots[bucket + w], Volatile.Read(ref _slots[bucket + w - 1]));
        }

        Volatile.Write(ref _slots[bucket], Stamp(hash));
    }

    private int Bucket(ulong hash) => (int)(hash & (ulong)(_slots.Length - 1)) & ~(Ways - 1);

    /// <summary>Never 0, the empty slot.</summary>
    private static ulong Stamp(ulong hash) => hash | 1;
}
