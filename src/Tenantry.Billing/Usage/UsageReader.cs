using System.Data.Common;
using System.Text.Json;
using Npgsql;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Usage;

/// <summary>One stored event as aggregation needs it.</summary>
public readonly record struct StoredEvent(Guid TenantId, DateTimeOffset Time, JsonElement? Data);

/// <summary>
/// Reads stored usage back, in time order (ties in arrival order: the order in which batches reached
/// the ingestor, and within a batch its order; on PostgreSQL across replicas and restarts by their
/// clocks, see <see cref="ArrivalNumbers"/>), for queries, invoices and quotas.
/// On PostgreSQL tenant_id and time are uuid and timestamptz (see <see cref="BillingSchema"/>); the
/// bounds are sent as text like every parameter and cast once. Voided events (<see cref="UsageVoids"/>)
/// are left out of every read.
/// </summary>
internal static class UsageReader
{
    private const string NotVoided = " AND NOT EXISTS (SELECT 1 FROM usage_voids v WHERE v.source = usage_events.source AND v.id = usage_events.id)";

    /// <remarks>Without <paramref name="withData"/> each event reads as having no data: enough for a count meter, and lighter.</remarks>
    public static Task<List<StoredEvent>> EventsAsync(
        DbConnection c, DbTransaction? tx, Guid? tenantId, string type, DateTimeOffset from, DateTimeOffset to, bool withData = true) =>
        c is NpgsqlConnection
            ? c.QueryAsync(
                "SELECT tenant_id, time, " + (withData ? "data" : "NULL AS data") + " FROM usage_events WHERE type = @type AND time >= @from::timestamptz AND time < @to::timestamptz"
                    + (tenantId is null ? "" : " AND tenant_id = @tenant::uuid") + NotVoided + " ORDER BY time, seq",
                tx,
                r => new StoredEvent(r.GetGuid(0), r.GetFieldValue<DateTimeOffset>(1), Data(r)),
                ("@type", type), ("@from", from), ("@to", to), ("@tenant", tenantId))
            : c.QueryAsync(
                "SELECT tenant_id, time, " + (withData ? "data" : "NULL AS data") + " FROM usage_events WHERE type = @type AND time >= @from AND time < @to"
                    + (tenantId is null ? "" : " AND tenant_id = @tenant") + NotVoided + " ORDER BY time, seq",
                tx,
                r => new StoredEvent(r.ReadGuid(0), r.ReadTime(1), Data(r)),
                ("@type", type), ("@from", from), ("@to", to), ("@tenant", tenantId));

    /// <summary>The stored data; a row whose data is not JSON (never written by ingest) reads as having none, so it fails no read.</summary>
    /// <summary>The stored event with key (<paramref name="source"/>, <paramref name="id"/>), voided or not; null when there is none.</summary>
    public static async Task<(Guid TenantId, string Type, DateTimeOffset Time)?> EventAsync(DbConnection c, DbTransaction? tx, string source, string id)
    {
        var rows = c is NpgsqlConnection
            ? await c.QueryAsync("SELECT tenant_id, type, time FROM usage_events WHERE source = @s AND id = @i", tx,
                r => (r.GetGuid(0), r.GetString(1), r.GetFieldValue<DateTimeOffset>(2)), ("@s", source), ("@i", id))
            : await c.QueryAsync("SELECT tenant_id, type, time FROM usage_events WHERE source = @s AND id = @i", tx,
                r => (r.ReadGuid(0), r.GetString(1), r.ReadTime(2)), ("@s", source), ("@i", id));
        return rows.Count == 0 ? null : rows[0];
    }

    private static JsonElement? Data(DbDataReader r)
    {
        if (r.IsDBNull(2))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(r.GetString(2));
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The meter's value for each tenant over [from, to).</summary>
    public static async Task<Dictionary<Guid, decimal>> TotalsAsync(DbConnection c, Meter meter, Guid? tenantId, DateTimeOffset from, DateTimeOffset to)
    {
        var events = await EventsAsync(c, null, tenantId, meter.EventType, from, to);
        return events.GroupBy(e => e.TenantId).ToDictionary(g => g.Key, g => Aggregations.Aggregate(meter, g.Select(e => e.Data)));
    }

    /// <summary>
    /// Every tenant's events of <paramref name="meter"/> over [from, to) in one read, each tenant's in
    /// time order as <see cref="EventsAsync"/> gives them.
    /// </summary>
    public static async Task<Dictionary<Guid, List<StoredEvent>>> EventsByTenantAsync(DbConnection c, DbTransaction? tx, Meter meter, DateTimeOffset from, DateTimeOffset to)
    {
        var events = await EventsAsync(c, tx, null, meter.EventType, from, to, withData: meter.Aggregation != Aggregations.Count);
        var byTenant = new Dictionary<Guid, List<StoredEvent>>();
        foreach (var e in events)
        {
            if (!byTenant.TryGetValue(e.TenantId, out var list))
            {
                byTenant[e.TenantId] = list = [];
            }

            list.Add(e);
        }

        return byTenant;
    }

    public static async Task<decimal> TotalAsync(DbConnection c, Meter meter, Guid tenantId, DateTimeOffset from, DateTimeOffset to) =>
        Aggregations.Aggregate(meter, (await EventsAsync(c, null, tenantId, meter.EventType, from, to)).Select(e => e.Data));
}
