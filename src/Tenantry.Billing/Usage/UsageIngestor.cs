using System.Buffers;
using System.Data.Common;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Usage;

/// <summary>A validated usage event on its way to the store.</summary>
public sealed record UsageEvent(string Source, string Id, Guid TenantId, string Type, DateTimeOffset Time, string? Data);

/// <summary>
/// A batch was not committed (the store failed, or the ingestor is stopping): none of its events
/// is acknowledged, and sending it again is safe (a replay of a stored event is a duplicate).
/// </summary>
public sealed class UsageNotStoredException : Exception
{
    public UsageNotStoredException()
        : this("The usage store did not commit the batch.")
    {
    }

    public UsageNotStoredException(string message)
        : base(message)
    {
    }

    public UsageNotStoredException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

public enum IngestOutcome
{
    Accepted,
    Duplicate,
    PeriodClosed,

    /// <summary>Not stored: the event holds text no store keeps as sent (see <see cref="UsageIngestor.IsStorable"/>).</summary>
    Unstorable,
}

/// <summary>
/// Writes usage events with group commit: batches that arrive while a transaction is open wait
/// and are then committed together, in one transaction: one prepared insert stepped per event
/// (SQLite), or a binary <c>COPY</c> (PostgreSQL). The unique (source, id) key makes a replay a
/// no-op. A caller's task completes only after the commit, or fails with
/// <see cref="UsageNotStoredException"/>: whatever a group commit throws fails that group's callers
/// only, and the writer goes on with the next group. On PostgreSQL
/// <see cref="BillingOptions.ConcurrentCommits"/> groups are committed at once, on as many
/// connections, so the server inserts on more than one core; each writer owns a share of the keys
/// (by hash), so two groups in flight never hold the same event.
/// </summary>
/// <remarks>
/// On PostgreSQL <c>ON CONFLICT DO NOTHING</c> probes the key before each insert (a second B-tree
/// descent, a speculative-insertion lock and WAL record per row): a third of the insert's
/// instructions per event (callgrind, see the README's benchmark notes). So events are copied in
/// plainly (<c>COPY</c>); only those whose key this process has recently stored or seen stored (a
/// fixed-size table of key hashes, <see cref="RecentKeys"/>) are looked up first, and copied only
/// if missing. The unique key still refuses a copy the table did not know of (stored before a
/// restart, by another replica, or pushed out of the table): that group's transaction fails with
/// a unique violation and is written again with every key looked up first, as are this writer's
/// next groups until one finds no stored copy the table did not know of (so a client replaying
/// what an earlier process stored costs look-ups, not a failed copy per group). Should a group with
/// every key looked up still meet a stored copy (another replica committed it meanwhile), it goes
/// through <c>ON CONFLICT DO NOTHING</c>.
/// </remarks>
public sealed partial class UsageIngestor(
    IControlPlaneDatabase db, BillingCatalog catalog, Microsoft.Extensions.Options.IOptions<BillingOptions> options, ILogger<UsageIngestor> logger,
    UsageMetrics? metrics = null) : BackgroundService
{
    private const string InsertOrSkipPostgres =
        "INSERT INTO usage_events (seq, source, id, tenant_id, type, time, data) SELECT * FROM unnest(@q, @s, @i, @t, @y, @m, @d) ON CONFLICT DO NOTHING RETURNING source, id";

    /// <summary>The 1-based places of the keys not stored, of keys sent as two texts joined by U+001F.</summary>
    private const string MissingPostgres =
        "SELECT k.n FROM unnest(string_to_array(@s, E'\\x1F'), string_to_array(@i, E'\\x1F')) WITH ORDINALITY AS k(source, id, n) " +
        "WHERE NOT EXISTS (SELECT 1 FROM usage_events u WHERE u.source = k.source AND u.id = k.id)";

    private const char KeySeparator = '\u001F';

    /// <summary>NUL, which PostgreSQL's text refuses, and the surrogates, which must come in pairs.</summary>
    private static readonly SearchValues<char> Unstorable = SearchValues.Create(
        string.Concat(Enumerable.Range(0xD800, 0x800).Select(c => (char)c).Prepend('\0')));

    private const string DeadlockDetected = "40P01";
    private const string UniqueViolation = "23505";

    private readonly Channel<Pending>[] _queues = [.. Enumerable.Range(0, db.Engine == "postgresql" ? options.Value.ConcurrentCommits : 1)
        .Select(_ => Channel.CreateUnbounded<Pending>())];

    /// <summary>PostgreSQL only: 2^20 slots, 8 MB.</summary>
    private readonly RecentKeys? _recent = db.Engine == "postgresql" ? new RecentKeys(20) : null;

    /// <summary>PostgreSQL only: each event's seq, numbered as its batch arrives.</summary>
    private readonly ArrivalNumbers _arrivals = new(TimeProvider.System);

    /// <summary>Raised after a commit with the tenants that got new events.</summary>
    public event Action<IReadOnlyCollection<Guid>>? Committed;

    /// <summary>Stores <paramref name="events"/>; one outcome per event, known once they are durable.</summary>
    public async Task<IngestOutcome[]> IngestAsync(IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            return [];
        }

        for (var i = 0; i < events.Count; i++)
        {
            if (!IsStorable(events[i]))
            {
                return await IngestStorableAsync(events, cancellationToken);
            }
        }

        // Not cancelled with the request: once queued the events are committed either way.
        if (_recent is null)
        {
            var request = new Request(events.Count, parts: 1);
            Enqueue(0, new Pending(request, [.. events], null, null));
            return await request.Done.Task.WaitAsync(cancellationToken);
        }

        // Each event to the writer that owns its key; the request completes when every part has.
        var firstSeq = _arrivals.Take(events.Count);
        var hashes = new ulong[events.Count];
        var parts = new List<int>?[_queues.Length];
        for (var i = 0; i < hashes.Length; i++)
        {
            hashes[i] = RecentKeys.Hash(events[i].Source, events[i].Id);
            (parts[RecentKeys.Share(hashes[i], parts.Length)] ??= []).Add(i);
        }

        var split = new Request(events.Count, parts.Count(p => p is not null), firstSeq);
        for (var w = 0; w < parts.Length; w++)
        {
            if (parts[w] is { } part)
            {
                Enqueue(w, new Pending(split, [.. part.Select(i => events[i])], [.. part], [.. part.Select(i => hashes[i])]));
            }
        }

        return await split.Done.Task.WaitAsync(cancellationToken);
    }

