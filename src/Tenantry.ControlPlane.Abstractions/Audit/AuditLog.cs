using System.Data.Common;
using System.Security.Claims;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Audit;

public sealed record AuditEvent
{
    public required Guid Id { get; init; }
    public required DateTimeOffset Time { get; init; }
    public required string Actor { get; init; }
    public Guid? TenantId { get; init; }
    public required string Action { get; init; }
    public required string Outcome { get; init; }
    public JsonObject? Detail { get; init; }
    public long Sequence { get; init; }
}

/// <summary>Who an audited call was made by.</summary>
public static class AuditActor
{
    /// <summary>The subject of the caller's token, as audit events and records of who did what name it.</summary>
    public static string Actor(this ClaimsPrincipal user)
    {
        ArgumentNullException.ThrowIfNull(user);
        return user.FindFirst("sub")?.Value ?? "unknown";
    }
}

/// <summary>Append-only audit trail. Appends share the transaction of the change they record.</summary>
internal static class AuditLog
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Audit", """

        CREATE TABLE IF NOT EXISTS audit_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            time TEXT NOT NULL,
            actor TEXT NOT NULL,
            tenant_id TEXT NULL,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NULL
        );
        CREATE INDEX IF NOT EXISTS audit_tenant ON audit_events(tenant_id, seq);
        """);

    /// <summary>An event done by the caller of <paramref name="http"/> (its token's subject).</summary>
    public static AuditEvent ByCaller(HttpContext http, Guid? tenantId, string action, JsonObject? detail, DateTimeOffset now, string outcome = "succeeded")
    {
        ArgumentNullException.ThrowIfNull(http);
        return By(http.User.Actor(), tenantId, action, outcome, detail, now);
    }

    /// <summary>An event done by <paramref name="actor"/>: a caller's subject or the platform's own worker.</summary>
    public static AuditEvent By(string actor, Guid? tenantId, string action, string outcome, JsonObject? detail, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(),
        Time = now,
        Actor = actor,
        TenantId = tenantId,
        Action = action,
        Outcome = outcome,
        Detail = detail,
    };

    public static Task AppendAsync(DbConnection c, DbTransaction tx, AuditEvent e) => c.ExecuteAsync(
        "INSERT INTO audit_events (id, time, actor, tenant_id, action, outcome, detail) VALUES (@id, @time, @actor, @tenant, @action, @outcome, @detail)",
        tx,
        ("@id", e.Id), ("@time", e.Time), ("@actor", e.Actor), ("@tenant", e.TenantId), ("@action", e.Action),
        ("@outcome", e.Outcome), ("@detail", e.Detail?.ToJsonString()));

    public static Task<List<AuditEvent>> ListAsync(DbConnection c, Guid? tenantId, long after, int limit) => c.QueryAsync(
        "SELECT seq, id, time, actor, tenant_id, action, outcome, detail FROM audit_events WHERE seq > @after"
            + (tenantId is null ? "" : " AND tenant_id = @tenant") + " ORDER BY seq LIMIT @limit",
        null,
        r => new AuditEvent
        {
            Sequence = r.GetInt64(0),
            Id = r.ReadGuid(1),
            Time = r.ReadTime(2),
            Actor = r.GetString(3),
            TenantId = r.ReadGuidOrNull(4),
            Action = r.GetString(5),
            Outcome = r.GetString(6),
            Detail = r.IsDBNull(7) ? null : JsonNode.Parse(r.GetString(7))?.AsObject(),
        },
        ("@after", after), ("@tenant", tenantId), ("@limit", limit));
}
