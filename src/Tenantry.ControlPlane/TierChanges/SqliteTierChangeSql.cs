using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>
/// SQLite files: the log carries <c>tenant_id</c> so the pool's tenant guard treats it as a tenant table (its
/// triggers may then write it from a tenant's session); its keys are JSON arrays.
/// </summary>
internal sealed class SqliteTierChangeSql : TierChangeSql
{
    public override async Task<List<TableShape>> TablesAsync(DbConnection c, TenantDataPlace place, CancellationToken ct)
    {
        var rows = await c.QueryAsync(
            """
            SELECT m.name, i.name, coalesce(i.type, ''), i.pk
            FROM sqlite_master m JOIN pragma_table_info(m.name) i
            WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\'
            ORDER BY m.name, i.cid
            """,
            null,
            r => (Table: r.GetString(0), Column: r.GetString(1), Type: r.GetString(2), Pk: r.GetInt64(3)));
        return Shapes(rows);
    }

    public override async Task InstallCaptureAsync(DbConnection c, TenantDataPlace place, Guid tenant, IReadOnlyList<TableShape> tables, CancellationToken ct)
    {
        var log = Quote(LogTable(tenant));
        var id = Literal(tenant.ToString());
        var sql = new StringBuilder($"CREATE TABLE IF NOT EXISTS {log} (seq INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL, applied INTEGER NOT NULL DEFAULT 0);\n");
        foreach (var table in tables)
        {
            var t = Quote(table.Name);
            string Key(string row) => $"json_array({string.Join(", ", KeyOf(table).Select(k => $"{row}.{Quote(k)}"))})";
            string Record(string row) => $"INSERT INTO {log} (tenant_id, tbl, pk) VALUES ({id}, {Literal(table.Name)}, {Key(row)});";
            var (onNew, onOld, onEither) = place.Shared
                ? ($" WHEN NEW.tenant_id = {id}", $" WHEN OLD.tenant_id = {id}", $" WHEN OLD.tenant_id = {id} OR NEW.tenant_id = {id}")
                : ("", "", "");
            sql.Append(CultureInfo.InvariantCulture, $"""
                CREATE TRIGGER IF NOT EXISTS {Quote(TriggerName(tenant, table, "ci"))} AFTER INSERT ON {t}{onNew} BEGIN {Record("NEW")} END;
                CREATE TRIGGER IF NOT EXISTS {Quote(TriggerName(tenant, table, "cu"))} AFTER UPDATE ON {t}{onEither} BEGIN {Record("NEW")} {Record("OLD")} END;
                CREATE TRIGGER IF NOT EXISTS {Quote(TriggerName(tenant, table, "cd"))} AFTER DELETE ON {t}{onOld} BEGIN {Record("OLD")} END;

                """);
        }

        await InTransactionAsync(c, sql.ToString(), ct);
    }

    public override async Task FreezeAsync(DbConnection c, TenantDataPlace place, Guid tenant, IReadOnlyList<TableShape> tables, CancellationToken ct)
    {
        var id = Literal(tenant.ToString());
        var raise = $"SELECT RAISE(ABORT, {Literal(FrozenMessage)});";
        var sql = new StringBuilder();
        foreach (var table in tables)
        {
            var t = Quote(table.Name);
            var (onNew, onOld) = place.Shared ? ($" WHEN NEW.tenant_id = {id}", $" WHEN OLD.tenant_id = {id}") : ("", "");
            sql.Append(CultureInfo.InvariantCulture, $"""
                CREATE TRIGGER IF NOT EXISTS {Quote(TriggerName(tenant, table, "fi"))} BEFORE INSERT ON {t}{onNew} BEGIN {raise} END;
                CREATE TRIGGER IF NOT EXISTS {Quote(TriggerName(tenant, table, "fu"))} BEFORE UPDATE ON {t}{onOld} BEGIN {raise} END;
                CREATE TRIGGER IF NOT EXISTS {Quote(TriggerName(tenant, table, "fd"))} BEFORE DELETE ON {t}{onOld} BEGIN {raise} END;

                """);
        }

        await InTransactionAsync(c, sql.ToString(), ct);
    }

