using System.Xml.Linq;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Keys;

/// <summary>
/// The key ring's tables in the control-plane store: the token issuer's keys (sealed with the master
/// key) and the Data Protection key ring (each key's XML sealed by <see cref="MasterKeyXmlEncryptor"/>).
/// </summary>
internal static class KeyStore
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Keys", """

        CREATE TABLE IF NOT EXISTS key_ring (
            name TEXT PRIMARY KEY,
            sealed_key TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

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
    public static async Task<string> GetOrCreateAsync(IControlPlaneDatabase db, string name, Func<string> create, DateTimeOffset now, CancellationToken cancellationToken)
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

    private static async Task<string?> FindAsync(IControlPlaneDatabase db, string name, CancellationToken cancellationToken) =>
        await db.ReadAsync(c => c.ScalarAsync("SELECT sealed_key FROM key_ring WHERE name = @name", null, ("@name", name)), cancellationToken) as string;

    public static Task<List<string>> DataProtectionKeysAsync(IControlPlaneDatabase db) =>
        db.ReadAsync(c => c.QueryAsync("SELECT sealed_xml FROM data_protection_keys ORDER BY created_at, friendly_name", null, r => r.GetString(0)));

    public static Task AddDataProtectionKeyAsync(IControlPlaneDatabase db, string friendlyName, XElement element, DateTimeOffset now) =>
        db.WriteAsync((c, tx) => c.ExecuteAsync(
            "INSERT INTO data_protection_keys (friendly_name, sealed_xml, created_at) VALUES (@name, @xml, @now) ON CONFLICT (friendly_name) DO NOTHING",
            tx, ("@name", friendlyName), ("@xml", element.ToString(SaveOptions.DisableFormatting)), ("@now", now)));
}
