using Npgsql;

namespace Tenantry.Data.Postgres;

/// <summary>One broken rule on one pool table.</summary>
public sealed record GuardRailViolation(string Table, string Rule, string Message)
{
    /// <summary>The table, the rule and why, on one line.</summary>
    public override string ToString() => $"{Table}: {Rule} ({Message})";
}

/// <summary>
/// Checks, from the catalog, that every tenant table in a pool schema (every table with a
/// <c>tenant_id</c> column) is protected the way the pool relies on: row-level security enabled
/// and forced; at least one policy, each scoped on <c>tenant_id</c> and
/// <c>app.tenant_id</c>, each with a WITH CHECK where it covers writes; no volatile function in a
/// policy; an index leading with <c>tenant_id</c>, and no unique index that does not lead with it
/// (else a unique violation would reveal another tenant's key). With <c>appRole</c>, also that the
/// role neither bypasses RLS nor owns a tenant table.
/// </summary>
public static class PoolGuardRails
{
    /// <summary>Row-level security is not enabled on the table.</summary>
    public const string RlsNotEnabled = "rls-not-enabled";
    /// <summary>Row-level security is not forced, so the table's owner bypasses it.</summary>
    public const string RlsNotForced = "rls-not-forced";
    /// <summary>The table has no policy (with RLS on, it shows nothing, which hides a missing migration).</summary>
    public const string NoPolicy = "no-policy";
    /// <summary>A permissive policy is not keyed on <c>tenant_id</c> = <c>app.tenant_id</c>.</summary>
    public const string PolicyNotTenantScoped = "policy-not-tenant-scoped";
    /// <summary>A policy that covers writes has no WITH CHECK, so a row could be written for another tenant.</summary>
    public const string NoWithCheck = "no-with-check";
    /// <summary>A policy calls a volatile function.</summary>
    public const string VolatileFunction = "volatile-function-in-policy";
    /// <summary>No index leads with <c>tenant_id</c>, so every tenant's query scans the table.</summary>
    public const string NoTenantIndex = "no-index-leading-with-tenant-id";
    /// <summary>A unique index does not lead with <c>tenant_id</c>: its violation reveals another tenant's key.</summary>
    public const string UniqueWithoutTenant = "unique-index-without-leading-tenant-id";
    /// <summary>The app role is a superuser or has BYPASSRLS.</summary>
    public const string AppRoleBypassesRls = "app-role-bypasses-rls";
    /// <summary>The app role owns a tenant table (an owner is exempt from RLS unless it is forced).</summary>
    public const string AppRoleOwnsTable = "app-role-owns-table";

    private const string TablesSql = """
        WITH tenant_tables AS (
            SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relowner, a.attnum AS tenant_attnum
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
            WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
        )
        SELECT t.relname,
               t.relrowsecurity,
               t.relforcerowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = t.oid)::int AS policies,
               (SELECT string_agg(p.polname, ', ' ORDER BY p.polname) FROM pg_policy p
                 WHERE p.polrelid = t.oid AND p.polcmd IN ('*', 'a', 'w') AND p.polwithcheck IS NULL) AS without_check,
               (SELECT string_agg(p.polname, ', ' ORDER BY p.polname) FROM pg_policy p
                 WHERE p.polrelid = t.oid AND p.polpermissive
                   AND NOT (coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''))
                           ~ 'tenant_id = \(?NULLIF\(current_setting\(''app\.tenant_id''::text, true\), ''''::text\)\)?::uuid') AS unscoped,
               (SELECT string_agg(DISTINCT f.proname, ', ') FROM pg_policy p
                 CROSS JOIN LATERAL regexp_matches(coalesce(p.polqual::text, '') || ' ' || coalesce(p.polwithcheck::text, ''), ':(?:opfuncid|funcid) (\d+)', 'g') AS m
                 JOIN pg_proc f ON f.oid = m[1]::oid
                 WHERE p.polrelid = t.oid AND f.provolatile = 'v') AS volatile_functions,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indkey[0] = t.tenant_attnum) AS tenant_index,
               (SELECT string_agg(ic.relname, ', ' ORDER BY ic.relname) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = t.oid AND i.indisunique AND i.indkey[0] <> t.tenant_attnum) AS unique_without_tenant,
               pg_get_userbyid(t.relowner) AS owner
        FROM tenant_tables t
        ORDER BY t.relname
        """;

    /// <summary>Every violation in <paramref name="schema"/>; empty when the pool is sound.</summary>
    public static async Task<IReadOnlyList<GuardRailViolation>> CheckAsync(NpgsqlConnection connection, string schema = "public", string? appRole = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(schema);
        var violations = new List<GuardRailViolation>();
        await using (var command = new NpgsqlCommand(TablesSql, connection))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = schema });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var table = reader.GetString(0);
                void Add(string rule, string message) => violations.Add(new GuardRailViolation(table, rule, message));
                string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);

                if (!reader.GetBoolean(1))
                {
                    Add(RlsNotEnabled, "row-level security is not enabled");
                }

                if (!reader.GetBoolean(2))
                {
                    Add(RlsNotForced, "row-level security is not forced, so the table owner bypasses it");
                }

                if (reader.GetInt32(3) == 0)
                {
                    Add(NoPolicy, "no policy: with RLS on, nobody but a bypassing role sees a row");
                }

                if (Text(4) is { } withoutCheck)
                {
                    Add(NoWithCheck, $"policies covering writes without an explicit WITH CHECK: {withoutCheck}");
                }

                if (Text(5) is { } unscoped)
                {
                    Add(PolicyNotTenantScoped, $"permissive policies not keyed on tenant_id = app.tenant_id: {unscoped}");
                }

                if (Text(6) is { } volatileFunctions)
                {
                    Add(VolatileFunction, $"volatile functions in policies (evaluated per row, unpredictable): {volatileFunctions}");
                }

                if (!reader.GetBoolean(7))
                {
                    Add(NoTenantIndex, "no index leads with tenant_id, so every tenant query scans other tenants' rows");
                }

                if (Text(8) is { } uniqueWithoutTenant)
                {
                    Add(UniqueWithoutTenant, $"unique indexes not leading with tenant_id (their violations reveal other tenants' keys): {uniqueWithoutTenant}");
                }

                if (appRole is not null && string.Equals(reader.GetString(9), appRole, StringComparison.Ordinal))
                {
                    Add(AppRoleOwnsTable, $"the app role {appRole} owns the table");
                }
            }
        }

        if (appRole is not null)
        {
            await using var command = new NpgsqlCommand("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = appRole });
            if (await command.ExecuteScalarAsync(cancellationToken) is true)
            {
                violations.Add(new GuardRailViolation("*", AppRoleBypassesRls, $"the app role {appRole} is SUPERUSER or BYPASSRLS"));
            }
        }

        return violations;
    }
}
