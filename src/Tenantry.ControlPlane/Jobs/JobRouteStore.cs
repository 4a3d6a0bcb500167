using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Jobs;

/// <summary>
/// A rule that turns control-plane events into jobs: each event of the catalog whose subject is a
/// tenant (of <see cref="TenantId"/>, or any) and whose type matches one of <see cref="Events"/>
/// becomes a job of <see cref="JobType"/> in that tenant's queue. Events before the rule was made
/// (sequence up to <see cref="FromSequence"/>) are not routed.
/// </summary>
public sealed record JobRoute
{
    public required Guid Id { get; init; }
    public Guid? TenantId { get; init; }
    public required IReadOnlyList<string> Events { get; init; }
    public required string JobType { get; init; }
    public required long FromSequence { get; init; }
    public required long CreatedAt { get; init; }
}

/// <summary>
/// The routes' tables (in the Jobs part of the schema): <c>job_routes</c>, and <c>job_route_cursor</c>,
/// the one row holding the last outbox sequence the router has turned into jobs. The cursor moves in
/// the transaction that inserts the jobs, so each event is routed once.
/// </summary>
internal static class JobRouteStore
{
    private const string Cursor = "outbox";
    private const string Columns = "id, tenant_id, events, job_type, from_seq, created_at";

    public static string Ddl(string integer) => $"""

        CREATE TABLE IF NOT EXISTS job_routes (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NULL,
            events TEXT NOT NULL,
            job_type TEXT NOT NULL,
            from_seq {integer} NOT NULL,
            created_at {integer} NOT NULL
        );
        CREATE INDEX IF NOT EXISTS job_routes_tenant ON job_routes (tenant_id);
        CREATE TABLE IF NOT EXISTS job_route_cursor (
            name TEXT PRIMARY KEY,
            seq {integer} NOT NULL
        );
        """;

    public static Task<int> InsertAsync(DbConnection c, DbTransaction tx, JobRoute route) => c.ExecuteAsync(
        "INSERT INTO job_routes (id, tenant_id, events, job_type, from_seq, created_at) VALUES (@id, @t, @events, @type, @from, @now)",
        tx, ("@id", route.Id), ("@t", route.TenantId), ("@events", JsonSerializer.Serialize(route.Events)), ("@type", route.JobType), ("@from", route.FromSequence), ("@now", route.CreatedAt));

    /// <summary>Every route, or those of one tenant (its own, not the fleet-wide ones).</summary>
    public static Task<List<JobRoute>> ListAsync(DbConnection c, DbTransaction? tx, Guid? tenantId) => tenantId is { } t
        ? c.QueryAsync($"SELECT {Columns} FROM job_routes WHERE tenant_id = @t ORDER BY created_at, id", tx, Read, ("@t", t))
        : c.QueryAsync($"SELECT {Columns} FROM job_routes ORDER BY created_at, id", tx, Read);

    public static async Task<JobRoute?> GetAsync(DbConnection c, DbTransaction? tx, Guid id) =>
        (await c.QueryAsync($"SELECT {Columns} FROM job_routes WHERE id = @id", tx, Read, ("@id", id))).SingleOrDefault();

    public static Task<int> DeleteAsync(DbConnection c, DbTransaction tx, Guid id) =>
        c.ExecuteAsync("DELETE FROM job_routes WHERE id = @id", tx, ("@id", id));

    /// <summary>Routes of an offboarded tenant go with its queue.</summary>
    public static Task<int> DeleteTenantAsync(DbConnection c, DbTransaction tx, Guid tenantId) =>
        c.ExecuteAsync("DELETE FROM job_routes WHERE tenant_id = @t", tx, ("@t", tenantId));

    /// <summary>The cursor, or null before the router's first pass.</summary>
    public static async Task<long?> CursorAsync(DbConnection c, DbTransaction? tx, string lockRow) =>
        await c.ScalarAsync($"SELECT seq FROM job_route_cursor WHERE name = @name{lockRow}", tx, ("@name", Cursor)) is { } value
            ? Convert.ToInt64(value, CultureInfo.InvariantCulture)
            : null;

    public static Task StartCursorAsync(DbConnection c, DbTransaction tx, long seq) => c.ExecuteAsync(
        "INSERT INTO job_route_cursor (name, seq) VALUES (@name, @seq) ON CONFLICT (name) DO NOTHING", tx, ("@name", Cursor), ("@seq", seq));

    public static Task MoveCursorAsync(DbConnection c, DbTransaction tx, long seq) => c.ExecuteAsync(
        "UPDATE job_route_cursor SET seq = @seq WHERE name = @name", tx, ("@name", Cursor), ("@seq", seq));

    /// <summary>The lowest sequence a route starts after, or null with no routes.</summary>
    public static async Task<long?> EarliestAsync(DbConnection c, DbTransaction? tx) =>
        await c.ScalarAsync("SELECT MIN(from_seq) FROM job_routes", tx) is { } value ? Convert.ToInt64(value, CultureInfo.InvariantCulture) : null;

    private static JobRoute Read(DbDataReader r) => new()
    {
        Id = r.ReadGuid(0),
        TenantId = r.ReadGuidOrNull(1),
        Events = JsonSerializer.Deserialize<List<string>>(r.GetString(2)) ?? [],
        JobType = r.GetString(3),
        FromSequence = Convert.ToInt64(r.GetValue(4), CultureInfo.InvariantCulture),
        CreatedAt = Convert.ToInt64(r.GetValue(5), CultureInfo.InvariantCulture),
    };
}
