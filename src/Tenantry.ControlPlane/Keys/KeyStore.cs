using System.Xml.Linq;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Keys;

/// <summary>
/// The key ring's tables in the control-plane store: the current key of each name (sealed with the master
/// key), the keys a rotation replaced, kept until every token they signed has expired, and the Data
/// Protection key ring (each key's XML sealed by <see cref="MasterKeyXmlEncryptor"/>).
/// </summary>
internal static class KeyStore
{
    /// <summary>The channel a rotation notifies on a PostgreSQL store, so every replica reloads its ring.</summary>
    public const string Channel = "tenantry_keys";

    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Keys", """

        CREATE TABLE IF NOT EXISTS key_ring (
            name TEXT PRIMARY KEY,
            sealed_key TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

        CREATE TABLE IF NOT EXISTS key_ring_retiring (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            sealed_key TEXT NOT NULL,
            created_at TEXT NOT NULL,
            superseded_at TEXT NOT NULL,
            retires_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS key_ring_retiring_name ON key_ring_retiring(name, retires_at);

        CREATE TABLE IF NOT EXISTS data_protection_keys (
            friendly_name TEXT PRIMARY KEY,
            sealed_xml TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """);

    /// <summary>
    /// The sealed key named <paramref name="name"/>: the stored one, or <paramref name="create"/>'s inserted
    /// if absent and read back, so replicas starting at once on an empty store all end with the same key.
    /// </summary>
    public static async Task<string> GetOrCreateAsync(IControlPlaneDatabase db, string name, Func<string> create, DateTimeOffset now, CancellationToken cancellationToken) =>
        (await GetOrCreateRowAsync(db, name, create, now, cancellationToken)).Sealed;

    /// <summary>As <see cref="GetOrCreateAsync"/>, with the key's creation time.</summary>
    public static async Task<SealedRow> GetOrCreateRowAsync(IControlPlaneDatabase db, string name, Func<string> create, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (await FindAsync(db, name, cancellationToken) is { } existing)
        {
            return existing;
        }

        var sealedKey = create();
        await db.WriteAsync(
            (c, tx) => c.ExecuteAsync(
                "INSERT INTO key_ring (name, sealed_key, created_at) VALUES (@name, @key, @now) ON CONFLICT (name) DO NOTHING",
                tx, ("@name", name), ("@key", sealedKey), ("@now", now)),
            cancellationToken);
        return await FindAsync(db, name, cancellationToken) ?? throw new InvalidOperationException($"The key '{name}' vanished as it was stored.");
    }

    /// <summary>The keys rotations replaced under <paramref name="name"/>, newest first (retired ones too, until pruned).</summary>
    public static Task<List<RetiringRow>> RetiringAsync(IControlPlaneDatabase db, string name, CancellationToken cancellationToken) =>
        db.ReadAsync(
            c => c.QueryAsync(
                "SELECT sealed_key, created_at, superseded_at, retires_at FROM key_ring_retiring WHERE name = @name ORDER BY superseded_at DESC",
                null,
                r => new RetiringRow(r.GetString(0), r.ReadTime(1), r.ReadTime(2), r.ReadTime(3)),
                ("@name", name)),
            cancellationToken);

    /// <summary>
    /// Replaces the current keys in one transaction: each swap happens only if the row still holds the sealed value
    /// the caller read (another replica rotating at the same moment wins, and no name ever has two current keys); the
    /// replaced key moves to <c>key_ring_retiring</c> until <paramref name="retiresAt"/>. The names swapped are returned.
    /// </summary>
    public static Task<List<string>> RotateAsync(
        IControlPlaneDatabase db, IReadOnlyList<Swap> swaps, DateTimeOffset now, DateTimeOffset retiresAt, Func<IReadOnlyList<string>, AuditEvent> audit, CancellationToken cancellationToken) =>
        db.WriteAsync(
            async (c, tx) =>
            {
                var swapped = new List<string>();
                foreach (var swap in swaps)
                {
                    var changed = await c.ExecuteAsync(
                        "UPDATE key_ring SET sealed_key = @new, created_at = @now WHERE name = @name AND sealed_key = @old",
                        tx, ("@name", swap.Name), ("@new", swap.NewSealed), ("@old", swap.Current.Sealed), ("@now", now));
                    if (changed != 1)
                    {
                        continue;
                    }

                    await c.ExecuteAsync(
                        "INSERT INTO key_ring_retiring (id, name, sealed_key, created_at, superseded_at, retires_at) VALUES (@id, @name, @key, @created, @now, @retires)",
                        tx, ("@id", Guid.CreateVersion7()), ("@name", swap.Name), ("@key", swap.Current.Sealed), ("@created", swap.Current.Created), ("@now", now), ("@retires", retiresAt));
                    if (swap.Next is { } next)
                    {
                        await c.ExecuteAsync(
                            "INSERT INTO key_ring (name, sealed_key, created_at) VALUES (@name, @key, @now) ON CONFLICT (name) DO UPDATE SET sealed_key = excluded.sealed_key, created_at = excluded.created_at",
                            tx, ("@name", next.Name), ("@key", next.Sealed), ("@now", now));
                    }

                    swapped.Add(swap.Name);
                }

                if (swapped.Count > 0)
                {
                    // Retired keys are listed for a month after they no longer validate, then forgotten.
                    await c.ExecuteAsync("DELETE FROM key_ring_retiring WHERE retires_at < @before", tx, ("@before", now - TimeSpan.FromDays(30)));
                    await AuditLog.AppendAsync(c, tx, audit(swapped));
                    if (db.Engine == "postgresql")
                    {
                        await c.ExecuteAsync($"SELECT pg_notify('{Channel}', 'rotated')", tx);
                    }
                }

                return swapped;
            },
            cancellationToken);

    private static async Task<SealedRow?> FindAsync(IControlPlaneDatabase db, string name, CancellationToken cancellationToken) =>
        (await db.ReadAsync(
            c => c.QueryAsync("SELECT sealed_key, created_at FROM key_ring WHERE name = @name", null, r => new SealedRow(r.GetString(0), r.ReadTime(1)), ("@name", name)),
            cancellationToken)).FirstOrDefault();

    public static Task<List<string>> DataProtectionKeysAsync(IControlPlaneDatabase db) =>
        db.ReadAsync(c => c.QueryAsync("SELECT sealed_xml FROM data_protection_keys ORDER BY created_at, friendly_name", null, r => r.GetString(0)));

    public static Task AddDataProtectionKeyAsync(IControlPlaneDatabase db, string friendlyName, XElement element, DateTimeOffset now) =>
        db.WriteAsync((c, tx) => c.ExecuteAsync(
            "INSERT INTO data_protection_keys (friendly_name, sealed_xml, created_at) VALUES (@name, @xml, @now) ON CONFLICT (friendly_name) DO NOTHING",
            tx, ("@name", friendlyName), ("@xml", element.ToString(SaveOptions.DisableFormatting)), ("@now", now)));

    /// <summary>A current key as stored: its sealed value (also the version a rotation compares) and creation time.</summary>
    public sealed record SealedRow(string Sealed, DateTimeOffset Created);

    /// <summary>A key a rotation replaced.</summary>
    public sealed record RetiringRow(string Sealed, DateTimeOffset Created, DateTimeOffset SupersededAt, DateTimeOffset RetiresAt);

    /// <summary>One name's rotation: from <see cref="Current"/> to <see cref="NewSealed"/>, and the name's next key if it keeps one.</summary>
    public sealed record Swap(string Name, SealedRow Current, string NewSealed, (string Name, string Sealed)? Next);
}
