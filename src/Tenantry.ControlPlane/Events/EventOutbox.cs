using System.Data.Common;
using System.Text.Json.Nodes;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Events;

/// <summary>An event as the outbox holds it, with its place in the outbox's order.</summary>
public sealed record StoredEvent(long Sequence, string Id, string Type, Guid? TenantId, JsonObject Data, DateTimeOffset Time)
{
    /// <summary>The CloudEvents <c>source</c> of every control-plane event.</summary>
    public const string Source = "/tenantry/control-plane";

    private string? _body;

    /// <summary>The CloudEvents JSON text, made once: every endpoint the event goes to gets the same bytes.</summary>
    public string CloudEventJson => _body ??= ToCloudEvent().ToJsonString();

    /// <summary>The event as a CloudEvents 1.0 JSON object (structured mode): the body of a webhook delivery.</summary>
    public JsonObject ToCloudEvent()
    {
        var cloudEvent = new JsonObject
        {
            ["specversion"] = "1.0",
            ["id"] = Id,
            ["source"] = Source,
            ["type"] = Type,
        };
        if (TenantId is { } tenant)
        {
            cloudEvent["subject"] = tenant.ToString();
        }

        cloudEvent["time"] = Sql.Time(Time);
        cloudEvent["datacontenttype"] = "application/json";
        cloudEvent["data"] = Data.DeepClone();
        return cloudEvent;
    }
}

/// <summary>
/// The outbox table (<see cref="IEventOutbox"/>): events appended in the transactions of the changes
/// they record, read in order by the webhook worker and by the events API.
/// </summary>
/// <remarks>
/// Appends happen in ordinary (exclusive) writes of the control-plane database, which are serialised on
/// both engines, so sequence numbers commit in increasing order: a reader that has seen sequence N will
/// never later find a committed event below N. The webhook worker's cursor relies on it.
/// </remarks>
internal sealed class EventOutbox(EventSignals signals) : IEventOutbox
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Events", """

        CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            message_key TEXT NOT NULL UNIQUE,
            tenant_id TEXT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            delivered_at TEXT NULL
        );
        CREATE INDEX IF NOT EXISTS outbox_tenant ON outbox(tenant_id, seq);
        """);

    public async Task<bool> AppendAsync(DbConnection connection, DbTransaction transaction, OutboxEvent e, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(e);
        var inserted = await connection.ExecuteAsync(
            "INSERT INTO outbox (message_key, tenant_id, type, payload, created_at) VALUES (@key, @tenant, @type, @payload, @now) ON CONFLICT (message_key) DO NOTHING",
            transaction,
            ("@key", e.Key ?? Guid.CreateVersion7(now).ToString()), ("@tenant", e.TenantId), ("@type", e.Type), ("@payload", e.Data.ToJsonString()), ("@now", now)) == 1;
        if (inserted)
        {
            // The worker's next write waits for this transaction to end, so it finds the event once committed.
            signals.Set();
        }

        return inserted;
    }

    /// <summary>Events after <paramref name="after"/>, oldest first.</summary>
    public static Task<List<StoredEvent>> AfterAsync(DbConnection c, DbTransaction? tx, long after, int limit) => c.QueryAsync(
        $"SELECT {Columns} FROM outbox WHERE seq > @after ORDER BY seq LIMIT @limit", tx, Read, ("@after", after), ("@limit", limit));

    /// <summary>One event by its sequence number.</summary>
    public static async Task<StoredEvent?> GetAsync(DbConnection c, DbTransaction? tx, long sequence) =>
        (await c.QueryAsync($"SELECT {Columns} FROM outbox WHERE seq = @seq", tx, Read, ("@seq", sequence))).SingleOrDefault();

    /// <summary>Events newest first, before <paramref name="before"/> (a sequence number), optionally of one tenant and of types matching a filter.</summary>
    public static Task<List<StoredEvent>> NewestAsync(DbConnection c, Guid? tenantId, string? type, long before, int limit) => c.QueryAsync(
        $"SELECT {Columns} FROM outbox WHERE seq < @before"
            + (tenantId is null ? "" : " AND tenant_id = @tenant")
            + (type is null ? "" : " AND type = @type")
            + " ORDER BY seq DESC LIMIT @limit",
        null, Read, ("@before", before), ("@tenant", tenantId), ("@type", type), ("@limit", limit));

    /// <summary>The highest sequence number so far (0 for an empty outbox).</summary>
    public static async Task<long> LastAsync(DbConnection c, DbTransaction? tx) =>
        Convert.ToInt64(await c.ScalarAsync("SELECT COALESCE(MAX(seq), 0) FROM outbox", tx), System.Globalization.CultureInfo.InvariantCulture);

    private const string Columns = "seq, message_key, type, tenant_id, payload, created_at";

    private static StoredEvent Read(DbDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetString(2), r.ReadGuidOrNull(3), JsonNode.Parse(r.GetString(4))?.AsObject() ?? [], r.ReadTime(5));
}

/// <summary>Wakes the webhook worker in this process when an event is appended (workers on other hosts poll).</summary>
internal sealed class EventSignals : WakeSignal;
