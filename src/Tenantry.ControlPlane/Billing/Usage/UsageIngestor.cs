using System.Data.Common;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using Tenantry.ControlPlane.Storage;

namespace Tenantry.ControlPlane.Billing.Usage;

/// <summary>A validated usage event on its way to the store.</summary>
public sealed record UsageEvent(string Source, string Id, Guid TenantId, string Type, DateTimeOffset Time, string? Data);

public enum IngestOutcome
{
    Accepted,
    Duplicate,
    PeriodClosed,
}

/// <summary>
/// Writes usage events with group commit: batches that arrive while a transaction is open wait
/// and are then committed together, in one transaction of one prepared insert stepped per event (SQLite) or one
/// <c>unnest</c> insert (PostgreSQL). <c>ON CONFLICT DO NOTHING</c> on the unique (source, id)
/// index makes a replay a no-op. A caller's task completes only after the commit. On PostgreSQL
/// <see cref="BillingOptions.ConcurrentCommits"/> groups are committed at once, on as many
/// connections, so the server inserts on more than one core.
/// </summary>
public sealed partial class UsageIngestor(
    IControlPlaneDatabase db, BillingCatalog catalog, Microsoft.Extensions.Options.IOptions<BillingOptions> options, ILogger<UsageIngestor> logger) : BackgroundService
{
    private const string InsertPostgres =
        "INSERT INTO usage_events (source, id, tenant_id, type, time, data) SELECT * FROM unnest(@s, @i, @t, @y, @m, @d) " +
        "ON CONFLICT (source, id) DO NOTHING RETURNING source, id";

    private const string DeadlockDetected = "40P01";

    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>();

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

        var pending = new Pending(events);
        if (!_queue.Writer.TryWrite(pending))
        {
            throw new InvalidOperationException("The usage store is shutting down.");
        }

        // Not cancelled with the request: once queued the events are committed either way.
        return await pending.Done.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Writes the default meters and plans before the host takes requests, so no request pays for it.</summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await catalog.ReloadAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var writers = db.Engine == "postgresql" ? options.Value.ConcurrentCommits : 1;
        await Task.WhenAll(Enumerable.Range(0, writers).Select(_ => CommitLoopAsync(stoppingToken)));

        _queue.Writer.TryComplete();
        while (_queue.Reader.TryRead(out var left))
        {
            left.Done.TrySetException(new InvalidOperationException("The usage store is shutting down."));
        }
    }

    /// <summary>One writer: takes what has queued up (at most MaxGroupCommit events) and commits it as one group.</summary>
    private async Task CommitLoopAsync(CancellationToken stoppingToken)
    {
        var group = new List<Pending>();
        var max = options.Value.MaxGroupCommit;
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                group.Clear();
                var count = 0;
                while (count < max && _queue.Reader.TryRead(out var next))
                {
                    group.Add(next);
                    count += next.Events.Count;
                }

                if (count > 0)
                {
                    await CommitAsync(group, count);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task CommitAsync(List<Pending> group, int count)
    {
        var all = new List<UsageEvent>(count);
        foreach (var p in group)
        {
            all.AddRange(p.Events);
        }

        IngestOutcome[] outcomes;
        try
        {
            outcomes = await WriteWithRetryAsync(all);
        }
        catch (Exception ex) when (ex is DbException or InvalidOperationException or TimeoutException)
        {
            Log.CommitFailed(logger, count, ex);
            foreach (var p in group)
            {
                p.Done.TrySetException(ex);
            }

            return;
        }

        var offset = 0;
        var tenants = new HashSet<Guid>();
        foreach (var p in group)
        {
            var slice = outcomes.AsSpan(offset, p.Events.Count).ToArray();
            for (var i = 0; i < slice.Length; i++)
            {
                if (slice[i] == IngestOutcome.Accepted)
                {
                    tenants.Add(p.Events[i].TenantId);
                }
            }

            offset += p.Events.Count;
            p.Done.TrySetResult(slice);
        }

        if (tenants.Count > 0)
        {
            Committed?.Invoke(tenants);
        }
    }

    /// <summary>
    /// Shared with the other group commits: the (source, id) key settles a race between two of
    /// them, and the closed-period check still runs apart from invoice finalisation. Rows are
    /// inserted in key order, so groups do not deadlock on keys; should the server still report a
    /// deadlock (e.g. with a replica of another version), the aborted group is written again.
    /// </summary>
    private async Task<IngestOutcome[]> WriteWithRetryAsync(List<UsageEvent> all)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await db.WriteSharedAsync((c, tx) => WriteGroupAsync(c, tx, all));
            }
            catch (DbException ex) when (ex.SqlState == DeadlockDetected && attempt < 3)
            {
                Log.Deadlock(logger, all.Count, attempt);
            }
        }
    }

    private async Task<IngestOutcome[]> WriteGroupAsync(DbConnection c, DbTransaction tx, List<UsageEvent> events)
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
            await InsertPostgresAsync(c, tx, events, open, outcomes);
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

    /// <summary>Two copies of one event in the group: the first is the accepted one, the others duplicates.</summary>
    private static void MarkInserted(List<UsageEvent> events, List<int> open, IngestOutcome[] outcomes, HashSet<(string, string)> inserted)
    {
        foreach (var i in open)
        {
            var e = events[i];
            outcomes[i] = inserted.Remove((e.Source, e.Id)) ? IngestOutcome.Accepted : IngestOutcome.Duplicate;
        }
    }

    /// <summary>
    /// One <c>unnest</c> insert of typed arrays (tenant ids as uuid, times as timestamptz; see
    /// <see cref="ControlPlaneSchema"/>); it returns the (source, id) of the rows it inserted.
    /// </summary>
    private static async Task InsertPostgresAsync(DbConnection c, DbTransaction tx, List<UsageEvent> events, List<int> open, IngestOutcome[] outcomes)
    {
        // Rows go in (source, id) order, so two group commits in flight take their key locks in
        // the same order and never wait for each other in a cycle; copies of one event keep their
        // arrival order, so the first is the one stored.
        var order = open.ToArray();
        Array.Sort(order, (a, b) =>
        {
            var bySource = string.CompareOrdinal(events[a].Source, events[b].Source);
            var byId = bySource != 0 ? bySource : string.CompareOrdinal(events[a].Id, events[b].Id);
            return byId != 0 ? byId : a.CompareTo(b);
        });
        var n = order.Length;
        var sources = new string[n];
        var ids = new string[n];
        var tenants = new Guid[n];
        var types = new string[n];
        var times = new DateTime[n];
        var data = new string?[n];
        for (var k = 0; k < n; k++)
        {
            var e = events[order[k]];
            sources[k] = e.Source;
            ids[k] = e.Id;
            tenants[k] = e.TenantId;
            types[k] = e.Type;
            // PostgreSQL keeps microseconds; truncating (never rounding up) keeps the event in its period.
            times[k] = new DateTime(e.Time.UtcTicks - (e.Time.UtcTicks % 10), DateTimeKind.Utc);
            data[k] = e.Data;
        }

        await using var command = new NpgsqlCommand(InsertPostgres, (NpgsqlConnection)c, (NpgsqlTransaction)tx)
        {
            Parameters =
            {
                new NpgsqlParameter<string[]>("s", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = sources },
                new NpgsqlParameter<string[]>("i", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = ids },
                new NpgsqlParameter<Guid[]>("t", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { TypedValue = tenants },
                new NpgsqlParameter<string[]>("y", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = types },
                new NpgsqlParameter<DateTime[]>("m", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { TypedValue = times },
                new NpgsqlParameter<string?[]>("d", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = data },
            },
        };
        var inserted = new HashSet<(string, string)>(n);
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                inserted.Add((reader.GetString(0), reader.GetString(1)));
            }
        }

        MarkInserted(events, open, outcomes, inserted);
    }

    private sealed record Pending(IReadOnlyList<UsageEvent> Events)
    {
        public TaskCompletionSource<IngestOutcome[]> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 5001, Level = LogLevel.Error, Message = "Committing {Count} usage events failed; none was acknowledged")]
        public static partial void CommitFailed(ILogger logger, int count, Exception exception);

        [LoggerMessage(EventId = 5005, Level = LogLevel.Information, Message = "Committing {Count} usage events met a deadlock with another group commit; attempt {Attempt} is retried")]
        public static partial void Deadlock(ILogger logger, int count, int attempt);
    }
}
