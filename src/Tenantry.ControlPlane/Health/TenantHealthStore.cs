using System.Data.Common;
using System.Globalization;
using Tenantry.ControlPlane.Database;
using Tenantry.Health;

namespace Tenantry.ControlPlane.Health;

/// <summary>A stored row: one tenant's figures for one minute, or one hour (<c>Slot</c> in Unix minutes either way).</summary>
internal sealed record HealthRow(Guid TenantId, long Slot, long Requests, long Status4xx, long Status5xx, long Throttled, LatencySketch Latency);

/// <summary>
/// The health tables. <c>health_minutes</c> and <c>health_hours</c> hold one row per tenant and minute
/// (hour), keyed by Unix minutes (hours), with the counts and the latency sketch in its stored form;
/// a gateway's flush merges into the minute's row. <c>health_pending_hours</c> names the hours whose
/// minutes changed since they were last rolled up, with a version that each change bumps;
/// <c>health_batches</c> remembers the batch ids taken, so a batch sent again is counted once.
/// Callers own the transaction.
/// </summary>
internal static class TenantHealthStore
{
    private const string Columns = "requests, status_4xx, status_5xx, throttled, latency";

    public static SchemaPart Schema { get; } = new("Health", Ddl("INTEGER", "BLOB"), Ddl("BIGINT", "BYTEA"));

    /// <summary>Records the batch id; false when it was taken before.</summary>
    public static async Task<bool> TakeBatchAsync(DbConnection c, DbTransaction tx, string id, long minute) =>
        await c.ExecuteAsync("INSERT INTO health_batches (id, received_minute) VALUES (@id, @minute) ON CONFLICT (id) DO NOTHING", tx, ("@id", id), ("@minute", minute)) == 1;

    /// <summary>Adds <paramref name="sample"/> to its minute's row (made if missing).</summary>
    public static async Task MergeMinuteAsync(DbConnection c, DbTransaction tx, TenantHealthSample sample)
    {
        var minute = sample.UnixMinute;
        var rows = await c.QueryAsync(
            $"SELECT {Columns} FROM health_minutes WHERE tenant_id = @tenant AND minute = @minute", tx,
            r => Read(r, sample.TenantId, minute, 0), ("@tenant", sample.TenantId), ("@minute", minute));
        var latency = new LatencySketch();
        latency.Merge(sample.Latency);
        long requests = sample.Requests, status4xx = sample.Status4xx, status5xx = sample.Status5xx, throttled = sample.Throttled;
        if (rows.Count == 1)
        {
            var row = rows[0];
            latency.Merge(row.Latency);
            requests += row.Requests;
            status4xx += row.Status4xx;
            status5xx += row.Status5xx;
            throttled += row.Throttled;
        }

        await c.ExecuteAsync(
            $"""
            INSERT INTO health_minutes (tenant_id, minute, {Columns}) VALUES (@tenant, @minute, @requests, @s4, @s5, @throttled, @latency)
            ON CONFLICT (tenant_id, minute) DO UPDATE SET requests = excluded.requests, status_4xx = excluded.status_4xx,
                status_5xx = excluded.status_5xx, throttled = excluded.throttled, latency = excluded.latency
            """,
            tx, ("@tenant", sample.TenantId), ("@minute", minute), ("@requests", requests), ("@s4", status4xx), ("@s5", status5xx), ("@throttled", throttled), ("@latency", latency.ToBytes()));
    }

    /// <summary>Marks <paramref name="hour"/> (Unix hours) as changed since its last roll-up.</summary>
    public static Task TouchHourAsync(DbConnection c, DbTransaction tx, long hour) => c.ExecuteAsync(
        "INSERT INTO health_pending_hours (hour, version) VALUES (@hour, 1) ON CONFLICT (hour) DO UPDATE SET version = health_pending_hours.version + 1",
        tx, ("@hour", hour));

    /// <summary>Hours before <paramref name="beforeHour"/> waiting for a roll-up, oldest first, with their versions.</summary>
    public static Task<List<(long Hour, long Version)>> PendingHoursAsync(DbConnection c, long beforeHour, int limit) => c.QueryAsync(
        "SELECT hour, version FROM health_pending_hours WHERE hour < @before ORDER BY hour LIMIT @limit", null,
        r => (Convert.ToInt64(r.GetValue(0), CultureInfo.InvariantCulture), Convert.ToInt64(r.GetValue(1), CultureInfo.InvariantCulture)),
        ("@before", beforeHour), ("@limit", limit));