    /// <summary>The events that can be stored are; the others are <see cref="IngestOutcome.Unstorable"/>.</summary>
    private async Task<IngestOutcome[]> IngestStorableAsync(IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken)
    {
        var storable = events.Where(IsStorable).ToList();
        var stored = await IngestAsync(storable, cancellationToken);
        var outcomes = new IngestOutcome[events.Count];
        for (int i = 0, k = 0; i < events.Count; i++)
        {
            outcomes[i] = IsStorable(events[i]) ? stored[k++] : IngestOutcome.Unstorable;
        }

        return outcomes;
    }

    private static bool IsStorable(UsageEvent e) => IsStorable(e.Source) && IsStorable(e.Id) && IsStorable(e.Type) && IsStorable(e.Data);

    /// <summary>
    /// False for text with a NUL character or a surrogate without its pair: SQLite would store a
    /// replacement character (so the stored key differs from the one sent, and reads of the data
    /// fail), and PostgreSQL refuses it, failing the whole group commit with every caller in it
    /// (or, sent as a parameter, failing the writer).
    /// One vectorised scan; only text that holds surrogates is looked at further.
    /// </summary>
    internal static bool IsStorable(string? text)
    {
        var rest = text.AsSpan();
        for (var at = rest.IndexOfAny(Unstorable); at >= 0; at = rest.IndexOfAny(Unstorable))
        {
            if (!char.IsHighSurrogate(rest[at]) || at + 1 == rest.Length || !char.IsLowSurrogate(rest[at + 1]))
            {
                return false;
            }

            rest = rest[(at + 2)..];
        }

        return true;
    }

