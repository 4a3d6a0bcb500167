namespace Tenantry.ControlPlane.Billing.Usage;

/// <summary>
/// Hashes of (source, id) keys this process has recently seen stored, in a fixed table of
/// 2^bits slots (a key overwrites whichever key had its slot). Only a hint for choosing an insert:
/// a key found here is certainly stored already or a hash collision, one not found may still be
/// stored (before a restart, by another replica, or pushed out) — the unique key decides. Writers
/// share it without locks: a slot is one 64-bit word, read and written whole.
/// </summary>
internal sealed class RecentKeys(int bits)
{
    private readonly ulong[] _slots = new ulong[1 << bits];

    /// <summary>64 bits of the key, from the process's randomised string hashes.</summary>
    public static ulong Hash(string source, string id)
    {
        var s = source.GetHashCode(StringComparison.Ordinal);
        var i = id.GetHashCode(StringComparison.Ordinal);
        return ((ulong)(uint)HashCode.Combine(s, i) << 32) | (uint)HashCode.Combine(i, s, 1);
    }

    /// <summary>Which of <paramref name="writers"/> owns the key (from bits the slot does not use).</summary>
    public static int Share(ulong hash, int writers) => (int)((uint)(hash >> 32) % (uint)writers);

    public bool Contains(ulong hash) => Volatile.Read(ref _slots[Slot(hash)]) == Stamp(hash);

    public void Add(ulong hash) => Volatile.Write(ref _slots[Slot(hash)], Stamp(hash));

    private int Slot(ulong hash) => (int)(hash & (ulong)(_slots.Length - 1));

    /// <summary>Never 0, the empty slot.</summary>
    private static ulong Stamp(ulong hash) => hash | 1;
}
