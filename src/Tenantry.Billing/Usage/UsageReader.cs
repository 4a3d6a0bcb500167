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
/// bounds are sent as text like every parameter and cast once.
/// </summary>
internal static class UsageReader
{
    public static Task<List<StoredEvent>> EventsAsync(DbConnection c, DbTransaction? tx, Guid? tenantId, string type, DateTimeOffset from, DateTimeOffset to) =>
        c is NpgsqlConnection
            ? c.QueryAsync(
                "SELECT tenant_id, time, data FROM usage_events WHERE type = @type AND time >= @from::timestamptz AND time < @to::timestamptz"
                    + (tenantId is null ? "" : " AND tenant_id = @tenant::uuid") + " ORDER BY time, seq",
                tx,
                r => new StoredEvent(r.GetGuid(0), r.GetFieldValue<DateTimeOffset>(1), Data(r)),
                ("@type", type), ("@from", from), ("@to", to), ("@tenant", tenantId))
            : c.QueryAsync(
                "SELECT tenant_id, time, data FROM usage_events WHERE type = @type AND time >= @from AND time < @to"
                    + (tenantId is null ? "" : " AND tenant_id = @tenant") + " ORDER BY time, seq",
                tx,
                r => new StoredEvent(r.ReadGuid(0), r.ReadTime(1), Data(r)),
                ("@type", type), ("@from", from), ("@to", to), ("@tenant", tenantId));

    private static JsonElement? Data(DbDataReader r) => r.IsDBNull(2) ? null : JsonDocument.Parse(r.GetString(2)).RootElement.Clone();

    /// <summary>The meter's value for each tenant over [from, to).</summary>
    public static async Task<Dictionary<Guid, decimal>> TotalsAsync(DbConnection c, Meter meter, Guid? tenantId, DateTimeOffset from, DateTimeOffset to)
    {
        var events = await EventsAsync(c, null, tenantId, meter.EventType, from, to);
        return events.GroupBy(e => e.TenantId).ToDictionary(g => g.Key, g => Aggregations.Aggregate(meter, g.Select(e => e.Data)));
    }

    public static async Task<decimal> TotalAsync(DbConnection c, Meter meter, Guid tenantId, DateTimeOffset from, DateTimeOffset to) =>
        Aggregations.Aggregate(meter, (await EventsAsync(c, null, tenantId, meter.EventType, from, to)).Select(e => e.Data));
}
