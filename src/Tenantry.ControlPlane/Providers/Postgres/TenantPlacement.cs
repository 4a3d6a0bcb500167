using System.Data.Common;
using Tenantry.ControlPlane.Cells;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Providers.Postgres;

/// <summary>
/// Where bridge and silo tenants live. Policy: the server with the lowest share of its capacity in
/// use (so equal servers fill evenly, a bigger one takes more), ties to the first configured; a
/// full server takes no more. Only the servers of the tenant's cell are candidates (every server
/// when the cell names none). Decided once, inside the store's write lock, and remembered.
/// </summary>
internal sealed class TenantPlacement(IControlPlaneDatabase db, PostgresServers servers, CellPlacement cells, TimeProvider time)
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Providers", """

        CREATE TABLE IF NOT EXISTS tenant_placements (
            tenant_id TEXT PRIMARY KEY,
            server TEXT NOT NULL,
            isolation TEXT NOT NULL,
            placed_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS tenant_placements_server ON tenant_placements(server);
        """);

    public Task<PostgresServerInfo> PlaceAsync(TenantRef tenant, CancellationToken cancellationToken) => db.WriteAsync(
        async (c, tx) =>
        {
            if (await c.ScalarAsync("SELECT server FROM tenant_placements WHERE tenant_id = @id", tx, ("@id", tenant.Id)) is string placed)
            {
                return Resolve(placed);
            }

            var chosen = Choose(await cells.CellOfAsync(c, tx, tenant.Id), await CountsAsync(c, tx), null);
            await c.ExecuteAsync(
                "INSERT INTO tenant_placements (tenant_id, server, isolation, placed_at) VALUES (@id, @server, @isolation, @now)",
                tx, ("@id", tenant.Id), ("@server", chosen.Name), ("@isolation", tenant.Isolation.ToWire()), ("@now", time.GetUtcNow()));
            return chosen;
        },
        cancellationToken);

    /// <summary>
    /// The server a copy of the tenant would go to in <paramref name="cellName"/> (a move between cells): its current
    /// server when the cell uses it, else the cell's least used server with room. Records nothing.
    /// </summary>
    public Task<PostgresServerInfo> ChooseAsync(Guid tenantId, string cellName, CancellationToken cancellationToken) => db.ReadAsync(
        async c =>
        {
            var current = await c.ScalarAsync("SELECT server FROM tenant_placements WHERE tenant_id = @id", null, ("@id", tenantId)) as string;
            return Choose(cells.Find(cellName), await CountsAsync(c, null), current);
        },
        cancellationToken);

    /// <summary>Points the tenant's placement at another server, in the caller's transaction (a move's switch).</summary>
    public static Task SetServerAsync(DbConnection c, DbTransaction tx, Guid tenantId, string server) => c.ExecuteAsync(
        "UPDATE tenant_placements SET server = @server WHERE tenant_id = @id", tx, ("@id", tenantId), ("@server", server));

    public async Task<PostgresServerInfo?> FindAsync(Guid tenantId, CancellationToken cancellationToken) =>
        await db.ReadAsync(c => c.ScalarAsync("SELECT server FROM tenant_placements WHERE tenant_id = @id", null, ("@id", tenantId)), cancellationToken) is string name
            ? Resolve(name)
            : null;

    public Task ReleaseAsync(Guid tenantId, CancellationToken cancellationToken) =>
        db.WriteAsync((c, tx) => c.ExecuteAsync("DELETE FROM tenant_placements WHERE tenant_id = @id", tx, ("@id", tenantId)), cancellationToken);

    private static async Task<Dictionary<string, long>> CountsAsync(DbConnection c, DbTransaction? tx) =>
        (await c.QueryAsync(
            "SELECT server, COUNT(*) FROM tenant_placements GROUP BY server", tx, r => (Server: r.GetString(0), Count: Convert.ToInt64(r.GetValue(1), System.Globalization.CultureInfo.InvariantCulture))))
        .ToDictionary(x => x.Server, x => x.Count, StringComparer.Ordinal);

    /// <summary>Among the cell's servers (every server when it names none): <paramref name="current"/> when it is one, else the least used with room.</summary>
    private PostgresServerInfo Choose(Cell? cell, Dictionary<string, long> counts, string? current)
    {
        var candidates = cell is { PostgresServers.Count: > 0 }
            ? servers.All.Where(s => cell.PostgresServers.Contains(s.Name, StringComparer.Ordinal)).ToList()
            : servers.All;
        if (current is not null && candidates.FirstOrDefault(s => s.Name == current) is { } same)
        {
            return same;
        }

        var where = cell is { PostgresServers.Count: > 0 } ? $"of cell '{cell.Name}' (Tenantry:Cells:N:PostgresServers)" : "registered";
        return candidates
            .Select((s, order) => (Server: s, Order: order, Used: counts.GetValueOrDefault(s.Name)))
            .Where(x => x.Used < x.Server.Capacity)
            .OrderBy(x => (double)x.Used / x.Server.Capacity)
            .ThenBy(x => x.Order)
            .Select(x => x.Server)
            .FirstOrDefault()
            ?? throw new PermanentStepException($"Every PostgreSQL server {where} is at capacity (Tenantry:Postgres:Servers:N:Capacity); register another server or raise a capacity, then retry.");
    }

    private PostgresServerInfo Resolve(string name) =>
        servers.Find(name) ?? throw new PermanentStepException($"The tenant was placed on PostgreSQL server '{name}', which is no longer in Tenantry:Postgres:Servers.");
}
