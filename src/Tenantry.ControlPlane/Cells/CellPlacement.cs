using System.Data.Common;
using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Http;

namespace Tenantry.ControlPlane.Cells;

/// <summary>A cell as placement sees it: configured, or the implicit one (no region: it serves every region).</summary>
public sealed record Cell(string Name, string? Region, int Capacity, IReadOnlyList<string> PostgresServers);

/// <summary>A cell with the tenants it holds now.</summary>
public sealed record CellUsage(string Name, string? Region, int Capacity, long Tenants, IReadOnlyList<string> PostgresServers);

/// <summary>Where a tenant lives: its cell and the cell's region.</summary>
public sealed record Placement(string Cell, string? Region)
{
    public JsonObject ToJson() => new() { ["cell"] = Cell, ["region"] = Region };
}

/// <summary>
/// Which cell a tenant lives in. Policy: among the cells of the tenant's <c>config.region</c>
/// (every cell when it names none), the one with the lowest share of its capacity in use, ties
/// to the first configured; a full cell takes no more. Decided once, in the transaction that
/// creates the tenant, and remembered in <c>cell_tenants</c>; the PostgreSQL placement then picks
/// a server among the cell's.
/// </summary>
public sealed class CellPlacement
{
    public const string ImplicitCell = "default";

    /// <summary>The tables this feature owns, in the control-plane database.</summary>
    internal static SchemaPart Schema { get; } = SchemaPart.Portable("Cells", """

        CREATE TABLE IF NOT EXISTS cell_tenants (
            tenant_id TEXT PRIMARY KEY,
            cell TEXT NOT NULL,
            placed_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS cell_tenants_cell ON cell_tenants(cell);
        """);

    private readonly Dictionary<string, Cell> _byName;

