using System.Data.Common;
using System.Text;
using System.Text.Json.Nodes;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Tenants;

/// <summary>The tenant registry's table. Callers own the transaction.</summary>
internal static class TenantStore
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Tenants", """

        CREATE TABLE IF NOT EXISTS tenants (
            id TEXT PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            tier TEXT NOT NULL,
            isolation TEXT NOT NULL,
            status TEXT NOT NULL,
            status_reason TEXT NULL,
            admin_email TEXT NOT NULL,
            config TEXT NOT NULL,
            resources TEXT NOT NULL,
            version INTEGER NOT NULL,
            current_operation_id TEXT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS tenants_status_id ON tenants(status, id);
        CREATE INDEX IF NOT EXISTS tenants_tier_id ON tenants(tier, id);
        """);

    private const string Columns =
        "id, slug, name, tier, isolation, status, status_reason, admin_email, config, resources, version, current_operation_id, created_at, updated_at";

    public static Task InsertAsync(DbConnection c, DbTransaction tx, Tenant t) => c.ExecuteAsync(
        $"INSERT INTO tenants ({Columns}) VALUES (@id, @slug, @name, @tier, @isolation, @status, @reason, @email, @config, @resources, @version, @op, @created, @updated)",
        tx,
        ("@id", t.Id), ("@slug", t.Slug), ("@name", t.Name), ("@tier", t.Tier), ("@isolation", t.Isolation.ToWire()),
        ("@status", t.Status.ToWire()), ("@reason", t.StatusReason), ("@email", t.AdminEmail),
        ("@config", t.Config.ToJsonString()), ("@resources", t.Resources.ToJsonString()), ("@version", t.Version),
        ("@op", t.CurrentOperationId), ("@created", t.CreatedAt), ("@updated", t.UpdatedAt));

    /// <summary>Writes <paramref name="t"/> if the stored version is still <paramref name="expectedVersion"/>.</summary>
    public static async Task<bool> UpdateAsync(DbConnection c, DbTransaction tx, Tenant t, long expectedVersion) => await c.ExecuteAsync(
        """
        UPDATE tenants SET name = @name, tier = @tier, isolation = @isolation, status = @status, status_reason = @reason, admin_email = @email,
            config = @config, resources = @resources, version = @version, current_operation_id = @op, updated_at = @updated
        WHERE id = @id AND version = @expected
        """,
        tx,
        ("@id", t.Id), ("@name", t.Name), ("@tier", t.Tier), ("@isolation", t.Isolation.ToWire()), ("@status", t.Status.ToWire()), ("@reason", t.StatusReason),
        ("@email", t.AdminEmail), ("@config", t.Config.ToJsonString()), ("@resources", t.Resources.ToJsonString()),
        ("@version", t.Version), ("@op", t.CurrentOperationId), ("@updated", t.UpdatedAt), ("@expected", expectedVersion)) == 1;

    public static async Task<Tenant?> GetAsync(DbConnection c, DbTransaction? tx, Guid id) =>
        (await c.QueryAsync($"SELECT {Columns} FROM tenants WHERE id = @id", tx, Read, ("@id", id))).SingleOrDefault();

    /// <summary>By id or slug, as every <c>{id}</c> in the API accepts both.</summary>
    public static async Task<Tenant?> FindAsync(DbConnection c, DbTransaction? tx, string idOrSlug)
    {
        if (Guid.TryParse(idOrSlug, out var id))
        {
            return await GetAsync(c, tx, id);
        }

        return TenantRules.CheckSlug(idOrSlug) is null
            ? (await c.QueryAsync($"SELECT {Columns} FROM tenants WHERE slug = @slug", tx, Read, ("@slug", idOrSlug))).SingleOrDefault()
            : null;
    }

    public static async Task<bool> SlugTakenAsync(DbConnection c, DbTransaction? tx, string slug) =>
        await c.ScalarAsync("SELECT 1 FROM tenants WHERE slug = @slug", tx, ("@slug", slug)) is not null;

    public static Task<List<Tenant>> ListAsync(DbConnection c, TenantFilter filter)
    {
        var sql = new StringBuilder($"SELECT {Columns} FROM tenants WHERE 1 = 1");
        var parameters = new List<(string, object?)>();
        if (filter.Status is { } status)
        {
            sql.Append(" AND status = @status");
            parameters.Add(("@status", status.ToWire()));
        }

        if (filter.Tier is { } tier)
        {
            sql.Append(" AND tier = @tier");
            parameters.Add(("@tier", tier));
        }

        if (!string.IsNullOrEmpty(filter.Search))
        {
            // Substring search on slug and name; the pattern is a parameter, its wildcards escaped.
            sql.Append(" AND (slug LIKE @q ESCAPE '\\' OR lower(name) LIKE @q ESCAPE '\\')");
            var escaped = filter.Search.ToLowerInvariant().Replace("\\", "\\\\", StringComparison.Ordinal)
                .Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal);
            parameters.Add(("@q", $"%{escaped}%"));
        }

        if (filter.After is { } after)
        {
            sql.Append(" AND id > @after");
            parameters.Add(("@after", after));
        }

        sql.Append(" ORDER BY id LIMIT @limit");
        parameters.Add(("@limit", filter.Limit));
        return c.QueryAsync(sql.ToString(), null, Read, [.. parameters]);
    }

    private static Tenant Read(DbDataReader r)
    {
        return new Tenant
        {
            Id = r.ReadGuid(0),
            Slug = r.GetString(1),
            Name = r.GetString(2),
            Tier = r.GetString(3),
            Isolation = WireNames.ParseIsolation(r.GetString(4)),
            Status = WireNames.ParseStatus(r.GetString(5)),
            StatusReason = r.ReadStringOrNull(6),
            AdminEmail = r.GetString(7),
            Config = JsonNode.Parse(r.GetString(8))!.AsObject(),
            Resources = JsonNode.Parse(r.GetString(9))!.AsObject(),
            Version = r.GetInt64(10),
            CurrentOperationId = r.ReadGuidOrNull(11),
            CreatedAt = r.ReadTime(12),
            UpdatedAt = r.ReadTime(13),
        };
    }
}
