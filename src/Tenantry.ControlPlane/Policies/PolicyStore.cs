using System.Data.Common;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Policies;

public sealed record StoredPolicy(string Kind, string Name, string Document, DateTimeOffset UpdatedAt);

/// <summary>Guardrails and tier templates in the control-plane store (table <c>access_policies</c>).</summary>
internal static class PolicyStore
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Policies", """

        CREATE TABLE IF NOT EXISTS access_policies (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            document TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (kind, name)
        );
        """);

    public const string GuardrailKind = "guardrail";
    public const string TemplateKind = "tier-template";

    public static Task<List<StoredPolicy>> ListAsync(DbConnection c, DbTransaction? tx) => c.QueryAsync(
        "SELECT kind, name, document, updated_at FROM access_policies ORDER BY kind, name",
        tx,
        r => new StoredPolicy(r.GetString(0), r.GetString(1), r.GetString(2), r.ReadTime(3)));

    public static async Task ReplaceGuardrailsAsync(DbConnection c, DbTransaction tx, IEnumerable<(string Name, string Document)> guardrails, DateTimeOffset now)
    {
        await c.ExecuteAsync("DELETE FROM access_policies WHERE kind = @kind", tx, ("@kind", GuardrailKind));
        foreach (var (name, document) in guardrails)
        {
            await c.ExecuteAsync(
                "INSERT INTO access_policies (kind, name, document, updated_at) VALUES (@kind, @name, @document, @now)",
                tx, ("@kind", GuardrailKind), ("@name", name), ("@document", document), ("@now", now));
        }
    }

    public static async Task PutTemplateAsync(DbConnection c, DbTransaction tx, string tier, string document, DateTimeOffset now)
    {
        await c.ExecuteAsync("DELETE FROM access_policies WHERE kind = @kind AND name = @name", tx, ("@kind", TemplateKind), ("@name", tier));
        await c.ExecuteAsync(
            "INSERT INTO access_policies (kind, name, document, updated_at) VALUES (@kind, @name, @document, @now)",
            tx, ("@kind", TemplateKind), ("@name", tier), ("@document", document), ("@now", now));
    }
}
