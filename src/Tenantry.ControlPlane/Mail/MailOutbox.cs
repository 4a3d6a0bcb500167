using System.Data.Common;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Mail;

/// <summary>A mail to send: queued in the transaction of what it tells about, sent by <see cref="MailWorker"/>.</summary>
/// <param name="MessageKey">Queues the mail once: a second mail with the same key is not queued.</param>
public sealed record OutgoingMail(string MessageKey, Guid? TenantId, string Kind, string To, string Subject, string Body);

/// <summary>A queued or sent mail as the mails API shows it (never its body: it may hold a one-time link).</summary>
public sealed record MailRecord(
    string Id, Guid? TenantId, string Kind, string To, string Subject, string Status, int Attempts, string? Error,
    string? Transport, string? Location, DateTimeOffset CreatedAt, DateTimeOffset? SentAt, long Sequence);

/// <summary>A mail the worker has taken to send, with its body.</summary>
internal sealed record PendingMail(string Id, Guid? TenantId, string Kind, string To, string Subject, string Body, int Attempts, DateTimeOffset CreatedAt);

/// <summary>
/// The mail queue: one row per mail, queued in a feature's own transaction, sent at least once by the
/// worker, then kept without its body as the list of sent mails.
/// </summary>
internal sealed class MailOutbox(MailSignals signals)
{
    public const string Pending = "pending";
    public const string Sent = "sent";
    public const string Failed = "failed";

    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Mail", """

        CREATE TABLE IF NOT EXISTS mails (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            message_key TEXT NOT NULL UNIQUE,
            tenant_id TEXT NULL,
            kind TEXT NOT NULL,
            to_address TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            leased_until TEXT NULL,
            leased_by TEXT NULL,
            error TEXT NULL,
            transport TEXT NULL,
            location TEXT NULL,
            created_at TEXT NOT NULL,
            sent_at TEXT NULL
        );
        CREATE INDEX IF NOT EXISTS mails_due ON mails(status, next_attempt_at);
        CREATE INDEX IF NOT EXISTS mails_tenant ON mails(tenant_id, seq);
        """);

    /// <summary>Queues <paramref name="mail"/> in <paramref name="tx"/>; false when its key was queued before.</summary>
    public async Task<bool> EnqueueAsync(DbConnection c, DbTransaction tx, OutgoingMail mail, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(mail);
        var queued = await c.ExecuteAsync(
            """
            INSERT INTO mails (id, message_key, tenant_id, kind, to_address, subject, body, status, attempts, next_attempt_at, created_at)
            VALUES (@id, @key, @tenant, @kind, @to, @subject, @body, 'pending', 0, @now, @now)
            ON CONFLICT (message_key) DO NOTHING
            """,
            tx,
            ("@id", Guid.CreateVersion7(now).ToString()), ("@key", mail.MessageKey), ("@tenant", mail.TenantId), ("@kind", mail.Kind),
            ("@to", mail.To), ("@subject", mail.Subject), ("@body", mail.Body), ("@now", now)) == 1;
        if (queued)
        {
            signals.Set();
        }

        return queued;
    }

    public static async Task<bool> ExistsAsync(DbConnection c, DbTransaction? tx, string messageKey) =>
        await c.ScalarAsync("SELECT 1 FROM mails WHERE message_key = @key", tx, ("@key", messageKey)) is not null;

    /// <summary>Takes up to <paramref name="limit"/> due mails for <paramref name="node"/> until <paramref name="until"/>.</summary>
    public static async Task<List<PendingMail>> ClaimAsync(DbConnection c, DbTransaction tx, string node, DateTimeOffset now, DateTimeOffset until, int limit)
    {
        var due = await c.QueryAsync(
            """
            SELECT id, tenant_id, kind, to_address, subject, body, attempts, created_at FROM mails
            WHERE status = 'pending' AND next_attempt_at <= @now AND (leased_until IS NULL OR leased_until < @now)
            ORDER BY seq LIMIT @limit
            """,
            tx,
            r => new PendingMail(r.GetString(0), r.ReadGuidOrNull(1), r.GetString(2), r.GetString(3), r.GetString(4), r.ReadStringOrNull(5) ?? "", (int)r.GetInt64(6), r.ReadTime(7)),
            ("@now", now), ("@limit", limit));
        foreach (var mail in due)
        {
            await c.ExecuteAsync("UPDATE mails SET leased_until = @until, leased_by = @node WHERE id = @id", tx, ("@until", until), ("@node", node), ("@id", mail.Id));
        }

        return due;
    }

    /// <summary>Frees the mails a node took before it stopped (or, with null, every lease: SQLite's one process).</summary>
    public static Task ReleaseAsync(DbConnection c, DbTransaction tx, string? node) => c.ExecuteAsync(
        "UPDATE mails SET leased_until = NULL, leased_by = NULL WHERE status = 'pending'" + (node is null ? "" : " AND leased_by = @node"), tx, ("@node", node));

    /// <summary>The mail went out: its body (which may hold a one-time link) is dropped.</summary>
    public static Task SentAsync(DbConnection c, DbTransaction tx, string id, string transport, string location, DateTimeOffset now) => c.ExecuteAsync(
        """
        UPDATE mails SET status = 'sent', body = NULL, attempts = attempts + 1, transport = @transport, location = @location,
            error = NULL, sent_at = @now, leased_until = NULL, leased_by = NULL
        WHERE id = @id
        """,
        tx, ("@id", id), ("@transport", transport), ("@location", location), ("@now", now));

    /// <summary>An attempt failed: tried again at <paramref name="next"/>, or given up (body dropped) when null.</summary>
    public static Task FailedAsync(DbConnection c, DbTransaction tx, string id, string error, DateTimeOffset? next) => c.ExecuteAsync(
        next is null
            ? "UPDATE mails SET status = 'failed', body = NULL, attempts = attempts + 1, error = @error, leased_until = NULL, leased_by = NULL WHERE id = @id"
            : "UPDATE mails SET attempts = attempts + 1, error = @error, next_attempt_at = @next, leased_until = NULL, leased_by = NULL WHERE id = @id",
        tx, ("@id", id), ("@error", error.Length > 500 ? error[..500] : error), ("@next", next));

    /// <summary>Mails newest first, before <paramref name="before"/> (a sequence number), optionally of one tenant.</summary>
    public static Task<List<MailRecord>> ListAsync(DbConnection c, Guid? tenantId, long before, int limit) => c.QueryAsync(
        $"SELECT {Columns} FROM mails WHERE seq < @before" + (tenantId is null ? "" : " AND tenant_id = @tenant") + " ORDER BY seq DESC LIMIT @limit",
        null, Read, ("@before", before), ("@tenant", tenantId), ("@limit", limit));

    public static async Task<MailRecord?> GetAsync(DbConnection c, string id) =>
        (await c.QueryAsync($"SELECT {Columns} FROM mails WHERE id = @id", null, Read, ("@id", id))).SingleOrDefault();

    private const string Columns = "id, tenant_id, kind, to_address, subject, status, attempts, error, transport, location, created_at, sent_at, seq";

    private static MailRecord Read(DbDataReader r) => new(
        r.GetString(0), r.ReadGuidOrNull(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), (int)r.GetInt64(6),
        r.ReadStringOrNull(7), r.ReadStringOrNull(8), r.ReadStringOrNull(9), r.ReadTime(10), r.ReadTimeOrNull(11), r.GetInt64(12));
}

/// <summary>Wakes the mail worker in this process when a mail is queued.</summary>
internal sealed class MailSignals : WakeSignal;
