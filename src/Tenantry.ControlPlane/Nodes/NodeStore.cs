using System.Data.Common;
using System.Globalization;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Nodes;

/// <summary>
/// A compute node as the store records it. <see cref="Epoch"/> grows each time the node registers and each
/// time another node declares it dead, so a node that comes back learns from its next heartbeat that what
/// it ran was handed to others.
/// </summary>
public sealed record NodeRecord(string Name, string Address, int Capacity, long Epoch, string Status, DateTimeOffset HeartbeatAt, DateTimeOffset StartedAt)
{
    /// <summary>The status of a node that stops gracefully and hands its instances over.</summary>
    public const string Leaving = "leaving";
}

/// <summary>The nodes table: one row per compute node, its heartbeat and its fencing epoch. Callers own the transaction.</summary>
internal static class NodeStore
{
    public const string Live = "live";
    public const string Dead = "dead";
    public const string Leaving = "leaving";

    public static SchemaPart Schema { get; } = SchemaPart.Portable("Nodes", """

        -- Nodes (Nodes/): the hosts that run app instances, their heartbeat and fencing epoch.
        CREATE TABLE IF NOT EXISTS nodes (
            name TEXT PRIMARY KEY,
            address TEXT NOT NULL,
            capacity INTEGER NOT NULL,
            epoch BIGINT NOT NULL,
            status TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            started_at TEXT NOT NULL
        );
        """);

    private const string Columns = "name, address, capacity, epoch, status, heartbeat_at, started_at";

    public static Task<List<NodeRecord>> ListAsync(DbConnection c, DbTransaction? tx) =>
        c.QueryAsync($"SELECT {Columns} FROM nodes ORDER BY name", tx, Read);

    /// <summary>Registers the node (again): live, a new epoch, fresh heartbeat. Returns the epoch.</summary>
    public static async Task<long> RegisterAsync(DbConnection c, DbTransaction tx, string name, string address, int capacity, DateTimeOffset now)
    {
        var updated = await c.ExecuteAsync(
            "UPDATE nodes SET address = @address, capacity = @capacity, epoch = epoch + 1, status = @live, heartbeat_at = @now, started_at = @now WHERE name = @name",
            tx, ("@name", name), ("@address", address), ("@capacity", capacity), ("@live", Live), ("@now", now));
        if (updated == 0)
        {
            await c.ExecuteAsync(
                $"INSERT INTO nodes ({Columns}) VALUES (@name, @address, @capacity, 1, @live, @now, @now)",
                tx, ("@name", name), ("@address", address), ("@capacity", capacity), ("@live", Live), ("@now", now));
        }

        return Convert.ToInt64(await c.ScalarAsync("SELECT epoch FROM nodes WHERE name = @name", tx, ("@name", name)), CultureInfo.InvariantCulture);
    }

    /// <summary>The heartbeat of the node at <paramref name="epoch"/>; false when another node declared it dead meanwhile (the epoch moved).</summary>
    public static async Task<bool> BeatAsync(DbConnection c, DbTransaction? tx, string name, long epoch, DateTimeOffset now) =>
        await c.ExecuteAsync(
            "UPDATE nodes SET heartbeat_at = @now WHERE name = @name AND epoch = @epoch AND status = @live",
            tx, ("@name", name), ("@epoch", epoch), ("@live", Live), ("@now", now)) == 1;

    /// <summary>Marks the node leaving (a graceful stop), if it still holds <paramref name="epoch"/>.</summary>
    public static async Task<bool> LeaveAsync(DbConnection c, DbTransaction tx, string name, long epoch) =>
        await c.ExecuteAsync(
            "UPDATE nodes SET status = @leaving WHERE name = @name AND epoch = @epoch AND status = @live",
            tx, ("@name", name), ("@epoch", epoch), ("@live", Live), ("@leaving", Leaving)) == 1;

    /// <summary>
    /// Declares the node dead and bumps its epoch, if it is still as the caller saw it (<paramref name="epoch"/>) and
    /// either leaving or silent since <paramref name="cutoff"/>. Under the store's write lock, so of two survivors
    /// exactly one wins; the node's own heartbeat, an update of the same row, is fenced by the new epoch.
    /// </summary>
    public static async Task<bool> ClaimAsync(DbConnection c, DbTransaction tx, string name, long epoch, DateTimeOffset cutoff) =>
        await c.ExecuteAsync(
            """
            UPDATE nodes SET status = @dead, epoch = epoch + 1
            WHERE name = @name AND epoch = @epoch AND (status = @leaving OR (status = @live AND heartbeat_at < @cutoff))
            """,
            tx, ("@name", name), ("@epoch", epoch), ("@dead", Dead), ("@live", Live), ("@leaving", Leaving), ("@cutoff", cutoff)) == 1;

    private static NodeRecord Read(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), Convert.ToInt32(r.GetValue(2), CultureInfo.InvariantCulture), Convert.ToInt64(r.GetValue(3), CultureInfo.InvariantCulture),
        r.GetString(4), r.ReadTime(5), r.ReadTime(6));
}
