using System.Data.Common;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Providers;
using Tenantry.Data;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>
/// The engine's part of a data move, on connections opened raw to the source and the target (same engine).
/// Change capture and the freeze are triggers on the source, named after the tenant so moves of two pool
/// tenants never touch each other's; trigger DDL takes no parameters, so the tenant id in it is a
/// <see cref="Guid"/> formatted here, never a caller's text.
/// </summary>
internal abstract class TierChangeSql
{
    /// <summary>What a write of a frozen tenant's rows fails with.</summary>
    protected const string FrozenMessage = TenantDataFrozen.Message;

    public static TierChangeSql For(TenantDataPlace place) => place.Engine == "postgresql" ? new PostgresTierChangeSql() : new SqliteTierChangeSql();

    public abstract Task<List<TableShape>> TablesAsync(DbConnection c, TenantDataPlace place, CancellationToken ct);

    /// <summary>The change log and the triggers that record, for each insert, update and delete of the tenant's rows, the row's key.</summary>
    public abstract Task InstallCaptureAsync(DbConnection c, TenantDataPlace place, Guid tenant, IReadOnlyList<TableShape> tables, CancellationToken ct);

    /// <summary>Triggers that refuse every write of the tenant's rows (reads go on).</summary>
    public abstract Task FreezeAsync(DbConnection c, TenantDataPlace place, Guid tenant, IReadOnlyList<TableShape> tables, CancellationToken ct);

    /// <summary>Drops every trigger, function and log of the tenant's move (capture and freeze); idempotent.</summary>
    public abstract Task DropMoveAsync(DbConnection c, TenantDataPlace place, Guid tenant, CancellationToken ct);

    /// <summary>Empties the tenant's rows of the table at the target, then copies the source's, streaming. Returns the rows copied.</summary>
    public abstract Task<long> CopyAsync(DbConnection source, TenantDataPlace from, DbConnection target, TenantDataPlace to, Guid tenant, TableMap map,
        int batchSize, Func<CancellationToken, Task> afterBatch, CancellationToken ct);

    /// <summary>
    /// Applies up to <paramref name="max"/> recorded changes not applied yet, oldest first: each changed key is
    /// deleted at the target and its row, if the source still has it, copied again. Then those log entries go, or,
    /// with <paramref name="keep"/>, stay marked applied: the keys changed since the bulk verify, which the verify
    /// under the freeze checks. Returns how many it applied.
    /// </summary>
    public abstract Task<int> CatchUpAsync(DbConnection source, TenantDataPlace from, DbConnection target, TenantDataPlace to, Guid tenant,
        IReadOnlyList<TableMap> maps, int max, bool keep, CancellationToken ct);

    /// <summary>How many changes the log holds that catch-up has not applied.</summary>
    public abstract Task<long> BacklogAsync(DbConnection source, TenantDataPlace from, Guid tenant, CancellationToken ct);

    /// <summary>The distinct keys (JSON arrays, as the log writes them) of the log's changes, by table: those not applied yet, or those applied and kept.</summary>
    public abstract Task<Dictionary<string, List<string>>> ChangedKeysAsync(DbConnection source, DbTransaction? tx, TenantDataPlace from, Guid tenant, bool applied,
        CancellationToken ct);

    /// <summary>A read-only transaction whose reads all see one snapshot of the database, while writers go on.</summary>
    public abstract Task<DbTransaction> BeginSnapshotAsync(DbConnection c, CancellationToken ct);

    /// <summary>
    /// The row count and an order-independent checksum (a sum of a hash of each row's canonical text) of the
    /// tenant's rows of the table: all of them, or only those whose key is in <paramref name="keys"/>, or all
    /// but those (<see cref="KeyFilter.Except"/>).
    /// </summary>
    public abstract Task<(long Rows, string Sum)> ChecksumAsync(DbConnection c, DbTransaction? tx, TenantDataPlace place, Guid tenant, TableShape table,
        IReadOnlyList<string> columns, KeyFilter? keys, CancellationToken ct);

    /// <summary>The tenant's part of trigger, function and log names: the random end of its id.</summary>
    protected static string Short(Guid tenant) => tenant.ToString("N")[^12..];

    protected static string LogTable(Guid tenant) => "tenantry_tier_log_" + Short(tenant);

    protected static string TriggerName(Guid tenant, TableShape table, string kind) =>
        $"tenantry_tier_{Short(tenant)}_{TableMap.TagOf(table.Name)}_{kind}";

    protected static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    protected static string Literal(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";

    /// <summary>The key the log records for a table.</summary>
    protected static IReadOnlyList<string> KeyOf(TableShape table) => TableMap.KeyOf(table);

    /// <summary>The tables described by catalog rows (one per column, in column order; <c>Pk</c> is the column's place in the primary key, 0 when not in it).</summary>
    protected static List<TableShape> Shapes(IEnumerable<(string Table, string Column, string Type, long Pk)> rows) =>
        [.. rows.GroupBy(r => r.Table, StringComparer.Ordinal).Select(g => new TableShape(
            g.Key,
            [.. g.Select(r => (r.Column, r.Type))],
            [.. g.Where(r => r.Pk > 0).OrderBy(r => r.Pk).Select(r => r.Column)]))];

    /// <summary>Runs <paramref name="sql"/> (DDL, several statements) in a transaction of its own.</summary>
    protected static async Task InTransactionAsync(DbConnection c, string sql, CancellationToken ct)
    {
        await using var tx = await c.BeginTransactionAsync(ct);
        await c.ExecuteAsync(sql, tx);
        await tx.CommitAsync(ct);
    }
}

/// <summary>Rows picked by their key: <paramref name="Columns"/> (a table's key, see <see cref="TableMap.KeyOf"/>) against the log's JSON arrays.</summary>
internal sealed record KeyFilter(IReadOnlyList<string> Columns, IReadOnlyCollection<string> Keys, bool Except);