    public override async Task DropMoveAsync(DbConnection c, TenantDataPlace place, Guid tenant, CancellationToken ct)
    {
        var triggers = await c.QueryAsync(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, @n) = @prefix", null, r => r.GetString(0),
            ("@n", ("tenantry_tier_" + Short(tenant) + "_").Length), ("@prefix", "tenantry_tier_" + Short(tenant) + "_"));
        var sql = new StringBuilder();
        foreach (var trigger in triggers)
        {
            sql.Append(CultureInfo.InvariantCulture, $"DROP TRIGGER IF EXISTS {Quote(trigger)};\n");
        }

        sql.Append(CultureInfo.InvariantCulture, $"DROP TABLE IF EXISTS {Quote(LogTable(tenant))};");
        await InTransactionAsync(c, sql.ToString(), ct);
    }

    public override async Task<long> CopyAsync(DbConnection source, TenantDataPlace from, DbConnection target, TenantDataPlace to, Guid tenant, TableMap map,
        int batchSize, Func<CancellationToken, Task> afterBatch, CancellationToken ct)
    {
        var id = tenant.ToString();
        await using (var clear = await target.BeginTransactionAsync(ct))
        {
            await target.ExecuteAsync($"DELETE FROM {Quote(map.Name)}{(to.Shared ? " WHERE tenant_id = @t" : "")}", clear, ("@t", id));
            await clear.CommitAsync(ct);
        }

        await using var read = source.Command(
            $"SELECT {Select(map)} FROM {Quote(map.Name)}{(from.Shared ? " WHERE tenant_id = @t" : "")}", null, ("@t", id));
        await using var rows = await read.ExecuteReaderAsync(ct);
        var copied = 0L;
        while (true)
        {
            var inBatch = 0;
            await using (var tx = await target.BeginTransactionAsync(ct))
            {
                await using var insert = Insert(target, tx, map);
                while (inBatch < batchSize && await rows.ReadAsync(ct))
                {
                    for (var i = 0; i < map.Columns.Count; i++)
                    {
                        insert.Parameters[i].Value = rows.GetValue(i);
                    }

                    await insert.ExecuteNonQueryAsync(ct);
                    inBatch++;
                }

                await tx.CommitAsync(ct);
            }

            copied += inBatch;
            if (inBatch < batchSize)
            {
                return copied;
            }

            await afterBatch(ct);
        }
    }

    public override async Task<int> CatchUpAsync(DbConnection source, TenantDataPlace from, DbConnection target, TenantDataPlace to, Guid tenant,
        IReadOnlyList<TableMap> maps, int max, bool keep, CancellationToken ct)
    {
        if (!await HasLogAsync(source, tenant))
        {
            return 0;
        }

        var id = tenant.ToString();
        var changes = await source.QueryAsync(
            $"SELECT seq, tbl, pk FROM {Quote(LogTable(tenant))} WHERE applied = 0 ORDER BY seq LIMIT @max", null,
            r => (Seq: r.GetInt64(0), Table: r.GetString(1), Key: r.GetString(2)), ("@max", max));
        if (changes.Count == 0)
        {
            return 0;
        }

        await using (var tx = await target.BeginTransactionAsync(ct))
        {
            foreach (var group in changes.GroupBy(c => c.Table, StringComparer.Ordinal))
            {
                var map = maps.FirstOrDefault(m => m.Name == group.Key);
                if (map is null)
                {
                    continue;
                }

                var match = string.Join(" AND ", map.Key.Select((k, i) => $"{Quote(k)} IS @k{i}"));
                await using var delete = target.Command(
                    $"DELETE FROM {Quote(map.Name)} WHERE {(to.Shared ? "tenant_id = @t" : "1 = 1")}{(match.Length > 0 ? " AND " + match : "")}", tx, ("@t", id));
                await using var select = source.Command(
                    $"SELECT {Select(map)} FROM {Quote(map.Name)} WHERE {(from.Shared ? "tenant_id = @t" : "1 = 1")}{(match.Length > 0 ? " AND " + match : "")}", null, ("@t", id));
                for (var i = 0; i < map.Key.Count; i++)
                {
                    delete.Parameters.Add(Parameter(delete, $"@k{i}"));
                    select.Parameters.Add(Parameter(select, $"@k{i}"));
                }

                await using var insert = Insert(target, tx, map);
                foreach (var key in group.Select(g => g.Key).Distinct(StringComparer.Ordinal))
                {
                    var values = KeyValues(key);
                    for (var i = 0; i < map.Key.Count; i++)
                    {
                        delete.Parameters[i + 1].Value = i < values.Count ? values[i] : DBNull.Value;
                        select.Parameters[i + 1].Value = i < values.Count ? values[i] : DBNull.Value;
                    }

                    await delete.ExecuteNonQueryAsync(ct);
                    await using var rows = await select.ExecuteReaderAsync(ct);
                    while (await rows.ReadAsync(ct))
                    {
                        for (var i = 0; i < map.Columns.Count; i++)
                        {
                            insert.Parameters[i].Value = rows.GetValue(i);
                        }

                        await insert.ExecuteNonQueryAsync(ct);
                    }
                }
            }

            await tx.CommitAsync(ct);
        }

        // One writer at a time: an entry's seq is given in commit order, so every entry up to the last one read was read.
        var log = Quote(LogTable(tenant));
        await source.ExecuteAsync(
            keep ? $"UPDATE {log} SET applied = 1 WHERE seq <= @seq AND applied = 0" : $"DELETE FROM {log} WHERE seq <= @seq AND applied = 0", null, ("@seq", changes[^1].Seq));
        return changes.Count;
    }

    public override async Task<long> BacklogAsync(DbConnection source, TenantDataPlace from, Guid tenant, CancellationToken ct) =>
        await HasLogAsync(source, tenant)
            ? Convert.ToInt64(await source.ScalarAsync($"SELECT count(*) FROM {Quote(LogTable(tenant))} WHERE applied = 0", null), CultureInfo.InvariantCulture)
            : 0;

    public override async Task<Dictionary<string, List<string>>> ChangedKeysAsync(DbConnection source, DbTransaction? tx, TenantDataPlace from, Guid tenant, bool applied,
        CancellationToken ct)
    {
        if (!await HasLogAsync(source, tenant, tx))
        {
            return new(StringComparer.Ordinal);
        }

        var rows = await source.QueryAsync(
            $"SELECT DISTINCT tbl, pk FROM {Quote(LogTable(tenant))} WHERE applied = @applied", tx, r => (Table: r.GetString(0), Key: r.GetString(1)), ("@applied", applied ? 1 : 0));
        return rows.GroupBy(r => r.Table, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(r => r.Key).ToList(), StringComparer.Ordinal);
    }

    /// <summary>A deferred transaction: its first read fixes its snapshot of the WAL file, and writers go on meanwhile.</summary>
    public override Task<DbTransaction> BeginSnapshotAsync(DbConnection c, CancellationToken ct) =>
        Task.FromResult<DbTransaction>(((Microsoft.Data.Sqlite.SqliteConnection)c).BeginTransaction(deferred: true));

    public override async Task<(long Rows, string Sum)> ChecksumAsync(DbConnection c, DbTransaction? tx, TenantDataPlace place, Guid tenant, TableShape table,
        IReadOnlyList<string> columns, KeyFilter? keys, CancellationToken ct)
    {
        var list = columns.Count == 0 ? "1" : string.Join(", ", columns.Select(Quote));
        var where = place.Shared ? "tenant_id = @t" : "1 = 1";
        var sum = new RowSum();
        if (keys is null || keys.Columns.Count == 0 || (keys.Except && keys.Keys.Count == 0))
        {
            await using var all = c.Command($"SELECT {list} FROM {Quote(table.Name)} WHERE {where}", tx, ("@t", tenant.ToString()));
            await sum.AddAsync(all, ct);
        }
        else if (keys.Except)
        {
            // The key as the log's triggers write it (json_array of the same columns), so both spell it alike.
            await using var but = c.Command(
                $"SELECT {list} FROM {Quote(table.Name)} WHERE {where} AND json_array({string.Join(", ", keys.Columns.Select(Quote))}) NOT IN (SELECT value FROM json_each(@keys))",
                tx, ("@t", tenant.ToString()), ("@keys", "[" + string.Join(",", keys.Keys) + "]"));
            await sum.AddAsync(but, ct);
        }
        else
        {
            // Key by key, each found by its index.
            await using var one = c.Command(
                $"SELECT {list} FROM {Quote(table.Name)} WHERE {where} AND {string.Join(" AND ", keys.Columns.Select((k, i) => $"{Quote(k)} IS @k{i}"))}", tx, ("@t", tenant.ToString()));
            for (var i = 0; i < keys.Columns.Count; i++)
            {
                one.Parameters.Add(Parameter(one, $"@k{i}"));
            }

            foreach (var key in keys.Keys)
            {
                var values = KeyValues(key);
                for (var i = 0; i < keys.Columns.Count; i++)
                {
                    one.Parameters[i + 1].Value = i < values.Count ? values[i] : DBNull.Value;
                }

                await sum.AddAsync(one, ct);
            }
        }

        return (sum.Count, sum.Sum.ToString(CultureInfo.InvariantCulture));
    }

    private static async Task<bool> HasLogAsync(DbConnection c, Guid tenant, DbTransaction? tx = null) =>
        await c.ScalarAsync("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = @name", tx, ("@name", LogTable(tenant))) is not null;

    /// <summary>The count and the sum of a hash of each row's canonical text (typed, so 1 and '1' differ).</summary>
    private sealed class RowSum
    {
        private readonly StringBuilder _text = new();
        private readonly byte[] _hash = new byte[32];

        public long Count { get; private set; }

        public ulong Sum { get; private set; }

        public async Task AddAsync(DbCommand read, CancellationToken ct)
        {
            await using var rows = await read.ExecuteReaderAsync(ct);
            while (await rows.ReadAsync(ct))
            {
                _text.Clear();
                for (var i = 0; i < rows.FieldCount; i++)
                {
                    _text.Append(rows.GetValue(i) switch
                    {
                        DBNull => "n",
                        byte[] bytes => "b" + Convert.ToBase64String(bytes),
                        long l => "i" + l.ToString(CultureInfo.InvariantCulture),
                        double d => "r" + d.ToString("R", CultureInfo.InvariantCulture),
                        var v => "t" + Convert.ToString(v, CultureInfo.InvariantCulture),
                    }).Append('\u001f');
                }

                SHA256.HashData(Encoding.UTF8.GetBytes(_text.ToString()), _hash);
                Sum = unchecked(Sum + BitConverter.ToUInt64(_hash));
                Count++;
            }
        }
    }

    /// <summary>The source's expressions for the target's columns: the column, or the tenant id where only the target has <c>tenant_id</c>.</summary>
    private static string Select(TableMap map) =>
        string.Join(", ", map.Columns.Select(c => map.Source.Has(c) ? Quote(c) : "@t"));

    private static DbCommand Insert(DbConnection target, DbTransaction tx, TableMap map)
    {
        var insert = target.Command(
            $"INSERT INTO {Quote(map.Name)} ({string.Join(", ", map.Columns.Select(Quote))}) VALUES ({string.Join(", ", map.Columns.Select((_, i) => "@p" + i.ToString(CultureInfo.InvariantCulture)))})",
            tx);
        for (var i = 0; i < map.Columns.Count; i++)
        {
            insert.Parameters.Add(Parameter(insert, "@p" + i.ToString(CultureInfo.InvariantCulture)));
        }

        return insert;
    }

    private static DbParameter Parameter(DbCommand command, string name)
    {
        var p = command.CreateParameter();
        p.ParameterName = name;
        p.Value = DBNull.Value;
        return p;
    }

    private static List<object> KeyValues(string json)
    {
        using var document = JsonDocument.Parse(json);
        return [.. document.RootElement.EnumerateArray().Select(e => e.ValueKind switch
        {
            JsonValueKind.Number when e.TryGetInt64(out var l) => (object)l,
            JsonValueKind.Number => e.GetDouble(),
            JsonValueKind.String => e.GetString()!,
            JsonValueKind.True => 1L,
            JsonValueKind.False => 0L,
            _ => DBNull.Value,
        })];
    }
}