    /// <summary>
    /// Replaces the hour's rows with <paramref name="rows"/> and clears its mark, unless its minutes
    /// changed since <paramref name="version"/> was read (then false: the hour is rolled up again).
    /// </summary>
    public static async Task<bool> ReplaceHourAsync(DbConnection c, DbTransaction tx, long hour, long version, IEnumerable<HealthRow> rows)
    {
        if (await c.ExecuteAsync("DELETE FROM health_pending_hours WHERE hour = @hour AND version = @version", tx, ("@hour", hour), ("@version", version)) != 1)
        {
            return false;
        }

        await c.ExecuteAsync("DELETE FROM health_hours WHERE hour = @hour", tx, ("@hour", hour));
        foreach (var row in rows)
        {
            await c.ExecuteAsync(
                $"INSERT INTO health_hours (tenant_id, hour, {Columns}) VALUES (@tenant, @hour, @requests, @s4, @s5, @throttled, @latency)",
                tx, ("@tenant", row.TenantId), ("@hour", hour), ("@requests", row.Requests), ("@s4", row.Status4xx), ("@s5", row.Status5xx),
                ("@throttled", row.Throttled), ("@latency", row.Latency.ToBytes()));
        }

        return true;
    }

    /// <summary>Clears the marks of hours whose minutes are gone (kept rows stay as they are).</summary>
    public static Task<int> ForgetPendingBeforeAsync(DbConnection c, DbTransaction tx, long hour) =>
        c.ExecuteAsync("DELETE FROM health_pending_hours WHERE hour < @hour", tx, ("@hour", hour));

    /// <summary>Deletes minute rows before <paramref name="minute"/>, hour rows before <paramref name="hour"/> and batch ids received before <paramref name="batchMinute"/>.</summary>
    public static async Task<(int Minutes, int Hours)> TrimAsync(DbConnection c, DbTransaction tx, long minute, long hour, long batchMinute)
    {
        var minutes = await c.ExecuteAsync("DELETE FROM health_minutes WHERE minute < @minute", tx, ("@minute", minute));
        var hours = await c.ExecuteAsync("DELETE FROM health_hours WHERE hour < @hour", tx, ("@hour", hour));
        await c.ExecuteAsync("DELETE FROM health_batches WHERE received_minute < @minute", tx, ("@minute", batchMinute));
        return (minutes, hours);
    }

    /// <summary>Every tenant's minute rows in [<paramref name="from"/>, <paramref name="to"/>) (Unix minutes).</summary>
    public static Task<List<HealthRow>> MinutesAsync(DbConnection c, long from, long to) => c.QueryAsync(
        $"SELECT tenant_id, minute, {Columns} FROM health_minutes WHERE minute >= @from AND minute < @to", null,
        r => Read(r, r.ReadGuid(0), r.GetInt64(1), 2), ("@from", from), ("@to", to));

    /// <summary>One tenant's minute rows in [<paramref name="from"/>, <paramref name="to"/>) (Unix minutes).</summary>
    public static Task<List<HealthRow>> TenantMinutesAsync(DbConnection c, Guid tenantId, long from, long to) => c.QueryAsync(
        $"SELECT minute, {Columns} FROM health_minutes WHERE tenant_id = @tenant AND minute >= @from AND minute < @to ORDER BY minute", null,
        r => Read(r, tenantId, r.GetInt64(0), 1), ("@tenant", tenantId), ("@from", from), ("@to", to));

    /// <summary>Every tenant's hour rows in [<paramref name="from"/>, <paramref name="to"/>) (Unix hours); their <c>Slot</c> is in minutes.</summary>
    public static Task<List<HealthRow>> HoursAsync(DbConnection c, long from, long to) => c.QueryAsync(
        $"SELECT tenant_id, hour, {Columns} FROM health_hours WHERE hour >= @from AND hour < @to", null,
        r => Read(r, r.ReadGuid(0), r.GetInt64(1) * 60, 2), ("@from", from), ("@to", to));

