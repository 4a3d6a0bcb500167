using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Tenantry.Testing;

namespace Tenantry.Benchmarks;

/// <summary>
/// A pool tenant with a million orders moved to its own database (basic → premium) on a private
/// PostgreSQL server while a load generator writes to it through the gateway and other tenants keep
/// working, against the offline way in the same run: stop writing, <c>pg_dump</c> the tenant's rows,
/// restore them into a new database. Reports the tenant's write-unavailable window, the total time,
/// the rows lost (count and checksum) and the other tenants' p99 during the move against before it.
/// </summary>
internal static class TierMoveBenchmark
{
    private const double FreezeGoalSeconds = 1.0;
    private const double OthersP99Goal = 1.10;
    private static readonly TimeSpan MoveTimeout = TimeSpan.FromMinutes(20);

    public static async Task<int> MainAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine("""
                tier-move [--rows 1000000] [--writers 4] [--others 4] [--quiet-seconds 20]
                  Starts a private PostgreSQL server and a host on it, onboards a basic (pool) tenant and
                  --others tenants, seeds --rows orders for the first, then measures the other tenants' p99
                  for --quiet-seconds with no move, the offline way (pg_dump of the tenant's rows and a restore
                  into a new database, its downtime), and the move to premium (its own database) while
                  --writers loops write orders to the tenant through the gateway.
                """);
            return 0;
        }

        var rows = BenchmarkArgs.Int(args, "--rows", 1_000_000);
        var writers = BenchmarkArgs.Int(args, "--writers", 4);
        var others = BenchmarkArgs.Int(args, "--others", 4);
        var quiet = BenchmarkArgs.Int(args, "--quiet-seconds", 20);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(40));
        var ct = cancel.Token;

        await using var pg = await PostgresServer.StartAsync(["shared_buffers=256MB", "max_wal_size=4GB"], ct);
        await pg.ExecuteAsync("CREATE DATABASE tenantry_control", cancellationToken: ct);
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:Tenantry.ControlPlane.TierChanges=Information",
            "--Tenantry:Store=" + pg.SuperuserConnectionStringFor("tenantry_control"),
            "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey,
            "--Tenantry:Postgres:Servers:0:Name=pg-bench",
            "--Tenantry:Postgres:Servers:0:ConnectionString=" + pg.SuperuserConnectionStringFor("postgres")) with { Output = line => { if (line.Contains("Tenant ", StringComparison.Ordinal) && line.Contains("TierChange", StringComparison.Ordinal)) { Console.Error.WriteLine(line); } } }, ct);
        using var op = await host.OperatorClientAsync(TimeSpan.FromMinutes(5));

        var big = await host.OnboardAsync(op, "big-shop", "basic");
        var quietTenants = new List<TenantHandle>();
        for (var i = 0; i < others; i++)
        {
            quietTenants.Add(await host.OnboardAsync(op, $"quiet-{i:D2}", i % 2 == 0 ? "basic" : "premium"));
        }

        // A write through the gateway first, so the app's tables exist in the pool.
        using (var client = big.Client())
        {
            using var first = await client.PostAsJsonAsync("/orders", new { amount = 1m, note = "first" }, ct);
            first.EnsureSuccessStatusCode();
        }

        var poolDb = pg.SuperuserConnectionStringFor("tenantry_pool");
        var ordersTable = await FindTableAsync(poolDb, "orders", ct);
        var seed = Stopwatch.StartNew();
        await SeedAsync(poolDb, ordersTable, big.Id, rows, ct);
        var before = await DigestAsync(poolDb, ordersTable, big.Id, ct);
        Console.Error.WriteLine($"Seeded {rows:N0} orders in {seed.Elapsed.TotalSeconds:0.0} s; the tenant holds {before.Count:N0}.");

        // The other tenants' latency without a move.
        await using var load = new Load(quietTenants, writers: 0, big);
        await Task.Delay(TimeSpan.FromSeconds(2), ct);
        load.ResetQuiet();
        await Task.Delay(TimeSpan.FromSeconds(quiet), ct);
        var quietP99 = load.QuietP99();

        // The offline way: writes stop, the tenant's rows go through pg_dump into a new database.
        var offline = await OfflineAsync(pg, poolDb, ordersTable, big.Id, ct);

        // The move, with writers on the tenant.
        load.ResetQuiet();
        load.StartWriters(writers);
        await Task.Delay(TimeSpan.FromSeconds(2), ct);
        var clock = Stopwatch.StartNew();
        using var started = await op.PostAsJsonAsync($"/v1/tenants/{big.Id}/tier", new { tier = "premium" }, ct);
        if (!started.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"POST /tier answered {(int)started.StatusCode}: {await started.Content.ReadAsStringAsync(ct)}");
        }

        var operationId = (await started.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetGuid();
        var status = "running";
        while (clock.Elapsed < MoveTimeout)
        {
            var operation = await op.GetFromJsonAsync<JsonElement>($"/v1/operations/{operationId}?wait=5", ct);
            status = operation.GetProperty("status").GetString()!;
            if (status is "succeeded" or "failed" or "cancelled")
            {
                break;
            }
        }

        var total = clock.Elapsed.TotalSeconds;
        await Task.Delay(TimeSpan.FromSeconds(2), ct);
        var moveP99 = load.QuietP99();
        var writes = await load.StopWritersAsync();
        var steps = (await op.GetFromJsonAsync<JsonElement>($"/v1/operations/{operationId}", ct)).GetProperty("steps").EnumerateArray()
            .Select(s => (Name: s.GetProperty("name").GetString()!, Started: Time(s, "startedAt"), Finished: Time(s, "finishedAt"))).ToList();
        Console.Error.WriteLine("Steps: " + string.Join(", ", steps.Select(s => $"{s.Name} {(s.Finished - s.Started)?.TotalSeconds:0.000} s")));
        if (steps.FirstOrDefault(s => s.Name == "freeze").Started is { } frozeAt && steps.FirstOrDefault(s => s.Name == "switch").Finished is { } switchedAt)
        {
            Console.Error.WriteLine($"Freeze to switch: {(switchedAt - frozeAt).TotalSeconds:0.000} s; the longest write gap ended {(load.LongestGapEnded - switchedAt).TotalSeconds:0.000} s after the switch; refused: {load.Refusals}.");
            var gapStart = load.LongestGapEnded - TimeSpan.FromSeconds(writes.LongestGap);
            Console.Error.WriteLine("Refused in the longest gap (s from the switch, status): " + string.Join(" ", load.RefusedAt
                .Where(r => r.At >= gapStart && r.At <= load.LongestGapEnded).Select(r => $"{(r.At - switchedAt).TotalSeconds:0.00}:{r.Status}")));
            Console.Error.WriteLine("Writes over 300 ms (s from the switch, sent → answered): " + string.Join(" ", load.Slow
                .Select(w => $"{(w.Sent - switchedAt).TotalSeconds:0.00}→{(w.Answered - switchedAt).TotalSeconds:0.00}")));
        }
        if (status != "succeeded")
        {
            Console.WriteLine($"The move ended {status} after {total:0.0} s.");
            return 1;
        }

        // Where the tenant's rows are now, and whether all of them came.
        var tenant = await op.GetFromJsonAsync<JsonElement>($"/v1/tenants/{big.Id}", ct);
        var database = tenant.GetProperty("resources").GetProperty("database");
        var targetDb = pg.SuperuserConnectionStringFor(database.GetProperty("database").GetString()!);
        var targetTable = await FindTableAsync(targetDb, "orders", ct);
        var after = await DigestAsync(targetDb, targetTable, big.Id, ct);
        var missing = await MissingAsync(targetDb, targetTable, big.Id, writes.Acknowledged, ct);
        var lostCount = before.Count + writes.Acknowledged.Count - after.Count;

        Console.WriteLine($"## Tier change basic → premium of a tenant with {rows:N0} orders (PostgreSQL {pg.Version}, {Environment.ProcessorCount} cores, loopback)");
        Console.WriteLine();
        Console.WriteLine($"Load: {writers} loops writing orders to the moving tenant through the gateway (a refused write is retried after 50 ms; they ask more than the basic plan's 50 requests/s, so the gateway answers some 429 all along); {others} other tenants read and write through the gateway all along.");
        Console.WriteLine();
        // The freeze as the writers met it: from the first write refused 503 to the last (the gateway's tenant-frozen, or the app's).
        var frozen = load.RefusedAt.Where(r => r.Status == 503).Select(r => r.At).ToList();
        var freeze = frozen.Count == 0 ? 0 : (frozen.Max() - frozen.Min()).TotalSeconds;
        Console.WriteLine("| way | writes refused (freeze) | longest gap between acknowledged writes | total time | rows lost (count) | checksum | other tenants' p99 |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        Console.WriteLine($"| offline: pg_dump of the tenant's rows, restore into a new database | {offline.Downtime:0.00} s (all of it) | {offline.Downtime:0.00} s | {offline.Downtime:0.00} s | {before.Count - offline.Restored} | {(offline.Checksum == before.Checksum ? "equal" : "differs")} | – |");
        Console.WriteLine($"| tier change (copy, catch-up, freeze, verify, switch) | {freeze:0.000} s (refused writes by status: {load.Refusals}) | {writes.LongestGap:0.000} s | {total:0.0} s | {lostCount} (+{missing} acknowledged writes missing) | {(after.Checksum == before.Checksum ? "equal" : "differs")} | {moveP99:0.0} ms vs {quietP99:0.0} ms before ({moveP99 / quietP99:0.00}×) |");
        Console.WriteLine();
        Console.WriteLine($"Freeze vs the offline downtime: {freeze / offline.Downtime:0.000}× ({freeze:0.000} s vs {offline.Downtime:0.00} s); longest write gap {writes.LongestGap / offline.Downtime:0.000}×. " +
            $"Goals: freeze ≤ {FreezeGoalSeconds:0.0} s: {(freeze <= FreezeGoalSeconds ? "met" : "not met")}; 0 rows lost: {(lostCount == 0 && missing == 0 ? "met" : "not met")}; " +
            $"other tenants' p99 ≤ +{(OthersP99Goal - 1) * 100:0} %: {(moveP99 <= quietP99 * OthersP99Goal ? "met" : "not met")}.");
        return lostCount == 0 && missing == 0 ? 0 : 1;
    }

    private static DateTimeOffset? Time(JsonElement step, string name) =>
        step.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetDateTimeOffset() : null;

    /// <summary>The schema-qualified name of <paramref name="table"/> in a database (the app's tables live in a schema of their own).</summary>
    private static async Task<string> FindTableAsync(string connectionString, string table, CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand("SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_name = @t ORDER BY table_schema LIMIT 1", c);
        cmd.Parameters.AddWithValue("t", table);
        return await cmd.ExecuteScalarAsync(ct) as string ?? throw new InvalidOperationException($"No table '{table}' in {c.Database}.");
    }

    private static async Task SeedAsync(string connectionString, string table, Guid tenant, int rows, CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        await using var copy = await c.BeginBinaryImportAsync($"COPY {table} (tenant_id, id, number, amount, note, created_by, created_at) FROM STDIN (FORMAT BINARY)", ct);
        var start = DateTimeOffset.UtcNow.AddDays(-30);
        for (var i = 0; i < rows; i++)
        {
            await copy.StartRowAsync(ct);
            await copy.WriteAsync(tenant, NpgsqlDbType.Uuid, ct);
            await copy.WriteAsync(Guid.CreateVersion7(), NpgsqlDbType.Uuid, ct);
            await copy.WriteAsync("S-" + i.ToString("D7", CultureInfo.InvariantCulture), NpgsqlDbType.Text, ct);
            await copy.WriteAsync(i % 1000 + 0.5m, NpgsqlDbType.Numeric, ct);
            await copy.WriteAsync("seeded", NpgsqlDbType.Text, ct);
            await copy.WriteAsync("seed", NpgsqlDbType.Text, ct);
            await copy.WriteAsync(start.AddSeconds(i), NpgsqlDbType.TimestampTz, ct);
        }

        await copy.CompleteAsync(ct);
    }

    private sealed record Digest(long Count, string Checksum);

    /// <summary>The tenant's row count, and an order-independent checksum of the seeded rows (a hash of each row's text, summed).</summary>
    private static async Task<Digest> DigestAsync(string connectionString, string table, Guid tenant, CancellationToken ct)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand(
            $"SELECT count(*), coalesce(sum(('x' || substr(md5(o::text), 1, 15))::bit(60)::bigint) FILTER (WHERE created_by = 'seed'), 0)::text FROM {table} o WHERE tenant_id = @t", c)
        { CommandTimeout = 600 };
        cmd.Parameters.AddWithValue("t", tenant);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return new Digest(reader.GetInt64(0), reader.GetString(1));
    }

    private static async Task<int> MissingAsync(string connectionString, string table, Guid tenant, IReadOnlyCollection<Guid> ids, CancellationToken ct)
    {
        if (ids.Count == 0)
        {
            return 0;
        }

        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand($"SELECT count(*) FROM unnest(@ids) AS i(id) WHERE NOT EXISTS (SELECT 1 FROM {table} o WHERE o.tenant_id = @t AND o.id = i.id)", c);
        cmd.Parameters.AddWithValue("t", tenant);
        cmd.Parameters.AddWithValue("ids", ids.ToArray());
        return (int)(long)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private sealed record OfflineRun(double Downtime, long Restored, string Checksum);

    /// <summary>
    /// The offline move: the tenant's rows into a table of their own (pg_dump dumps tables, not rows), pg_dump of it,
    /// a new database, pg_restore into it. The tenant cannot write from the first command to the last.
    /// </summary>
    private static async Task<OfflineRun> OfflineAsync(PostgresServer pg, string poolDb, string table, Guid tenant, CancellationToken ct)
    {
        var dump = Path.Combine(Path.GetTempPath(), $"tenantry-move-{Guid.NewGuid():N}.dump");
        var clock = Stopwatch.StartNew();
        await using (var c = new NpgsqlConnection(poolDb))
        {
            await c.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand($"CREATE TABLE public.offline_orders AS SELECT * FROM {table} WHERE tenant_id = @t", c) { CommandTimeout = 600 };
            cmd.Parameters.AddWithValue("t", tenant);
            await cmd.ExecuteNonQueryAsync(ct);
        }

        var bin = PostgresServer.FindBinDirectory() ?? "/usr/bin";
        await RunAsync(Path.Combine(bin, "pg_dump"), ["-h", PostgresServer.Host, "-p", pg.Port.ToString(CultureInfo.InvariantCulture), "-U", PostgresServer.SuperuserName, "-Fc", "-t", "public.offline_orders", "-f", dump, "tenantry_pool"], pg.SuperuserPassword, ct);
        await pg.ExecuteAsync("CREATE DATABASE offline_target", cancellationToken: ct);
        await RunAsync(Path.Combine(bin, "pg_restore"), ["-h", PostgresServer.Host, "-p", pg.Port.ToString(CultureInfo.InvariantCulture), "-U", PostgresServer.SuperuserName, "-d", "offline_target", dump], pg.SuperuserPassword, ct);
        var downtime = clock.Elapsed.TotalSeconds;
        File.Delete(dump);

        var restored = await DigestAsync(pg.SuperuserConnectionStringFor("offline_target"), "public.offline_orders", tenant, ct);
        await using (var c = new NpgsqlConnection(poolDb))
        {
            await c.OpenAsync(ct);
            await using var drop = new NpgsqlCommand("DROP TABLE public.offline_orders", c);
            await drop.ExecuteNonQueryAsync(ct);
        }

        await pg.ExecuteAsync("DROP DATABASE offline_target WITH (FORCE)", cancellationToken: ct);
        return new OfflineRun(downtime, restored.Count, restored.Checksum);
    }

    private static async Task RunAsync(string file, string[] args, string password, CancellationToken ct)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["PGPASSWORD"] = password;
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync(ct);
        await process.StandardOutput.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(file)} exited {process.ExitCode}: {await error}");
        }
    }

    private sealed record Writes(IReadOnlyCollection<Guid> Acknowledged, double LongestGap, long Refused);

    /// <summary>
    /// One loop per other tenant (a read, then a write, through the gateway, latencies recorded), and on demand
    /// <c>writers</c> loops writing orders to the moving tenant, recording every acknowledged id and when writes were refused.
    /// </summary>
    private sealed class Load : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly HttpClient _http;
        private readonly Task[] _quietLoops;
        private readonly TenantHandle _moving;
        private readonly ConcurrentBag<Guid> _acknowledged = [];
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private ConcurrentQueue<double> _latencies = new();
        private CancellationTokenSource? _writersStop;
        private Task[] _writerLoops = [];
        private long _lastSuccessTicks;
        private long _longestGapTicks;
        private long _refused;
        private readonly ConcurrentDictionary<int, int> _refusals = new();

        /// <summary>When the write that ended the longest gap was acknowledged.</summary>
        public DateTimeOffset LongestGapEnded { get; private set; }

        /// <summary>Acknowledged writes that took over 300 ms: sent, answered.</summary>
        public ConcurrentQueue<(DateTimeOffset Sent, DateTimeOffset Answered)> Slow { get; } = new();

        /// <summary>When each write was refused, and how.</summary>
        public ConcurrentQueue<(DateTimeOffset At, int Status)> RefusedAt { get; } = new();

        /// <summary>The refused writes by status code.</summary>
        public string Refusals => string.Join(", ", _refusals.OrderBy(r => r.Key).Select(r => $"{r.Key}: {r.Value}"));

        public Load(IReadOnlyList<TenantHandle> quiet, int writers, TenantHandle moving)
        {
            _moving = moving;
            _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = moving.Host.Gateway, Timeout = TimeSpan.FromSeconds(30) };
            _quietLoops = [.. quiet.Select(t => Task.Run(() => QuietLoopAsync(t)))];
            StartWriters(writers);
        }

        public void ResetQuiet() => _latencies = new ConcurrentQueue<double>();

        public double QuietP99()
        {
            var sorted = _latencies.Order().ToArray();
            return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(sorted.Length * 0.99) - 1)];
        }

        public void StartWriters(int writers)
        {
            if (writers == 0)
            {
                return;
            }

            _writersStop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            Interlocked.Exchange(ref _lastSuccessTicks, _clock.Elapsed.Ticks);
            _writerLoops = [.. Enumerable.Range(0, writers).Select(_ => Task.Run(() => WriterLoopAsync(_writersStop.Token)))];
        }

        public async Task<Writes> StopWritersAsync()
        {
            if (_writersStop is not null)
            {
                await _writersStop.CancelAsync();
                await Task.WhenAll(_writerLoops);
            }

            return new Writes([.. _acknowledged], TimeSpan.FromTicks(Interlocked.Read(ref _longestGapTicks)).TotalSeconds, Interlocked.Read(ref _refused));
        }

        private async Task WriterLoopAsync(CancellationToken stop)
        {
            var n = 0;
            while (!stop.IsCancellationRequested)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/orders") { Content = JsonContent.Create(new { amount = 2.5m, note = "written during the move " + n++ }) };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _moving.Token);
                try
                {
                    // A write under way when the writers stop still finishes: its row counts as acknowledged or not.
                    var sent = DateTimeOffset.UtcNow;
                    using var response = await _http.SendAsync(request, _stop.Token);
                    if (response.StatusCode == HttpStatusCode.Created)
                    {
                        if (DateTimeOffset.UtcNow - sent > TimeSpan.FromMilliseconds(300))
                        {
                            Slow.Enqueue((sent, DateTimeOffset.UtcNow));
                        }

                        _acknowledged.Add((await response.Content.ReadFromJsonAsync<JsonElement>(_stop.Token)).GetProperty("id").GetGuid());
                        var now = _clock.Elapsed.Ticks;
                        var last = Interlocked.Exchange(ref _lastSuccessTicks, now);
                        var gap = now - last;
                        long longest;
                        while (gap > (longest = Interlocked.Read(ref _longestGapTicks)) && Interlocked.CompareExchange(ref _longestGapTicks, gap, longest) != longest)
                        {
                        }

                        if (gap == Interlocked.Read(ref _longestGapTicks))
                        {
                            LongestGapEnded = DateTimeOffset.UtcNow;
                        }

                        continue;
                    }

                    Interlocked.Increment(ref _refused);
                    _refusals.AddOrUpdate((int)response.StatusCode, 1, (_, n) => n + 1);
                    RefusedAt.Enqueue((DateTimeOffset.UtcNow, (int)response.StatusCode));
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (HttpRequestException)
                {
                    // No answer at all (status 0 in the counts).
                    Interlocked.Increment(ref _refused);
                    _refusals.AddOrUpdate(0, 1, (_, n) => n + 1);
                    RefusedAt.Enqueue((DateTimeOffset.UtcNow, 0));
                }

                try
                {
                    await Task.Delay(50, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        private async Task QuietLoopAsync(TenantHandle tenant)
        {
            var n = 0;
            while (!_stop.IsCancellationRequested)
            {
                using HttpRequestMessage request = n++ % 2 == 0
                    ? new(HttpMethod.Get, "/orders?limit=5")
                    : new(HttpMethod.Post, "/orders") { Content = JsonContent.Create(new { amount = 1.5m, note = "quiet" }) };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Token);
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await _http.SendAsync(request, _stop.Token);
                    _latencies.Enqueue(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    return;
                }
                catch (HttpRequestException)
                {
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_quietLoops.Concat(_writerLoops));
            _http.Dispose();
            _stop.Dispose();
        }
    }
}
