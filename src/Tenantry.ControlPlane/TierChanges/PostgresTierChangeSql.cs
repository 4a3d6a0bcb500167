using System.Data.Common;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;
using NpgsqlTypes;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>
/// PostgreSQL: each table is copied with one binary <c>COPY … TO STDOUT</c> piped into <c>COPY … FROM STDIN</c>
/// (streamed, never held in memory); the log's keys are <c>jsonb</c> arrays written by a <c>SECURITY DEFINER</c>
/// trigger function, so a tenant role's writes may record them without any right on the log, which row-level
/// security with no policy closes to everyone but its owner. Catch-up moves rows as text, cast to the target's types.
/// </summary>
internal sealed class PostgresTierChangeSql : TierChangeSql
{
    public override async Task<List<TableShape>> TablesAsync(DbConnection c, TenantDataPlace place, CancellationToken ct)
    {
        var rows = new List<(string Table, string Column, string Type, long Pk)>();
        await using (var read = new NpgsqlCommand(
            """
            SELECT cl.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                   coalesce((SELECT array_position(i.indkey::int2[], a.attnum) FROM pg_index i WHERE i.indrelid = cl.oid AND i.indisprimary), 0)
            FROM pg_class cl
            JOIN pg_namespace n ON n.oid = cl.relnamespace
            JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = $1 AND cl.relkind IN ('r', 'p')
            ORDER BY cl.relname, a.attnum
            """, (NpgsqlConnection)c) { Parameters = { new() { Value = place.Schema! } } })
        await using (var reader = await read.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                rows.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt32(3)));
            }
        }

        return Shapes(rows);
    }

    public override async Task InstallCaptureAsync(DbConnection c, TenantDataPlace place, Guid tenant, IReadOnlyList<TableShape> tables, CancellationToken ct)
    {
        var s = Quote(place.Schema!);
        var log = $"{s}.{Quote(LogTable(tenant))}";
        var function = $"{s}.{Quote(LogTable(tenant))}";
        var sql = new StringBuilder($$"""
            CREATE TABLE IF NOT EXISTS {{log}} (seq bigserial PRIMARY KEY, tbl text NOT NULL, pk jsonb NOT NULL, applied boolean NOT NULL DEFAULT false);
            CREATE INDEX IF NOT EXISTS {{Quote(LogTable(tenant) + "_pending")}} ON {{log}} (seq) WHERE NOT applied;
            ALTER TABLE {{log}} ENABLE ROW LEVEL SECURITY;
            CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $tenantry$
            DECLARE
                c text;
                r jsonb;
                k jsonb;
                o jsonb;
            BEGIN
                IF TG_OP <> 'DELETE' THEN
                    r := to_jsonb(NEW);
                    k := '[]'::jsonb;
                    FOREACH c IN ARRAY TG_ARGV LOOP
                        k := k || jsonb_build_array(r -> c);
                    END LOOP;
                    INSERT INTO {{log}} (tbl, pk) VALUES (TG_TABLE_NAME, k);
                END IF;
                IF TG_OP <> 'INSERT' THEN
                    r := to_jsonb(OLD);
                    o := '[]'::jsonb;
                    FOREACH c IN ARRAY TG_ARGV LOOP
                        o := o || jsonb_build_array(r -> c);
                    END LOOP;
                    IF o IS DISTINCT FROM k THEN
                        INSERT INTO {{log}} (tbl, pk) VALUES (TG_TABLE_NAME, o);
                    END IF;
                END IF;
                RETURN NULL;
            END
            $tenantry$;

            """);
        foreach (var table in tables)
        {
            var t = $"{s}.{Quote(table.Name)}";
            var args = string.Join(", ", KeyOf(table).Select(Literal));
            var (onNew, onOld, onEither) = When(place, tenant);
            foreach (var (kind, ev, when) in new[] { ("ci", "INSERT", onNew), ("cu", "UPDATE", onEither), ("cd", "DELETE", onOld) })
            {
                var name = Quote(TriggerName(tenant, table, kind));
                sql.Append(CultureInfo.InvariantCulture, $"""
                    DROP TRIGGER IF EXISTS {name} ON {t};
                    CREATE TRIGGER {name} AFTER {ev} ON {t} FOR EACH ROW{when} EXECUTE FUNCTION {function}({args});

                    """);
            }
        }

        await InTransactionAsync(c, sql.ToString(), ct);
    }

    public override async Task FreezeAsync(DbConnection c, TenantDataPlace place, Guid tenant, IReadOnlyList<TableShape> tables, CancellationToken ct)
    {
        var s = Quote(place.Schema!);
        var function = $"{s}.{Quote("tenantry_tier_frozen_" + Short(tenant))}";
        var sql = new StringBuilder($"""
            CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $tenantry$
            BEGIN
                RAISE EXCEPTION USING ERRCODE = '55P03', MESSAGE = {Literal(FrozenMessage)};
            END
            $tenantry$;

            """);
        foreach (var table in tables)
        {
            var t = $"{s}.{Quote(table.Name)}";
            var (onNew, onOld, _) = When(place, tenant);
            foreach (var (kind, ev, when) in new[] { ("fi", "INSERT", onNew), ("fu", "UPDATE", onOld), ("fd", "DELETE", onOld) })
            {
                var name = Quote(TriggerName(tenant, table, kind));
                sql.Append(CultureInfo.InvariantCulture, $"""
                    DROP TRIGGER IF EXISTS {name} ON {t};
                    CREATE TRIGGER {name} BEFORE {ev} ON {t} FOR EACH ROW{when} EXECUTE FUNCTION {function}();

                    """);
            }
        }

        await InTransactionAsync(c, sql.ToString(), ct);
    }

    public override Task DropMoveAsync(DbConnection c, TenantDataPlace place, Guid tenant, CancellationToken ct)
    {
        // CASCADE takes every trigger that calls the functions with them.
        var s = Quote(place.Schema!);
        return InTransactionAsync(c, $"""
            DROP FUNCTION IF EXISTS {s}.{Quote("tenantry_tier_frozen_" + Short(tenant))}() CASCADE;
            DROP FUNCTION IF EXISTS {s}.{Quote(LogTable(tenant))}() CASCADE;
            DROP TABLE IF EXISTS {s}.{Quote(LogTable(tenant))};
            """, ct);
    }

    public override async Task<long> CopyAsync(DbConnection source, TenantDataPlace from, DbConnection target, TenantDataPlace to, Guid tenant, TableMap map,
        int batchSize, Func<CancellationToken, Task> afterBatch, CancellationToken ct)
    {
        var src = (NpgsqlConnection)source;
        var tgt = (NpgsqlConnection)target;
        var t = $"{Quote(to.Schema!)}.{Quote(map.Name)}";
        await using var tx = await tgt.BeginTransactionAsync(ct);
        await using (var clear = new NpgsqlCommand($"DELETE FROM {t}{TenantFilter(to, map.Target, tenant)}", tgt, tx))
        {
            await clear.ExecuteNonQueryAsync(ct);
        }

        var select = $"SELECT {Select(map, tenant)} FROM {Quote(from.Schema!)}.{Quote(map.Name)}{TenantFilter(from, map.Source, tenant)}";
        await using (var reader = await src.BeginRawBinaryCopyAsync($"COPY ({select}) TO STDOUT (FORMAT BINARY)", ct))
        await using (var writer = await tgt.BeginRawBinaryCopyAsync($"COPY {t} ({string.Join(", ", map.Columns.Select(Quote))}) FROM STDIN (FORMAT BINARY)", ct))
        {
            await reader.CopyToAsync(writer, 1 << 16, ct);
        }

        long copied;
        await using (var count = new NpgsqlCommand($"SELECT count(*) FROM {t}{TenantFilter(to, map.Target, tenant)}", tgt, tx))
        {
            copied = (long)(await count.ExecuteScalarAsync(ct))!;
        }

        await tx.CommitAsync(ct);

        // Statistics for the freshly filled table, so the planner of catch-up and of the app finds its size.
        await using (var analyze = new NpgsqlCommand($"ANALYZE {t}", tgt))
        {
            await analyze.ExecuteNonQueryAsync(ct);
        }

        await afterBatch(ct);
        return copied;
    }

    public override async Task<int> CatchUpAsync(DbConnection source, TenantDataPlace from, DbConnection target, TenantDataPlace to, Guid tenant,
        IReadOnlyList<TableMap> maps, int max, bool keep, CancellationToken ct)
    {
        var src = (NpgsqlConnection)source;
        var tgt = (NpgsqlConnection)target;
        if (!await HasLogAsync(src, from, tenant, ct))
        {
            return 0;
        }

        var changes = new List<(long Seq, string Table, string Key)>();
        await using (var read = new NpgsqlCommand($"SELECT seq, tbl, pk::text FROM {Quote(from.Schema!)}.{Quote(LogTable(tenant))} WHERE NOT applied ORDER BY seq LIMIT $1", src) { Parameters = { new() { Value = max } } })
        await using (var reader = await read.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                changes.Add((reader.GetInt64(0), reader.GetString(1), reader.GetString(2)));
            }
        }

        if (changes.Count == 0)
        {
            return 0;
        }

        await using (var tx = await tgt.BeginTransactionAsync(ct))
        {
            foreach (var group in changes.GroupBy(c => c.Table, StringComparer.Ordinal))
            {
                if (maps.FirstOrDefault(m => m.Name == group.Key) is not { } map)
                {
                    continue;
                }

                var keys = new JsonArray([.. group.Select(g => g.Key).Distinct(StringComparer.Ordinal).Select(k => JsonNode.Parse(k))]).ToJsonString();
                await using (var delete = new NpgsqlCommand(
                    $"DELETE FROM {Quote(to.Schema!)}.{Quote(map.Name)} WHERE ctid = ANY(ARRAY({ByKeys(to, map.Target, tenant, map.Key, "tenantry_ctid")}))", tgt, tx))
                {
                    delete.Parameters.Add(new NpgsqlParameter { Value = keys, NpgsqlDbType = NpgsqlDbType.Jsonb });
                    await delete.ExecuteNonQueryAsync(ct);
                }

                // The changed rows as one jsonb array, inserted by one statement that reads it back into the target's row type.
                string rows;
                await using (var select = new NpgsqlCommand(
                    $"SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]')::text FROM ({ByKeys(from, map.Source, tenant, map.Key, Select(map, tenant, named: true))}) r", src))
                {
                    select.Parameters.Add(new NpgsqlParameter { Value = keys, NpgsqlDbType = NpgsqlDbType.Jsonb });
                    rows = (string)(await select.ExecuteScalarAsync(ct))!;
                }

                var table = $"{Quote(to.Schema!)}.{Quote(map.Name)}";
                var columns = string.Join(", ", map.Columns.Select(Quote));
                await using var insert = new NpgsqlCommand($"INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_populate_recordset(NULL::{table}, $1)", tgt, tx);
                insert.Parameters.Add(new NpgsqlParameter { Value = rows, NpgsqlDbType = NpgsqlDbType.Jsonb });
                await insert.ExecuteNonQueryAsync(ct);
            }

            await tx.CommitAsync(ct);
        }

        // Exactly the entries read: one with a lower seq may commit only now (sequence order is not commit order),
        // and must stay for the next round.
        var log = $"{Quote(from.Schema!)}.{Quote(LogTable(tenant))}";
        await using (var done = new NpgsqlCommand(keep ? $"UPDATE {log} SET applied = true WHERE seq = ANY($1)" : $"DELETE FROM {log} WHERE seq = ANY($1)", src)
        {
            Parameters = { new() { Value = changes.Select(c => c.Seq).ToArray() } },
        })
        {
            await done.ExecuteNonQueryAsync(ct);
        }

        return changes.Count;
    }

    public override async Task<long> BacklogAsync(DbConnection source, TenantDataPlace from, Guid tenant, CancellationToken ct)
    {
        var src = (NpgsqlConnection)source;
        if (!await HasLogAsync(src, from, tenant, ct))
        {
            return 0;
        }

        await using var count = new NpgsqlCommand($"SELECT count(*) FROM {Quote(from.Schema!)}.{Quote(LogTable(tenant))} WHERE NOT applied", src);
        return (long)(await count.ExecuteScalarAsync(ct))!;
    }

    public override async Task<Dictionary<string, List<string>>> ChangedKeysAsync(DbConnection source, DbTransaction? tx, TenantDataPlace from, Guid tenant, bool applied,
        CancellationToken ct)
    {
        var src = (NpgsqlConnection)source;
        var keys = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        if (!await HasLogAsync(src, from, tenant, ct))
        {
            return keys;
        }

        await using var read = new NpgsqlCommand(
            $"SELECT DISTINCT tbl, pk::text FROM {Quote(from.Schema!)}.{Quote(LogTable(tenant))} WHERE applied = $1", src, (NpgsqlTransaction?)tx)
        {
            Parameters = { new() { Value = applied } },
        };
        await using var reader = await read.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var table = reader.GetString(0);
            if (!keys.TryGetValue(table, out var list))
            {
                keys[table] = list = [];
            }

            list.Add(reader.GetString(1));
        }

        return keys;
    }

    public override async Task<DbTransaction> BeginSnapshotAsync(DbConnection c, CancellationToken ct)
    {
        var tx = await ((NpgsqlConnection)c).BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, ct);
        await using (var readOnly = new NpgsqlCommand("SET TRANSACTION READ ONLY", (NpgsqlConnection)c, tx))
        {
            await readOnly.ExecuteNonQueryAsync(ct);
        }

        return tx;
    }

    public override async Task<(long Rows, string Sum)> ChecksumAsync(DbConnection c, DbTransaction? tx, TenantDataPlace place, Guid tenant, TableShape table,
        IReadOnlyList<string> columns, KeyFilter? keys, CancellationToken ct)
    {
        var list = columns.Count == 0 ? "" : string.Join(", ", columns.Select(Quote));
        // Every row, every row but those keys, or those keys only ($1 is the keys unless every row is read).
        var all = keys is null or { Columns.Count: 0 } or { Except: true, Keys.Count: 0 };
        var rows = all
            ? $"SELECT {list} FROM {Quote(place.Schema!)}.{Quote(table.Name)}{TenantFilter(place, table, tenant)}"
            : keys!.Except
                ? $"SELECT {list} FROM {Quote(place.Schema!)}.{Quote(table.Name)}{TenantFilter(place, table, tenant)}{NotKeys(keys.Columns, table)}"
                : ByKeys(place, table, tenant, keys.Columns, list);
        await using var sum = new NpgsqlCommand(
            $"""
            SELECT count(*), coalesce(sum(('x' || substr(md5(row_to_json(s)::text), 1, 15))::bit(60)::bigint), 0)::text
            FROM ({rows}) s
            """, (NpgsqlConnection)c, (NpgsqlTransaction?)tx);
        if (!all)
        {
            sum.Parameters.Add(new NpgsqlParameter { Value = "[" + string.Join(", ", keys!.Keys) + "]", NpgsqlDbType = NpgsqlDbType.Jsonb });
        }

        await using var reader = await sum.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return (reader.GetInt64(0), reader.GetString(1));
    }

    private static async Task<bool> HasLogAsync(NpgsqlConnection c, TenantDataPlace place, Guid tenant, CancellationToken ct)
    {
        await using var exists = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL", c) { Parameters = { new() { Value = $"{Quote(place.Schema!)}.{Quote(LogTable(tenant))}" } } };
        return (bool)(await exists.ExecuteScalarAsync(ct))!;
    }

    /// <summary>On the pool, the tenant's rows only (the id cast to the column's own type, so its index serves).</summary>
    private static string TenantFilter(TenantDataPlace place, TableShape table, Guid tenant) =>
        place.Shared ? $" WHERE {Quote(TableMap.TenantColumn)} = {Literal(tenant.ToString())}::{table.TypeOf(TableMap.TenantColumn)}" : " WHERE true";

    /// <summary>
    /// The rows whose <paramref name="key"/> is not one of the jsonb array <c>$1</c> of key arrays (a hashed list
    /// beside a read of the whole table); no condition when the table has no key but tenant_id.
    /// </summary>
    private static string NotKeys(IReadOnlyList<string> key, TableShape side)
    {
        if (key.Count == 0)
        {
            return "";
        }

        var columns = string.Join(", ", key.Select(Quote));
        var values = string.Join(", ", key.Select((k, i) => $"(k ->> {i})::{side.TypeOf(k)}"));
        return $" AND ({columns}) NOT IN (SELECT {values} FROM jsonb_array_elements($1) k)";
    }

    /// <summary>
    /// <paramref name="columns"/> of the tenant's rows whose <paramref name="key"/> is one of the jsonb array <c>$1</c>
    /// of key arrays, looked up key by key (a lateral join on the key's equality, so the key's index serves whatever
    /// the table's size); <c>tenantry_ctid</c> names each row's ctid. Every row of the tenant when the table has no key.
    /// </summary>
    private static string ByKeys(TenantDataPlace place, TableShape table, Guid tenant, IReadOnlyList<string> key, string columns)
    {
        var rows = $"SELECT ctid AS tenantry_ctid, * FROM {Quote(place.Schema!)}.{Quote(table.Name)}{TenantFilter(place, table, tenant)}";
        if (key.Count == 0)
        {
            return $"SELECT {columns} FROM ({rows}) r";
        }

        var match = string.Join(" AND ", key.Select((k, i) => $"{Quote(k)} = (tenantry_k.tenantry_key ->> {i})::{table.TypeOf(k)}"));
        return $"SELECT {columns} FROM jsonb_array_elements($1) AS tenantry_k(tenantry_key) CROSS JOIN LATERAL ({rows} AND {match}) r";
    }

    /// <summary>The source's expressions for the target's columns (named after them for catch-up's jsonb rows); the tenant id where only the target has tenant_id.</summary>
    private static string Select(TableMap map, Guid tenant, bool named = false) => string.Join(", ", map.Target.Columns.Select(c =>
        (map.Source.Has(c.Name) ? Quote(c.Name) : $"{Literal(tenant.ToString())}::{c.Type}") + (named ? " AS " + Quote(c.Name) : "")));

    private static (string OnNew, string OnOld, string OnEither) When(TenantDataPlace place, Guid tenant)
    {
        if (!place.Shared)
        {
            return ("", "", "");
        }

        var id = Literal(tenant.ToString());
        return ($" WHEN (NEW.tenant_id::text = {id})", $" WHEN (OLD.tenant_id::text = {id})", $" WHEN (OLD.tenant_id::text = {id} OR NEW.tenant_id::text = {id})");
    }
}