    /// <summary>The oldest hour (Unix hours) whose minutes changed since its roll-up, or null when every hour is rolled up.</summary>
    public static async Task<long?> FirstPendingHourAsync(DbConnection c) =>
        (await c.QueryAsync("SELECT MIN(hour) FROM health_pending_hours", null, r => r.IsDBNull(0) ? (long?)null : Convert.ToInt64(r.GetValue(0), CultureInfo.InvariantCulture))).FirstOrDefault();

    /// <summary>One tenant's hour rows in [<paramref name="from"/>, <paramref name="to"/>) (Unix hours); their <c>Slot</c> is in minutes.</summary>
    public static Task<List<HealthRow>> TenantHoursAsync(DbConnection c, Guid tenantId, long from, long to) => c.QueryAsync(
        $"SELECT hour, {Columns} FROM health_hours WHERE tenant_id = @tenant AND hour >= @from AND hour < @to ORDER BY hour", null,
        r => Read(r, tenantId, r.GetInt64(0) * 60, 1), ("@tenant", tenantId), ("@from", from), ("@to", to));

    /// <summary>Each tenant's summed counts over the minutes in [<paramref name="from"/>, <paramref name="to"/>).</summary>
    public static Task<List<(Guid TenantId, long Requests, long Status4xx, long Status5xx, long Throttled)>> TotalsAsync(DbConnection c, long from, long to) => c.QueryAsync(
        """
        SELECT tenant_id, SUM(requests), SUM(status_4xx), SUM(status_5xx), SUM(throttled)
        FROM health_minutes WHERE minute >= @from AND minute < @to GROUP BY tenant_id
        """,
        null,
        r => (r.ReadGuid(0), Long(r, 1), Long(r, 2), Long(r, 3), Long(r, 4)),
        ("@from", from), ("@to", to));

    /// <summary>How many minute and hour rows there are (for tests and the operator's eye).</summary>
    public static async Task<(long Minutes, long Hours)> CountAsync(DbConnection c) =>
        (Convert.ToInt64(await c.ScalarAsync("SELECT COUNT(*) FROM health_minutes", null), CultureInfo.InvariantCulture),
         Convert.ToInt64(await c.ScalarAsync("SELECT COUNT(*) FROM health_hours", null), CultureInfo.InvariantCulture));

    private static long Long(DbDataReader r, int i) => Convert.ToInt64(r.GetValue(i), CultureInfo.InvariantCulture);

    private static HealthRow Read(DbDataReader r, Guid tenantId, long slot, int first) => new(
        tenantId, slot, Long(r, first), Long(r, first + 1), Long(r, first + 2), Long(r, first + 3), LatencySketch.FromBytes(r.GetFieldValue<byte[]>(first + 4)));

    private static string Ddl(string integer, string blob) => $"""

        CREATE TABLE IF NOT EXISTS health_minutes (
            tenant_id TEXT NOT NULL,
            minute {integer} NOT NULL,
            requests {integer} NOT NULL,
            status_4xx {integer} NOT NULL,
            status_5xx {integer} NOT NULL,
            throttled {integer} NOT NULL,
            latency {blob} NOT NULL,
            PRIMARY KEY (tenant_id, minute)
        );
        CREATE INDEX IF NOT EXISTS health_minutes_by_minute ON health_minutes (minute);
        CREATE TABLE IF NOT EXISTS health_hours (
            tenant_id TEXT NOT NULL,
            hour {integer} NOT NULL,
            requests {integer} NOT NULL,
            status_4xx {integer} NOT NULL,
            status_5xx {integer} NOT NULL,
            throttled {integer} NOT NULL,
            latency {blob} NOT NULL,
            PRIMARY KEY (tenant_id, hour)
        );
        CREATE INDEX IF NOT EXISTS health_hours_by_hour ON health_hours (hour);
        CREATE TABLE IF NOT EXISTS health_pending_hours (
            hour {integer} PRIMARY KEY,
            version {integer} NOT NULL
        );
        CREATE TABLE IF NOT EXISTS health_batches (
            id TEXT PRIMARY KEY,
            received_minute {integer} NOT NULL
        );
        CREATE INDEX IF NOT EXISTS health_batches_by_minute ON health_batches (received_minute);
        """;
}
