using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Events;

/// <summary>A webhook endpoint as stored (its secrets still protected).</summary>
internal sealed record Webhook
{
    public required string Id { get; init; }
    public required string Url { get; init; }
    public required IReadOnlyList<string> Events { get; init; }
    public Guid? TenantId { get; init; }
    public string? Description { get; init; }
    public required string ProtectedSecret { get; init; }
    public string? PreviousSecret { get; init; }
    public DateTimeOffset? PreviousSecretUntil { get; init; }
    public required bool Enabled { get; init; }
    public string? DisabledReason { get; init; }
    public required long FromSequence { get; init; }
    public DateTimeOffset? FailingSince { get; init; }
    public required string CreatedBy { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>One delivery of one event to one endpoint, and what its last attempt got.</summary>
internal sealed record Delivery
{
    public required long Sequence { get; init; }
    public required string Id { get; init; }
    public required string WebhookId { get; init; }
    public required long EventSequence { get; init; }
    public required string EventId { get; init; }
    public required string EventType { get; init; }
    public Guid? TenantId { get; init; }
    public required string Status { get; init; }
    public required int Attempts { get; init; }
    public DateTimeOffset? NextAttemptAt { get; init; }
    public DateTimeOffset? LastAttemptAt { get; init; }
    public int? LastStatusCode { get; init; }
    public int? LastDurationMs { get; init; }
    public string? LastError { get; init; }
    public string? LastResponse { get; init; }
    public string? ReplayOf { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
}

/// <summary>One attempt of a delivery, for the delivery log.</summary>
internal sealed record DeliveryAttempt(DateTimeOffset At, int? StatusCode, int DurationMs, string? Error, string? ResponseExcerpt);

/// <summary>A delivery the worker has taken, with what it needs to send it.</summary>
internal sealed record ClaimedDelivery(string Id, Webhook Webhook, StoredEvent Event, int Attempts);

/// <summary>What one attempt of a claimed delivery got.</summary>
internal sealed record AttemptResult(ClaimedDelivery Delivery, DateTimeOffset At, bool Succeeded, int? StatusCode, int DurationMs, string? Error, string? ResponseExcerpt);

/// <summary>
/// The webhooks' tables: endpoints, deliveries (one per event and endpoint, plus replays) and their
/// attempts. Deliveries of one endpoint for one tenant (a lane) go out in the order they were made:
/// only the oldest pending delivery of a lane can be taken.
/// </summary>
internal static class WebhookStore
{
    public const string Pending = "pending";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    private const string Cursor = "webhooks";

    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Events", """

        CREATE TABLE IF NOT EXISTS event_cursors (
            name TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS webhooks (
            id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            events TEXT NOT NULL,
            tenant_id TEXT NULL,
            description TEXT NULL,
            protected_secret TEXT NOT NULL,
            previous_secret TEXT NULL,
            previous_secret_until TEXT NULL,
            enabled INTEGER NOT NULL,
            disabled_reason TEXT NULL,
            from_seq INTEGER NOT NULL,
            failing_since TEXT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS webhooks_tenant ON webhooks(tenant_id, id);
        CREATE TABLE IF NOT EXISTS webhook_deliveries (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            webhook_id TEXT NOT NULL,
            event_seq INTEGER NOT NULL,
            lane TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NULL,
            leased_until TEXT NULL,
            leased_by TEXT NULL,
            last_attempt_at TEXT NULL,
            last_status_code INTEGER NULL,
            last_duration_ms INTEGER NULL,
            last_error TEXT NULL,
            last_response TEXT NULL,
            replay_of TEXT NULL,
            created_at TEXT NOT NULL,
            finished_at TEXT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS webhook_deliveries_once ON webhook_deliveries(webhook_id, event_seq) WHERE replay_of IS NULL;
        CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
        CREATE INDEX IF NOT EXISTS webhook_deliveries_lane ON webhook_deliveries(webhook_id, lane, status, seq);
        CREATE INDEX IF NOT EXISTS webhook_deliveries_log ON webhook_deliveries(webhook_id, seq);
        CREATE TABLE IF NOT EXISTS webhook_attempts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            delivery_id TEXT NOT NULL,
            attempted_at TEXT NOT NULL,
            status_code INTEGER NULL,
            duration_ms INTEGER NOT NULL,
            error TEXT NULL,
            response_excerpt TEXT NULL
        );
        CREATE INDEX IF NOT EXISTS webhook_attempts_delivery ON webhook_attempts(delivery_id, seq);
        """);

    private const string WebhookColumns =
        "id, url, events, tenant_id, description, protected_secret, previous_secret, previous_secret_until, enabled, disabled_reason, from_seq, failing_since, created_by, created_at, updated_at";

    public static Task InsertAsync(DbConnection c, DbTransaction tx, Webhook w) => c.ExecuteAsync(
        $"INSERT INTO webhooks ({WebhookColumns}) VALUES (@id, @url, @events, @tenant, @description, @secret, NULL, NULL, @enabled, NULL, @from, NULL, @by, @now, @now)",
        tx,
        ("@id", w.Id), ("@url", w.Url), ("@events", JsonSerializer.Serialize(w.Events)), ("@tenant", w.TenantId), ("@description", w.Description),
        ("@secret", w.ProtectedSecret), ("@enabled", w.Enabled), ("@from", w.FromSequence), ("@by", w.CreatedBy), ("@now", w.CreatedAt));

    public static Task UpdateAsync(DbConnection c, DbTransaction tx, Webhook w) => c.ExecuteAsync(
        """
        UPDATE webhooks SET url = @url, events = @events, tenant_id = @tenant, description = @description, protected_secret = @secret,
            previous_secret = @previous, previous_secret_until = @previousUntil, enabled = @enabled, disabled_reason = @reason,
            failing_since = @failing, updated_at = @updated
        WHERE id = @id
        """,
        tx,
        ("@id", w.Id), ("@url", w.Url), ("@events", JsonSerializer.Serialize(w.Events)), ("@tenant", w.TenantId), ("@description", w.Description),
        ("@secret", w.ProtectedSecret), ("@previous", w.PreviousSecret), ("@previousUntil", w.PreviousSecretUntil), ("@enabled", w.Enabled),
        ("@reason", w.DisabledReason), ("@failing", w.FailingSince), ("@updated", w.UpdatedAt));

    /// <summary>Deletes the endpoint with its deliveries and their attempts.</summary>
    public static async Task<bool> DeleteAsync(DbConnection c, DbTransaction tx, string id)
    {
        await c.ExecuteAsync("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = @id)", tx, ("@id", id));
        await c.ExecuteAsync("DELETE FROM webhook_deliveries WHERE webhook_id = @id", tx, ("@id", id));
        return await c.ExecuteAsync("DELETE FROM webhooks WHERE id = @id", tx, ("@id", id)) == 1;
    }

    public static async Task<Webhook?> GetAsync(DbConnection c, DbTransaction? tx, string id) =>
        (await c.QueryAsync($"SELECT {WebhookColumns} FROM webhooks WHERE id = @id", tx, ReadWebhook, ("@id", id))).SingleOrDefault();

    /// <summary>Endpoints in id order after <paramref name="after"/>; of one tenant when <paramref name="tenantId"/> is set.</summary>
    public static Task<List<Webhook>> ListAsync(DbConnection c, Guid? tenantId, string after, int limit) => c.QueryAsync(
        $"SELECT {WebhookColumns} FROM webhooks WHERE id > @after" + (tenantId is null ? "" : " AND tenant_id = @tenant") + " ORDER BY id LIMIT @limit",
        null, ReadWebhook, ("@after", after), ("@tenant", tenantId), ("@limit", limit));

    /// <summary>
    /// Makes the deliveries of the events committed since the last call (at most <paramref name="limit"/>
    /// events): one per enabled endpoint whose filters match, for events after the endpoint was made.
    /// Returns the number of events read.
    /// </summary>
    public static async Task<int> FanOutAsync(DbConnection c, DbTransaction tx, DateTimeOffset now, int limit)
    {
        var cursor = await c.ScalarAsync("SELECT seq FROM event_cursors WHERE name = @name", tx, ("@name", Cursor)) is { } value
            ? Convert.ToInt64(value, CultureInfo.InvariantCulture)
            : -1;
        if (cursor < 0)
        {
            await c.ExecuteAsync("INSERT INTO event_cursors (name, seq) VALUES (@name, 0)", tx, ("@name", Cursor));
            cursor = 0;
        }

        var events = await EventOutbox.AfterAsync(c, tx, cursor, limit);
        if (events.Count == 0)
        {
            return 0;
        }

        var hooks = await c.QueryAsync($"SELECT {WebhookColumns} FROM webhooks WHERE enabled = 1", tx, ReadWebhook);
        foreach (var e in events)
        {
            foreach (var hook in hooks)
            {
                if (e.Sequence > hook.FromSequence
                    && (hook.TenantId is null || hook.TenantId == e.TenantId)
                    && EventCatalog.MatchesAny(hook.Events, e.Type))
                {
                    await c.ExecuteAsync(
                        """
                        INSERT INTO webhook_deliveries (id, webhook_id, event_seq, lane, status, attempts, next_attempt_at, created_at)
                        VALUES (@id, @hook, @event, @lane, 'pending', 0, @now, @now)
                        ON CONFLICT DO NOTHING
                        """,
                        tx, ("@id", Guid.CreateVersion7(now).ToString()), ("@hook", hook.Id), ("@event", e.Sequence), ("@lane", Lane(e.TenantId)), ("@now", now));
                }
            }
        }

        await c.ExecuteAsync("UPDATE event_cursors SET seq = @seq WHERE name = @name", tx, ("@seq", events[^1].Sequence), ("@name", Cursor));
        return events.Count;
    }

    /// <summary>
    /// Takes up to <paramref name="limit"/> due deliveries for <paramref name="node"/> until
    /// <paramref name="until"/>: each the oldest pending one of its lane, of an enabled endpoint. The
    /// scan walks the due index in time order and stops at the limit, so its cost follows the
    /// deliveries it takes, not the backlog behind them.
    /// </summary>
    public static async Task<List<(string Id, string WebhookId, long EventSequence, int Attempts)>> ClaimAsync(
        DbConnection c, DbTransaction tx, string node, DateTimeOffset now, DateTimeOffset until, int limit)
    {
        var due = await c.QueryAsync(
            """
            SELECT d.id, d.webhook_id, d.event_seq, d.attempts FROM webhook_deliveries d
            JOIN webhooks w ON w.id = d.webhook_id AND w.enabled = 1
            WHERE d.status = 'pending' AND d.next_attempt_at <= @now AND (d.leased_until IS NULL OR d.leased_until < @now)
              AND NOT EXISTS (
                SELECT 1 FROM webhook_deliveries p
                WHERE p.webhook_id = d.webhook_id AND p.lane = d.lane AND p.status = 'pending' AND p.seq < d.seq)
            ORDER BY d.next_attempt_at, d.seq LIMIT @limit
            """,
            tx, r => (r.GetString(0), r.GetString(1), r.GetInt64(2), (int)r.GetInt64(3)), ("@now", now), ("@limit", limit));
        // One statement per chunk of ids rather than one per delivery.
        foreach (var chunk in due.Chunk(100))
        {
            var parameters = new List<(string, object?)>(chunk.Length + 2) { ("@until", until), ("@node", node) };
            var names = new string[chunk.Length];
            for (var i = 0; i < chunk.Length; i++)
            {
                names[i] = "@id" + i.ToString(CultureInfo.InvariantCulture);
                parameters.Add((names[i], chunk[i].Item1));
            }

            await c.ExecuteAsync($"UPDATE webhook_deliveries SET leased_until = @until, leased_by = @node WHERE id IN ({string.Join(", ", names)})", tx, [.. parameters]);
        }

        return due;
    }

    /// <summary>The soonest time a pending delivery of an enabled endpoint falls due, if any.</summary>
    public static async Task<DateTimeOffset?> NextDueAsync(DbConnection c) =>
        await c.ScalarAsync(
            "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id AND w.enabled = 1 WHERE d.status = 'pending'", null) is string text
            ? DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal)
            : null;

    /// <summary>Frees the deliveries a node took before it stopped (or, with null, every lease: SQLite's one process).</summary>
    public static Task<int> ReleaseAsync(DbConnection c, DbTransaction tx, string? node) => c.ExecuteAsync(
        "UPDATE webhook_deliveries SET leased_until = NULL, leased_by = NULL WHERE status = 'pending' AND leased_by IS NOT NULL" + (node is null ? "" : " AND leased_by = @node"),
        tx, ("@node", node));

    /// <summary>
    /// Records one attempt: the log row, and the delivery's new state (succeeded; pending again at
    /// <paramref name="retryAt"/>; or failed when <paramref name="retryAt"/> is null). False when the
    /// delivery is no longer this node's (its endpoint was deleted, or another node took it over).
    /// </summary>
    public static async Task<bool> RecordAsync(DbConnection c, DbTransaction tx, string node, AttemptResult result, DateTimeOffset? retryAt)
    {
        ArgumentNullException.ThrowIfNull(result);
        var status = result.Succeeded ? Succeeded : retryAt is null ? Failed : Pending;
        var changed = await c.ExecuteAsync(
            """
            UPDATE webhook_deliveries SET status = @status, attempts = attempts + 1, next_attempt_at = @next, leased_until = NULL, leased_by = NULL,
                last_attempt_at = @at, last_status_code = @code, last_duration_ms = @duration, last_error = @error, last_response = @response,
                finished_at = @finished
            WHERE id = @id AND status = 'pending' AND leased_by = @node
            """,
            tx,
            ("@id", result.Delivery.Id), ("@status", status), ("@next", status == Pending ? retryAt : null), ("@at", result.At), ("@code", result.StatusCode),
            ("@duration", result.DurationMs), ("@error", result.Error), ("@response", result.ResponseExcerpt),
            ("@finished", status == Pending ? null : result.At), ("@node", node));
        if (changed != 1)
        {
            return false;
        }

        await c.ExecuteAsync(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, duration_ms, error, response_excerpt) VALUES (@id, @at, @code, @duration, @error, @response)",
            tx, ("@id", result.Delivery.Id), ("@at", result.At), ("@code", result.StatusCode), ("@duration", result.DurationMs), ("@error", result.Error), ("@response", result.ResponseExcerpt));
        return true;
    }

    /// <summary>Marks the endpoint healthy again, or notes since when it fails; returns since when it has been failing (null: healthy).</summary>
    public static async Task<DateTimeOffset?> NoteHealthAsync(DbConnection c, DbTransaction tx, string webhookId, bool succeeded, DateTimeOffset now)
    {
        if (succeeded)
        {
            await c.ExecuteAsync("UPDATE webhooks SET failing_since = NULL WHERE id = @id AND failing_since IS NOT NULL", tx, ("@id", webhookId));
            return null;
        }

        await c.ExecuteAsync("UPDATE webhooks SET failing_since = @now WHERE id = @id AND failing_since IS NULL", tx, ("@id", webhookId), ("@now", now));
        return await c.ScalarAsync("SELECT failing_since FROM webhooks WHERE id = @id", tx, ("@id", webhookId)) is string text
            ? DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal)
            : null;
    }

    /// <summary>Disables an enabled endpoint; false when it was already disabled (or is gone).</summary>
    public static async Task<bool> DisableAsync(DbConnection c, DbTransaction tx, string webhookId, string reason, DateTimeOffset now) =>
        await c.ExecuteAsync("UPDATE webhooks SET enabled = 0, disabled_reason = @reason, updated_at = @now WHERE id = @id AND enabled = 1", tx,
            ("@id", webhookId), ("@reason", reason), ("@now", now)) == 1;

    /// <summary>A new delivery of the event of <paramref name="original"/>, due now, at the end of its lane.</summary>
    public static async Task<string> ReplayAsync(DbConnection c, DbTransaction tx, Delivery original, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(original);
        var id = Guid.CreateVersion7(now).ToString();
        await c.ExecuteAsync(
            """
            INSERT INTO webhook_deliveries (id, webhook_id, event_seq, lane, status, attempts, next_attempt_at, replay_of, created_at)
            VALUES (@id, @hook, @event, @lane, 'pending', 0, @now, @of, @now)
            """,
            tx, ("@id", id), ("@hook", original.WebhookId), ("@event", original.EventSequence), ("@lane", Lane(original.TenantId)), ("@of", original.Id), ("@now", now));
        return id;
    }

    /// <summary>The endpoint's deliveries, newest first, before <paramref name="before"/> (a delivery sequence number).</summary>
    public static Task<List<Delivery>> DeliveriesAsync(DbConnection c, string webhookId, string? status, long before, int limit) => c.QueryAsync(
        $"SELECT {DeliveryColumns} FROM webhook_deliveries d JOIN outbox e ON e.seq = d.event_seq WHERE d.webhook_id = @hook AND d.seq < @before"
            + (status is null ? "" : " AND d.status = @status") + " ORDER BY d.seq DESC LIMIT @limit",
        null, ReadDelivery, ("@hook", webhookId), ("@before", before), ("@status", status), ("@limit", limit));

    public static async Task<Delivery?> DeliveryAsync(DbConnection c, DbTransaction? tx, string webhookId, string deliveryId) =>
        (await c.QueryAsync(
            $"SELECT {DeliveryColumns} FROM webhook_deliveries d JOIN outbox e ON e.seq = d.event_seq WHERE d.webhook_id = @hook AND d.id = @id",
            tx, ReadDelivery, ("@hook", webhookId), ("@id", deliveryId))).SingleOrDefault();

    public static Task<List<DeliveryAttempt>> AttemptsAsync(DbConnection c, string deliveryId) => c.QueryAsync(
        "SELECT attempted_at, status_code, duration_ms, error, response_excerpt FROM webhook_attempts WHERE delivery_id = @id ORDER BY seq",
        null,
        r => new DeliveryAttempt(r.ReadTime(0), r.IsDBNull(1) ? null : (int)r.GetInt64(1), (int)r.GetInt64(2), r.ReadStringOrNull(3), r.ReadStringOrNull(4)),
        ("@id", deliveryId));

    private const string DeliveryColumns =
        "d.seq, d.id, d.webhook_id, d.event_seq, e.message_key, e.type, e.tenant_id, d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, "
        + "d.last_status_code, d.last_duration_ms, d.last_error, d.last_response, d.replay_of, d.created_at, d.finished_at";

    /// <summary>Deliveries of one endpoint are ordered per tenant; events of no tenant share one lane.</summary>
    private static string Lane(Guid? tenantId) => tenantId?.ToString() ?? "";

    private static Webhook ReadWebhook(DbDataReader r) => new()
    {
        Id = r.GetString(0),
        Url = r.GetString(1),
        Events = JsonSerializer.Deserialize<string[]>(r.GetString(2)) ?? [],
        TenantId = r.ReadGuidOrNull(3),
        Description = r.ReadStringOrNull(4),
        ProtectedSecret = r.GetString(5),
        PreviousSecret = r.ReadStringOrNull(6),
        PreviousSecretUntil = r.ReadTimeOrNull(7),
        Enabled = r.GetInt64(8) != 0,
        DisabledReason = r.ReadStringOrNull(9),
        FromSequence = r.GetInt64(10),
        FailingSince = r.ReadTimeOrNull(11),
        CreatedBy = r.GetString(12),
        CreatedAt = r.ReadTime(13),
        UpdatedAt = r.ReadTime(14),
    };

    private static Delivery ReadDelivery(DbDataReader r) => new()
    {
        Sequence = r.GetInt64(0),
        Id = r.GetString(1),
        WebhookId = r.GetString(2),
        EventSequence = r.GetInt64(3),
        EventId = r.GetString(4),
        EventType = r.GetString(5),
        TenantId = r.ReadGuidOrNull(6),
        Status = r.GetString(7),
        Attempts = (int)r.GetInt64(8),
        NextAttemptAt = r.ReadTimeOrNull(9),
        LastAttemptAt = r.ReadTimeOrNull(10),
        LastStatusCode = r.IsDBNull(11) ? null : (int)r.GetInt64(11),
        LastDurationMs = r.IsDBNull(12) ? null : (int)r.GetInt64(12),
        LastError = r.ReadStringOrNull(13),
        LastResponse = r.ReadStringOrNull(14),
        ReplayOf = r.ReadStringOrNull(15),
        CreatedAt = r.ReadTime(16),
        FinishedAt = r.ReadTimeOrNull(17),
    };

    /// <summary>The event of a delivery, for sending it.</summary>
    public static Task<StoredEvent?> EventAsync(DbConnection c, DbTransaction? tx, long sequence) => EventOutbox.GetAsync(c, tx, sequence);

    public static JsonArray ToJson(IEnumerable<string> events) => new([.. events.Select(e => JsonValue.Create(e))]);
}