    public CellPlacement(IOptions<CellsOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Cells = options.Value.Cells.Count == 0
            ? [new Cell(ImplicitCell, null, int.MaxValue, [])]
            : [.. options.Value.Cells.Select(c => new Cell(c.Name, c.Region, c.Capacity, [.. c.PostgresServers]))];
        _byName = Cells.ToDictionary(c => c.Name, StringComparer.Ordinal);
        Regions = [.. Cells.Where(c => c.Region is not null).Select(c => c.Region!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
    }

    /// <summary>In configuration order.</summary>
    public IReadOnlyList<Cell> Cells { get; }

    /// <summary>The regions cells serve; empty with the implicit cell (it serves every region).</summary>
    public IReadOnlyList<string> Regions { get; }

    public Cell? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The region a tenant's configuration asks for, or null; never throws on a config of any shape.</summary>
    public static string? RegionOf(JsonObject? config) =>
        config?["region"] is JsonValue value && value.TryGetValue<string>(out var region) ? region : null;

    /// <summary>
    /// The problem with <paramref name="config"/>'s region, or null: with configured cells, a region
    /// must be a string naming the region of one of them.
    /// </summary>
    public string? CheckRegion(JsonObject? config)
    {
        if (Regions.Count == 0 || config is null || !config.TryGetPropertyValue("region", out var node) || node is null)
        {
            return null;
        }

        return RegionOf(config) is { } region && Regions.Contains(region, StringComparer.Ordinal)
            ? null
            : $"Unknown region '{(node is JsonValue ? node.ToString() : node.ToJsonString())}': one of {string.Join(", ", Regions)}.";
    }

    /// <summary>Places a new tenant, in the transaction that creates it; a 422 when no cell of its region has room.</summary>
    internal async Task<(Placement? Placement, ApiError? Error)> PlaceAsync(DbConnection c, DbTransaction tx, Guid tenantId, string? region, DateTimeOffset now)
    {
        var candidates = Cells.Where(cell => region is null || cell.Region is null || cell.Region == region).ToList();
        var used = await CountsAsync(c, tx);
        var chosen = candidates
            .Select((cell, order) => (Cell: cell, Order: order, Used: used.GetValueOrDefault(cell.Name)))
            .Where(x => x.Used < x.Cell.Capacity)
            .OrderBy(x => (double)x.Used / x.Cell.Capacity)
            .ThenBy(x => x.Order)
            .Select(x => x.Cell)
            .FirstOrDefault();
        if (chosen is null)
        {
            var where = region is null ? "any cell" : $"a cell of region '{region}'";
            return (null, NoRoom($"Every cell that may hold it ({where}) is at its capacity (Tenantry:Cells:N:Capacity). Raise a capacity or add a cell of that region."));
        }

        await c.ExecuteAsync(
            "INSERT INTO cell_tenants (tenant_id, cell, placed_at) VALUES (@id, @cell, @now)",
            tx, ("@id", tenantId), ("@cell", chosen.Name), ("@now", now));
        return (new Placement(chosen.Name, chosen.Region), null);
    }

    /// <summary>A 422 when <paramref name="cell"/> holds as many tenants as its capacity allows (a move into it), else null.</summary>
    internal static async Task<ApiError?> CheckRoomAsync(DbConnection c, DbTransaction tx, Cell cell) =>
        (await CountsAsync(c, tx)).GetValueOrDefault(cell.Name) < cell.Capacity
            ? null
            : NoRoom($"Cell '{cell.Name}' is at its capacity ({cell.Capacity}, Tenantry:Cells:N:Capacity). Raise its capacity or move the tenant to another cell{(cell.Region is null ? "" : $" of region '{cell.Region}'")}.");

    /// <summary>Moves the tenant to <paramref name="cell"/>, in the caller's transaction (a move's switch).</summary>
    internal static async Task MoveAsync(DbConnection c, DbTransaction tx, Guid tenantId, string cell, DateTimeOffset now)
    {
        if (await c.ExecuteAsync("UPDATE cell_tenants SET cell = @cell, placed_at = @now WHERE tenant_id = @id", tx, ("@id", tenantId), ("@cell", cell), ("@now", now)) == 0)
        {
            await c.ExecuteAsync("INSERT INTO cell_tenants (tenant_id, cell, placed_at) VALUES (@id, @cell, @now)", tx, ("@id", tenantId), ("@cell", cell), ("@now", now));
        }
    }

    private static ApiError NoRoom(string detail) =>
        new(StatusCodes.Status422UnprocessableEntity, "no-cell-room", "No cell has room for this tenant.", detail);

    /// <summary>The cell a tenant was placed in, or null for a tenant placed before cells were kept.</summary>
    internal async Task<Cell?> CellOfAsync(DbConnection c, DbTransaction? tx, Guid tenantId) =>
        await c.ScalarAsync("SELECT cell FROM cell_tenants WHERE tenant_id = @id", tx, ("@id", tenantId)) is string name ? Find(name) : null;

    /// <summary>Every cell with the tenants it holds now (offboarded tenants free their place).</summary>
    internal async Task<List<CellUsage>> UsageAsync(DbConnection c)
    {
        var used = await CountsAsync(c, null);
        var usage = Cells.Select(cell => new CellUsage(cell.Name, cell.Region, cell.Capacity, used.GetValueOrDefault(cell.Name), cell.PostgresServers)).ToList();
        // Tenants left in a cell no longer configured still show, so none goes unseen.
        usage.AddRange(used.Where(u => !_byName.ContainsKey(u.Key)).OrderBy(u => u.Key, StringComparer.Ordinal)
            .Select(u => new CellUsage(u.Key, null, 0, u.Value, [])));
        return usage;
    }

    private static async Task<Dictionary<string, long>> CountsAsync(DbConnection c, DbTransaction? tx) =>
        (await c.QueryAsync(
            """
            SELECT ct.cell, COUNT(*) FROM cell_tenants ct JOIN tenants t ON t.id = ct.tenant_id
            WHERE t.status <> 'offboarded' GROUP BY ct.cell
            """,
            tx,
            r => (Cell: r.GetString(0), Count: Convert.ToInt64(r.GetValue(1), CultureInfo.InvariantCulture))))
        .ToDictionary(x => x.Cell, x => x.Count, StringComparer.Ordinal);
}
