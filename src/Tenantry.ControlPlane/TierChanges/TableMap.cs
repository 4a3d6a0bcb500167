using System.Security.Cryptography;
using System.Text;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>A table as the catalog describes it: its columns in order with their types, and its primary key.</summary>
internal sealed record TableShape(string Name, IReadOnlyList<(string Name, string Type)> Columns, IReadOnlyList<string> PrimaryKey)
{
    public bool Has(string column) => Columns.Any(c => string.Equals(c.Name, column, StringComparison.OrdinalIgnoreCase));

    public string TypeOf(string column) => Columns.First(c => string.Equals(c.Name, column, StringComparison.OrdinalIgnoreCase)).Type;
}

/// <summary>
/// How one table's rows go from the source to the target. Every tenant table has the same shape in every
/// isolation model but for <c>tenant_id</c>, which a table of the built-in tenant schema carries on the pool
/// only: a target column the source lacks is that tenant id; a source column the target lacks must be it.
/// Rows are matched by their key: the source's primary key without <c>tenant_id</c> (all columns when there is none).
/// </summary>
internal sealed record TableMap(TableShape Source, TableShape Target)
{
    public const string TenantColumn = "tenant_id";

    public string Name => Source.Name;

    /// <summary>The target's columns, which every copied row fills.</summary>
    public IReadOnlyList<string> Columns => [.. Target.Columns.Select(c => c.Name)];

    /// <summary>The columns both sides hold but <c>tenant_id</c>: what the checksum covers.</summary>
    public IReadOnlyList<string> Compared => [.. Target.Columns.Select(c => c.Name).Where(c => Source.Has(c) && !IsTenant(c))];

    /// <summary>The key the change log records and catch-up matches on.</summary>
    public IReadOnlyList<string> Key => KeyOf(Source);

    public bool SourceHasTenant => Source.Has(TenantColumn);

    public bool TargetHasTenant => Target.Has(TenantColumn);

    /// <summary>A short, stable tag of the table for trigger names (table names may be long or quoted).</summary>
    public string Tag => TagOf(Name);

    public static bool IsTenant(string column) => string.Equals(column, TenantColumn, StringComparison.OrdinalIgnoreCase);

    /// <summary>A table's key: its primary key without <c>tenant_id</c>, else every column but <c>tenant_id</c>.</summary>
    public static IReadOnlyList<string> KeyOf(TableShape table) => table.PrimaryKey.Count > 0
        ? [.. table.PrimaryKey.Where(c => !IsTenant(c))]
        : [.. table.Columns.Select(c => c.Name).Where(c => !IsTenant(c))];

    public static string TagOf(string table) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(table)))[..8];

    /// <summary>Whether a table of <paramref name="source"/> holds tenant data that moves (on a shared pool, only tables with <c>tenant_id</c>).</summary>
    public static bool Moves(TenantDataPlace source, TableShape table) =>
        !Internal(source.Engine, table.Name) && (!source.Shared || table.Has(TenantColumn));

    /// <summary>
    /// The tables to move: the source's tenant tables (on a shared pool only those with <c>tenant_id</c>), without the
    /// provider's and the migration runners' own, each with its counterpart at the target.
    /// </summary>
    public static List<TableMap> Plan(TenantDataPlace source, IReadOnlyList<TableShape> sourceTables, IReadOnlyList<TableShape> targetTables)
    {
        var maps = new List<TableMap>();
        foreach (var table in sourceTables.Where(t => Moves(source, t)))
        {
            var target = targetTables.FirstOrDefault(t => t.Name == table.Name)
                ?? throw new PermanentStepException($"The target has no table '{table.Name}'; the apps' schema did not reach it.");
            foreach (var column in table.Columns.Where(c => !IsTenant(c.Name) && !target.Has(c.Name)))
            {
                throw new PermanentStepException($"Table '{table.Name}' has column '{column.Name}' at the source but not at the target.");
            }

            maps.Add(new TableMap(table, target));
        }

        return maps;
    }

    /// <summary>Tables that are not the tenant's data: ledgers, the provider's own, and this feature's change logs.</summary>
    public static bool Internal(string engine, string table) =>
        table is "schema_migrations" or "tenantry_app_migrations" or "tenantry_app_seeds"
        || table.StartsWith("tenantry_tier_", StringComparison.Ordinal)
        || (engine == "sqlite" && table is "tenants" or "tenant_info");
}