    private void Enqueue(int writer, Pending pending)
    {
        if (!_queues[writer].Writer.TryWrite(pending))
        {
            pending.Request.Done.TrySetException(Stopped());
        }
    }

    private static UsageNotStoredException Stopped() => new("The usage store is shutting down.");

    /// <summary>Writes the default meters and plans before the host takes requests, so no request pays for it.</summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await catalog.ReloadAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(_queues.Select(q => CommitLoopAsync(q, stoppingToken)));

    /// <summary>
    /// One writer: takes what has queued up (at most MaxGroupCommit events) and commits it as one
    /// group. Should the writer ever end, its queue is closed and every caller still in it fails,
    /// so none waits for a commit that will not come.
    /// </summary>
    private async Task CommitLoopAsync(Channel<Pending> channel, CancellationToken stoppingToken)
    {
        var queue = channel.Reader;
        var group = new List<Pending>();
        var max = options.Value.MaxGroupCommit;
        var writer = new WriterState();
        try
        {
            while (await queue.WaitToReadAsync(stoppingToken))
            {
                group.Clear();
                var count = 0;
                while (count < max && queue.TryRead(out var next))
                {
                    group.Add(next);
                    count += next.Events.Length;
                }

                if (count > 0)
                {
                    try
                    {
                        await CommitAsync(group, count, writer);
                    }
#pragma warning disable CA1031 // CommitAsync fails its group on a failed write; this is for anything else it meets.
                    catch (Exception ex)
#pragma warning restore CA1031
                    {
                        Fail(group, count, ex);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            channel.Writer.TryComplete();
            while (queue.TryRead(out var left))
            {
                left.Request.Done.TrySetException(Stopped());
            }
        }
    }

    private async Task CommitAsync(List<Pending> group, int count, WriterState writer)
    {
        var all = new List<UsageEvent>(count);
        var hashes = _recent is null ? null : new ulong[count];
        var seqs = _recent is null ? null : new long[count];
        foreach (var p in group)
        {
            if (seqs is not null)
            {
                p.Hashes!.CopyTo(hashes!, all.Count);
                for (var i = 0; i < p.Events.Length; i++)
                {
                    seqs[all.Count + i] = p.Request.FirstSeq + p.Positions![i];
                }
            }

            all.AddRange(p.Events);
        }

        IngestOutcome[] outcomes;
        var started = Stopwatch.GetTimestamp();
        try
        {
            outcomes = await WriteWithRetryAsync(all, hashes, seqs, writer);
        }
#pragma warning disable CA1031 // Whatever failed this group fails its callers only; the writer serves the next group.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fail(group, count, ex);
            return;
        }

        metrics?.UsageCommitted(all, outcomes, Stopwatch.GetElapsedTime(started));
        if (hashes is not null)
        {
            // Stored now, either by this group or before it: a later copy is looked up before the copy.
            for (var i = 0; i < hashes.Length; i++)
            {
                if (outcomes[i] != IngestOutcome.PeriodClosed)
                {
                    _recent!.Add(hashes[i]);
                }
            }
        }

        var offset = 0;
        var tenants = new HashSet<Guid>();
        foreach (var p in group)
        {
            var into = p.Request.Outcomes;
            for (var i = 0; i < p.Events.Length; i++)
            {
                var outcome = outcomes[offset + i];
                into[p.Positions?[i] ?? i] = outcome;
                if (outcome == IngestOutcome.Accepted)
                {
                    tenants.Add(p.Events[i].TenantId);
                }
            }

            offset += p.Events.Length;
            p.Request.PartDone();
        }

        if (tenants.Count > 0)
        {
            try
            {
                Committed?.Invoke(tenants);
            }
#pragma warning disable CA1031 // The events are stored and acknowledged; a listener's failure must not stop the writer.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.ListenerFailed(logger, [.. tenants], ex);
            }
        }
    }

    /// <summary>Fails the callers of a group not committed (those already answered keep their answer), and says whose events they were.</summary>
    private void Fail(List<Pending> group, int count, Exception ex)
    {
        Log.CommitFailed(logger, count, [.. group.SelectMany(p => p.Events).Select(e => e.TenantId).Distinct()], ex);
        metrics?.UsageNotStored(count, "failed");
        var failure = new UsageNotStoredException("The usage store did not commit the batch.", ex);
        foreach (var p in group)
        {
            p.Request.Done.TrySetException(failure);
        }
    }

    /// <summary>
    /// Shared with the other group commits: the (source, id) key settles a race between two of
    /// them, and the closed-period check still runs apart from invoice finalisation. Rows are
    /// inserted in key order, so groups do not deadlock on keys; should the server still report a
    /// deadlock (e.g. with another replica's group), the aborted group is written again. A copy
    /// that met a stored copy (unique violation) is written again more carefully: with every key
    /// looked up first, then through <c>ON CONFLICT</c>.
    /// </summary>
    private async Task<IngestOutcome[]> WriteWithRetryAsync(List<UsageEvent> all, ulong[]? hashes, long[]? seqs, WriterState writer)
    {
        var mode = writer.Careful ? InsertMode.LookUpAll : InsertMode.LookUpKnown;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await db.WriteSharedAsync((c, tx) => WriteGroupAsync(c, tx, all, seqs, hashes, mode, writer));
            }
            catch (DbException ex) when (ex.SqlState == DeadlockDetected && attempt < 3)
            {
                Log.Deadlock(logger, all.Count, attempt);
            }
            catch (DbException ex) when (ex.SqlState == UniqueViolation && mode != InsertMode.OnConflict)
            {
                mode = mode == InsertMode.LookUpKnown ? InsertMode.LookUpAll : InsertMode.OnConflict;
                Log.StoredCopy(logger, all.Count, mode);
                writer.Careful = true;
            }
        }
    }

    /// <param name="seqs">PostgreSQL: each event's arrival number.</param>
    /// <param name="hashes">PostgreSQL: each event's key hash.</param>
    /// <param name="mode">PostgreSQL: how to insert.</param>
    private async Task<IngestOutcome[]> WriteGroupAsync(
        DbConnection c, DbTransaction tx, List<UsageEvent> events, long[]? seqs, ulong[]? hashes, InsertMode mode, WriterState writer)
    {
        var outcomes = new IngestOutcome[events.Count];
        var oldest = events.Min(e => BillingPeriod.Of(e.Time)).ToString();
        var closed = (await c.QueryAsync(
                "SELECT tenant_id, period FROM invoices WHERE status = 'finalized' AND period >= @oldest", tx,
                r => (Tenant: r.ReadGuid(0), Period: r.GetString(1)), ("@oldest", oldest)))
            .ToHashSet();
        var open = new List<int>(events.Count);
        for (var i = 0; i < events.Count; i++)
        {
            if (closed.Count > 0 && closed.Contains((events[i].TenantId, BillingPeriod.Of(events[i].Time).ToString())))
            {
                outcomes[i] = IngestOutcome.PeriodClosed;
            }
            else
            {
                open.Add(i);
            }
        }

        if (db.Engine == "postgresql")
        {
            await InsertPostgresAsync((NpgsqlConnection)c, (NpgsqlTransaction)tx, events, seqs!, hashes!, mode, writer, open, outcomes);
        }
        else
        {
            await InsertSqliteAsync(c, tx, events, open, outcomes);
        }

        return outcomes;
    }

    /// <summary>
    /// One single-row insert prepared once per group commit and stepped per event: its change count
    /// says whether the row was new. (A multi-row insert binds its hundreds of named parameters by a
    /// linear name search each, which cost more than the inserts.)
    /// </summary>
    private static async Task InsertSqliteAsync(DbConnection c, DbTransaction tx, List<UsageEvent> events, List<int> open, IngestOutcome[] outcomes)
    {
        await using var command = c.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "INSERT INTO usage_events (source, id, tenant_id, type, time, data) VALUES (@s, @i, @t, @y, @m, @d) ON CONFLICT (source, id) DO NOTHING";
        var p = command.Parameters;
        foreach (var name in (string[])["@s", "@i", "@t", "@y", "@m", "@d"])
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            p.Add(parameter);
        }

        command.Prepare();
        foreach (var i in open)
        {
            var e = events[i];
            p[0].Value = e.Source;
            p[1].Value = e.Id;
            p[2].Value = e.TenantId.ToString();
            p[3].Value = e.Type;
            p[4].Value = Sql.Time(e.Time);
            p[5].Value = (object?)e.Data ?? DBNull.Value;
            outcomes[i] = command.ExecuteNonQuery() == 1 ? IngestOutcome.Accepted : IngestOutcome.Duplicate;
        }
    }

    /// <summary>
    /// Rows go in the order of their key hashes (equal hashes by (source, id)), which is the same in
    /// every process, so group commits in flight (this process's, which hold different keys, or
    /// another replica's) take their key locks in one order and never wait for each other in a
    /// cycle. Of copies of one event in the group the first to arrive is the one stored, the others
    /// are duplicates. See <see cref="InsertMode"/> for which keys are looked up
    /// (<see cref="MissingAsync"/>) before the rest is copied; a stored copy in the copy fails the
    /// transaction (see <see cref="WriteWithRetryAsync"/>).
    /// </summary>
    private async Task InsertPostgresAsync(
        NpgsqlConnection c, NpgsqlTransaction tx, List<UsageEvent> events, long[] seqs, ulong[] hashes, InsertMode mode, WriterState writer, List<int> open, IngestOutcome[] outcomes)
    {
        var order = KeyOrder(events, hashes, open);
        var rows = new List<int>(order.Length); // first copies, in key order
        for (var k = 0; k < order.Length; k++)
        {
            var i = order[k];
            if (k > 0 && hashes[i] == hashes[order[k - 1]] && SameKey(events[i], events[order[k - 1]]))
            {
                outcomes[i] = IngestOutcome.Duplicate;
            }
            else
            {
                rows.Add(i);
            }
        }

        if (mode == InsertMode.OnConflict)
        {
            await InsertOrSkipAsync(c, tx, events, seqs, rows, outcomes);
            return;
        }

        var known = mode == InsertMode.LookUpAll ? rows : rows.FindAll(i => _recent!.Contains(hashes[i]));
        var stored = new HashSet<int>(known);
        if (known.Count > 0)
        {
            stored.ExceptWith(await MissingAsync(c, tx, events, known));
        }

        if (mode == InsertMode.LookUpAll)
        {
            // Stored copies the table did not know of: stay careful while they keep coming.
            writer.Careful = stored.Any(i => !_recent!.Contains(hashes[i]));
        }

        var copy = stored.Count == 0 ? rows : rows.FindAll(i => !stored.Contains(i));
        if (copy.Count > 0)
        {
            await UsageCopyFormat.CopyAsync(c, events, seqs, copy);
        }

        foreach (var i in rows)
        {
            outcomes[i] = stored.Contains(i) ? IngestOutcome.Duplicate : IngestOutcome.Accepted;
        }
    }

    /// <summary>
    /// The events at <paramref name="rows"/> through <c>ON CONFLICT DO NOTHING</c>: a stored copy
    /// does not fail the group; the rows it inserted are the accepted ones.
    /// </summary>
    private static async Task InsertOrSkipAsync(NpgsqlConnection c, NpgsqlTransaction tx, List<UsageEvent> events, long[] seqs, List<int> rows, IngestOutcome[] outcomes)
    {
        await using var insert = InsertOrSkipCommand(c, tx, events, seqs, rows);
        var inserted = new HashSet<(string, string)>(rows.Count);
        await using (var reader = await insert.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                inserted.Add((reader.GetString(0), reader.GetString(1)));
            }
        }

        foreach (var i in rows)
        {
            outcomes[i] = inserted.Contains((events[i].Source, events[i].Id)) ? IngestOutcome.Accepted : IngestOutcome.Duplicate;
        }
    }

    /// <summary>
    /// <paramref name="open"/> sorted by key hash (a primitive sort, no comparison delegate); runs of
    /// equal hashes, which are repeats of one event or (rarely) a collision, by (source, id, arrival).
    /// </summary>
    private static int[] KeyOrder(List<UsageEvent> events, ulong[] hashes, List<int> open)
    {
        var order = open.ToArray();
        var keys = new ulong[order.Length];
        for (var k = 0; k < order.Length; k++)
        {
            keys[k] = hashes[order[k]];
        }

        Array.Sort(keys, order);
        for (var start = 0; start < keys.Length;)
        {
            var end = start + 1;
            while (end < keys.Length && keys[end] == keys[start])
            {
                end++;
            }

            if (end - start > 1)
            {
                Array.Sort(order, start, end - start, Comparer<int>.Create((a, b) =>
                {
                    var bySource = string.CompareOrdinal(events[a].Source, events[b].Source);
                    var byId = bySource != 0 ? bySource : string.CompareOrdinal(events[a].Id, events[b].Id);
                    return byId != 0 ? byId : a.CompareTo(b);
                }));
            }

            start = end;
        }

        return order;
    }

    /// <summary>
    /// Which of the events at <paramref name="rows"/> are not stored: one lookup of their keys, sent
    /// as two texts joined by U+001F (which the API refuses in sources and ids; a key holding it
    /// is reported missing, and its copy then meets the unique key like any stored copy would).
    /// Cheaper than an <c>ON CONFLICT</c> insert of typed arrays: no array parameters, no
    /// speculative insert, and only the (usually few) missing ones come back.
    /// </summary>
    private static async Task<List<int>> MissingAsync(NpgsqlConnection c, NpgsqlTransaction tx, List<UsageEvent> events, List<int> rows)
    {
        var sources = new System.Text.StringBuilder();
        var ids = new System.Text.StringBuilder();
        var separable = true;
        foreach (var i in rows)
        {
            var e = events[i];
            separable &= !e.Source.Contains(KeySeparator, StringComparison.Ordinal) && !e.Id.Contains(KeySeparator, StringComparison.Ordinal);
            sources.Append(e.Source).Append(KeySeparator);
            ids.Append(e.Id).Append(KeySeparator);
        }

        if (!separable)
        {
            return rows;
        }

        sources.Length--;
        ids.Length--;
        await using var lookup = new NpgsqlCommand(MissingPostgres, c, tx)
        {
            Parameters =
            {
                new NpgsqlParameter<string>("s", NpgsqlDbType.Text) { TypedValue = sources.ToString() },
                new NpgsqlParameter<string>("i", NpgsqlDbType.Text) { TypedValue = ids.ToString() },
            },
        };
        var missing = new List<int>();
        await using var reader = await lookup.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            missing.Add(rows[(int)reader.GetInt64(0) - 1]);
        }

        return missing;
    }

    private static bool SameKey(UsageEvent a, UsageEvent b) =>
        string.Equals(a.Source, b.Source, StringComparison.Ordinal) && string.Equals(a.Id, b.Id, StringComparison.Ordinal);

    /// <summary>
    /// An <c>unnest</c> insert through <c>ON CONFLICT DO NOTHING</c> of typed arrays (tenant ids as
    /// uuid, times as timestamptz; see <see cref="BillingSchema"/>) of the events at
    /// <paramref name="rows"/>, in that order.
    /// </summary>
    private static NpgsqlCommand InsertOrSkipCommand(NpgsqlConnection c, NpgsqlTransaction tx, List<UsageEvent> events, long[] seqs, List<int> rows)
    {
        var n = rows.Count;
        var numbers = new long[n];
        var sources = new string[n];
        var ids = new string[n];
        var tenants = new Guid[n];
        var types = new string[n];
        var times = new DateTime[n];
        var data = new string?[n];
        for (var k = 0; k < n; k++)
        {
            var e = events[rows[k]];
            numbers[k] = seqs[rows[k]];
            sources[k] = e.Source;
            ids[k] = e.Id;
            tenants[k] = e.TenantId;
            types[k] = e.Type;
            times[k] = UsageCopyFormat.PostgresTime(e.Time);
            data[k] = e.Data;
        }

        return new NpgsqlCommand(InsertOrSkipPostgres, c, tx)
        {
            Parameters =
            {
                new NpgsqlParameter<long[]>("q", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = numbers },
                new NpgsqlParameter<string[]>("s", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = sources },
                new NpgsqlParameter<string[]>("i", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = ids },
                new NpgsqlParameter<Guid[]>("t", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { TypedValue = tenants },
                new NpgsqlParameter<string[]>("y", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = types },
                new NpgsqlParameter<DateTime[]>("m", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { TypedValue = times },
                new NpgsqlParameter<string?[]>("d", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = data },
            },
        };
    }

    /// <summary>One caller's events; with several writers it is split into one part per writer.</summary>
    /// <param name="firstSeq">PostgreSQL: the arrival number of the request's first event; the others follow in the request's order.</param>
    private sealed class Request(int count, int parts, long firstSeq = 0)
    {
        public long FirstSeq { get; } = firstSeq;

        private int _remaining = parts;

        public IngestOutcome[] Outcomes { get; } = new IngestOutcome[count];

        public TaskCompletionSource<IngestOutcome[]> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void PartDone()
        {
            if (Interlocked.Decrement(ref _remaining) == 0)
            {
                Done.TrySetResult(Outcomes);
            }
        }
    }

    /// <summary>A request's events for one writer: their places in the request (null: all, in order) and key hashes (PostgreSQL).</summary>
    private sealed record Pending(Request Request, UsageEvent[] Events, int[]? Positions, ulong[]? Hashes);

    private sealed class WriterState
    {
        /// <summary>Look every key up: the last group met stored copies that <see cref="RecentKeys"/> did not know of.</summary>
        public bool Careful { get; set; }
    }

    /// <summary>How a group goes into PostgreSQL, from the cheapest to the surest.</summary>
    private enum InsertMode
    {
        /// <summary>Keys in <see cref="RecentKeys"/> are looked up first, the missing ones copied with the rest.</summary>
        LookUpKnown,

        /// <summary>Every key is looked up first, the missing ones copied.</summary>
        LookUpAll,

        /// <summary>Every event through <c>ON CONFLICT DO NOTHING</c> (a stored copy does not fail the group).</summary>
        OnConflict,
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 5001, Level = LogLevel.Error, Message = "Committing {Count} usage events of tenants {TenantIds} failed; none was acknowledged")]
        public static partial void CommitFailed(ILogger logger, int count, Guid[] tenantIds, Exception exception);

        [LoggerMessage(EventId = 5007, Level = LogLevel.Error, Message = "A listener of committed usage of tenants {TenantIds} failed; the events are stored")]
        public static partial void ListenerFailed(ILogger logger, Guid[] tenantIds, Exception exception);

        [LoggerMessage(EventId = 5006, Level = LogLevel.Information, Message = "Committing {Count} usage events met a stored copy of an event in a plain insert; the group is written again ({Mode})")]
        public static partial void StoredCopy(ILogger logger, int count, InsertMode mode);

        [LoggerMessage(EventId = 5005, Level = LogLevel.Information, Message = "Committing {Count} usage events met a deadlock with another group commit; attempt {Attempt} is retried")]
        public static partial void Deadlock(ILogger logger, int count, int attempt);
    }
}
