using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Tenantry.Benchmarks;
using Tenantry.Testing;

namespace Tenantry.Billing.Benchmarks;

/// <summary>
/// Usage ingest over HTTP into the real host: batches of CloudEvents with a share of duplicates,
/// sent by concurrent clients; throughput, ack latency, and a count afterwards that proves 0 lost
/// and 0 duplicated. Each store is also run with one client at a time (no batches to commit
/// together) as the baseline of the same run.
/// </summary>
internal static class IngestBenchmark
{
    private const string Help = """
        Usage: dotnet run -c Release --project benchmarks/Tenantry.Billing.Benchmarks -- [options]

          --store sqlite|postgres|both   stores to measure (default both)
          --events N                     events per measured run, duplicates included (default 200000)
          --batch N                      events per POST (default 100)
          --duplicates F                 share of events that repeat an earlier one (default 0.05)
          --concurrency N[,N…]           clients sending at once, one measured run each per round
                                         (default 32,64,128); the goal is marked on the best level
          --rounds N                     rounds of the baseline and every level, alternated (default 3);
                                         each level is reported by its median run
          --tenants N                    tenants the events are spread over (default 20)
          --pg "Host=…;Username=…"       use this PostgreSQL server (a database is created on it);
                                         default: start a private one (initdb, random loopback port)
          --pg-setting "name = value"    a postgresql.conf line for the private server (repeatable),
                                         e.g. --pg-setting "shared_buffers = 1GB"
        Goals: >= 30000 events/s on SQLite, >= 100000 events/s on PostgreSQL, 0 lost, 0 duplicated.
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Any(a => a is "--help" or "-h"))
        {
            Console.WriteLine(Help);
            return 0;
        }

        var options = Options.Parse(args);
        if (options is null)
        {
            Console.Error.WriteLine(Help);
            return 2;
        }

        Console.WriteLine($"# Usage ingest benchmark ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, host build {TenantryHost.HostBuildConfiguration() ?? "?"})");
        Console.WriteLine();
        Console.WriteLine($"{options.Events} events per run in batches of {options.Batch}, {options.Duplicates:P0} duplicates, {string.Join(" / ", options.Concurrency)} concurrent clients, {options.Tenants} tenants; baseline: 1 client, {options.Events / 5} events; {options.Rounds} rounds of every level, alternated, each level reported by its median run; every run's events counted in the store afterwards (lost = 0 and duplicated = 0, or the program fails).");
        if (options.PgSettings.Count > 0)
        {
            Console.WriteLine($"Private PostgreSQL server settings added: {string.Join("; ", options.PgSettings)}.");
        }
        Console.WriteLine();
        Console.WriteLine("| store | clients | events/s (median run) | events/s, each round | host CPU µs/event | PostgreSQL CPU µs/event | ack p50 ms | ack p99 ms | steal | events sent, all rounds | repeats answered as duplicates | lost / duplicated in the store | goal | ratio to goal |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        var failed = false;
        if (options.Store is "sqlite" or "both")
        {
            failed |= !await RunStoreAsync("sqlite", null, options, 30_000, null);
        }

        if (options.Store is "postgres" or "both")
        {
            PostgresServer? server = null;
            var pg = options.Postgres;
            if (pg is null)
            {
                server = await PostgresServer.StartAsync(options.PgSettings);
                pg = server.SuperuserConnectionString;
            }

            try
            {
                var database = "tenantry_bench_" + Guid.NewGuid().ToString("N")[..8];
                await using (var admin = new Npgsql.NpgsqlConnection(pg))
                {
                    await admin.OpenAsync();
                    await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {database}", admin);
                    await create.ExecuteNonQueryAsync();
                }

                var store = new Npgsql.NpgsqlConnectionStringBuilder(pg) { Database = database, MaxPoolSize = 200 }.ConnectionString;
                failed |= !await RunStoreAsync("postgresql", store, options, 100_000, server is null ? null : StoreServerCpu(server.DataDirectory));
            }
            finally
            {
                if (server is not null)
                {
                    await server.DisposeAsync();
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine(ServerNote);
        return failed ? 1 : 0;
    }

    private const string ServerNote =
        "SQLite: WAL, synchronous=FULL, one fsync per group commit. PostgreSQL from this program is a private throwaway server " +
        "(fsync=off, synchronous_commit=off, like the test fixture); pass --pg to measure a durable server.";

    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(20);

    private static async Task<bool> RunStoreAsync(string name, string? postgres, Options options, double goal, Func<TimeSpan>? serverCpu)
    {
        using var host = await TenantryHost.StartAsync(new TenantryHostOptions { Store = postgres });
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = options.Concurrency.Max() + 4, PooledConnectionLifetime = TimeSpan.FromMinutes(10) };
        using var client = new HttpClient(handler) { BaseAddress = host.ControlPlane, Timeout = TimeSpan.FromSeconds(120) };
        using (var form = new FormUrlEncodedContent(new Dictionary<string, string>
               {
                   ["grant_type"] = "client_credentials", ["client_id"] = "operator", ["client_secret"] = host.OperatorSecret, ["scope"] = "tenantry:admin",
               }))
        using (var token = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), form))
        {
            token.EnsureSuccessStatusCode();
            var json = await token.Content.ReadFromJsonAsync<JsonElement>();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", json.GetProperty("access_token").GetString());
        }

        (await client.PostAsJsonAsync("/v1/meters", new { key = "bench", aggregation = "sum", property = "n" })).EnsureSuccessStatusCode();
        var tenants = new List<string>();
        for (var i = 0; i < options.Tenants; i++)
        {
            using var created = await client.PostAsJsonAsync("/v1/tenants", new { name = $"Bench {i}", slug = $"bench-{i:D3}", tier = "basic", adminEmail = $"admin@bench-{i}.test" });
            created.EnsureSuccessStatusCode();
            tenants.Add((await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!);
        }

        // Warm-up until the JIT has reached its last tier (connections and caches too): at least
        // WarmUp of steady load, its events kept apart under their own sources.
        var warm = Stopwatch.StartNew();
        for (var pass = 0; pass == 0 || warm.Elapsed < WarmUp; pass++)
        {
            await SendAllAsync(client, Batches($"warmup-{pass}", Math.Max(options.Events / 10, 1000), options, tenants), options.Concurrency[0]);
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: warmed up in {warm.Elapsed.TotalSeconds:0} s, measuring"));

        // Rounds of one client at a time, then each level of concurrency, so a slow minute of the
        // machine falls on every level alike; each run's CPU is read around it.
        var runs = new List<(Result Result, int Clients)>();
        for (var round = 1; round <= options.Rounds; round++)
        {
            foreach (var clients in (int[])[1, .. options.Concurrency])
            {
                var cpu = host.CpuTime;
                var server = serverCpu?.Invoke();
                var machine = MachineCpu.Read();
                var result = await MeasureAsync(client, $"run-{round}-{clients}", clients == 1 ? options.Events / 5 : options.Events, clients, options, tenants);
                result = result with
                {
                    HostCpuMicrosPerEvent = (host.CpuTime - cpu).TotalMicroseconds / result.Sent,
                    ServerCpuMicrosPerEvent = (serverCpu?.Invoke() - server)?.TotalMicroseconds / result.Sent,
                    Steal = MachineCpu.StealShare(machine, MachineCpu.Read()),
                };
                runs.Add((result, clients));
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name}: round {round}, {clients} clients: {result.PerSecond:0} events/s; CPU per event: host {result.HostCpuMicrosPerEvent:0.0} µs, benchmark client {result.ClientCpuMicrosPerEvent:0.0} µs, PostgreSQL server {result.ServerCpuMicrosPerEvent?.ToString("0.0", CultureInfo.InvariantCulture) ?? "-"} µs; hypervisor steal {result.Steal:P1}"));
            }
        }

        var ok = true;
        var counted = new Dictionary<string, (long Lost, long Duplicated)>(StringComparer.Ordinal); // by run (its source)
        foreach (var (result, _) in runs)
        {
            var stored = await StoredAsync(host, postgres, result.Source);
            var lost = result.Unique - stored.Distinct;
            var duplicated = stored.Rows - stored.Distinct;
            counted[result.Source] = (lost, duplicated);
            if (lost != 0 || duplicated != 0 || result.Accepted != result.Unique || result.Failures != 0)
            {
                Console.Error.WriteLine($"{name}: {result.Source}: {lost} lost, {duplicated} duplicated, {result.Accepted} accepted of {result.Unique} unique, {result.Failures} failed batches");
                ok = false;
            }
        }

        // Per level the median run (by events/s) with all its figures, and every round's events/s.
        var levels = runs.GroupBy(r => r.Clients).Select(g =>
        {
            var ordered = g.Select(r => r.Result).OrderBy(r => r.PerSecond).ToList();
            return (Clients: g.Key, Median: ordered[(ordered.Count - 1) / 2], All: g.Select(r => r.Result).ToList());
        }).ToList();
        var best = levels.Skip(1).MaxBy(l => l.Median.PerSecond).Median;
        foreach (var (clients, result, all) in levels)
        {
            var tail = clients == 1
                ? $"baseline | {Format.Ratio(best.PerSecond / result.PerSecond)} best level/baseline |"
                : string.Create(CultureInfo.InvariantCulture, $"{goal:0} | {Format.Ratio(result.PerSecond / goal)}{(ReferenceEquals(result, best) ? " (best)" : "")} |");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {clients} | {result.PerSecond:0} | {string.Join(" / ", all.Select(r => r.PerSecond.ToString("0", CultureInfo.InvariantCulture)))} | {result.HostCpuMicrosPerEvent:0.0} | {result.ServerCpuMicrosPerEvent?.ToString("0.0", CultureInfo.InvariantCulture) ?? "–"} | {Format.Ms(result.Latency.P50)} | {Format.Ms(result.Latency.P99)} | {result.Steal:P1} | {all.Sum(r => r.Sent)} | {all.Sum(r => r.Duplicates)} | {all.Sum(r => counted[r.Source].Lost)} / {all.Sum(r => counted[r.Source].Duplicated)} | ") + tail);
        }

        return ok;
    }

    /// <summary>CPU time of the private PostgreSQL server: its postmaster and every process it started (backends, writers, ended ones too), from /proc.</summary>
    private static Func<TimeSpan>? StoreServerCpu(string dataDirectory)
    {
        var pidFile = Path.Combine(dataDirectory, "postmaster.pid");
        if (!File.Exists(pidFile) || !Directory.Exists("/proc"))
        {
            return null;
        }

        var postmaster = File.ReadLines(pidFile).First().Trim();
        var ticksPerSecond = 100.0; // USER_HZ on Linux
        return () =>
        {
            long ticks = 0;
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                try
                {
                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    // fields[0] = state, [1] = ppid, [11] = utime, [12] = stime, [13] = cutime, [14] = cstime
                    // (stat fields 3, 4, 14-17). The postmaster's cutime and cstime hold the processes it
                    // started that have ended (autovacuum workers, closed connections).
                    var self = Path.GetFileName(dir) == postmaster;
                    if (self || fields[1] == postmaster)
                    {
                        ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                    }

                    if (self)
                    {
                        ticks += long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
                {
                    // A process that ended while being read, or not a process directory.
                }
            }

            return TimeSpan.FromSeconds(ticks / ticksPerSecond);
        };
    }

    private sealed record Result(string Source, int Sent, int Unique, int Accepted, int Duplicates, int Failures, double PerSecond, Distribution Latency, double ClientCpuMicrosPerEvent)
    {
        public double HostCpuMicrosPerEvent { get; init; }

        /// <summary>The private PostgreSQL server's CPU per event; null on SQLite or a server given by --pg.</summary>
        public double? ServerCpuMicrosPerEvent { get; init; }

        /// <summary>Share of the machine's CPU time the hypervisor gave to other machines during the run.</summary>
        public double Steal { get; init; }
    }

    private static async Task<Result> MeasureAsync(HttpClient client, string source, int events, int concurrency, Options options, List<string> tenants)
    {
        var batches = Batches(source, events, options, tenants);
        var unique = batches.Sum(b => b.Unique);
        var sent = batches.Sum(b => b.Count);
        using var self = Process.GetCurrentProcess();
        var cpu = self.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var (latencies, accepted, duplicates, failures) = await SendAllAsync(client, batches, concurrency);
        var seconds = clock.Elapsed.TotalSeconds;
        self.Refresh();
        var clientCpu = (self.TotalProcessorTime - cpu).TotalMicroseconds / sent;
        return new Result(source, sent, unique, accepted, duplicates, failures, sent / seconds, Distribution.Of(latencies), clientCpu);
    }

    private sealed record Batch(byte[] Body, int Count, int Unique);

    /// <summary>Pre-serialised batches; each holds (1 - duplicates) new events and copies of earlier ones.</summary>
    private static List<Batch> Batches(string source, int events, Options options, List<string> tenants)
    {
        var rng = new Random(42);
        var batches = new List<Batch>();
        var next = 0;
        var time = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        var sent = 0;
        while (sent < events)
        {
            var size = Math.Min(options.Batch, events - sent);
            var body = new StringBuilder("[");
            var fresh = 0;
            for (var i = 0; i < size; i++)
            {
                int n;
                if (next > options.Batch && rng.NextDouble() < options.Duplicates)
                {
                    n = rng.Next(0, next); // an event sent before (possibly by another client, in flight)
                }
                else
                {
                    n = next++;
                    fresh++;
                }

                body.Append(i == 0 ? "" : ",")
                    .Append("{\"specversion\":\"1.0\",\"id\":\"e").Append(n).Append("\",\"source\":\"").Append(source)
                    .Append("\",\"type\":\"bench\",\"subject\":\"").Append(tenants[n % tenants.Count])
                    .Append("\",\"time\":\"").Append(time).Append("\",\"data\":{\"n\":1,\"route\":\"/orders\"}}");
            }

            batches.Add(new Batch(Encoding.UTF8.GetBytes(body.Append(']').ToString()), size, fresh));
            sent += size;
        }

        return batches;
    }

    private static async Task<(List<double> Latencies, int Accepted, int Duplicates, int Failures)> SendAllAsync(HttpClient client, List<Batch> batches, int concurrency)
    {
        var latencies = new List<double>(batches.Count);
        int accepted = 0, duplicates = 0, failures = 0, index = -1;
        var gate = new object();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref index); i < batches.Count; i = Interlocked.Increment(ref index))
            {
                using var content = new ByteArrayContent(batches[i].Body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                var started = Stopwatch.GetTimestamp();
                using var response = await client.PostAsync(new Uri("/v1/usage/events", UriKind.Relative), content);
                var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                if (response.StatusCode != HttpStatusCode.Accepted)
                {
                    Interlocked.Increment(ref failures);
                    continue;
                }

                var json = await response.Content.ReadFromJsonAsync<JsonElement>();
                Interlocked.Add(ref accepted, json.GetProperty("accepted").GetInt32());
                Interlocked.Add(ref duplicates, json.GetProperty("duplicates").GetInt32());
                if (json.GetProperty("rejected").GetArrayLength() > 0)
                {
                    Interlocked.Increment(ref failures);
                }

                lock (gate)
                {
                    latencies.Add(ms);
                }
            }
        }));
        return (latencies, accepted, duplicates, failures);
    }

    /// <summary>Rows and distinct (source, id) stored for one source, read from the store itself.</summary>
    private static async Task<(long Rows, long Distinct)> StoredAsync(TenantryHost host, string? postgres, string source)
    {
        const string sql = "SELECT count(*), count(DISTINCT id) FROM usage_events WHERE source = @source";
        System.Data.Common.DbConnection connection = postgres is null
            ? new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(host.DataDir, "control.db")};Mode=ReadOnly;Pooling=False")
            : new Npgsql.NpgsqlConnection(postgres);
        await using (connection)
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            var parameter = command.CreateParameter();
            parameter.ParameterName = "@source";
            parameter.Value = source;
            command.Parameters.Add(parameter);
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            return (reader.GetInt64(0), reader.GetInt64(1));
        }
    }

    private sealed record Options(string Store, int Events, int Batch, double Duplicates, int[] Concurrency, int Rounds, int Tenants, string? Postgres, IReadOnlyList<string> PgSettings)
    {
        public static Options? Parse(string[] args)
        {
            var o = new Options("both", 200_000, 100, 0.05, [32, 64, 128], 3, 20, null, []);
            for (var i = 0; i + 1 < args.Length; i += 2)
            {
                var v = args[i + 1];
                o = args[i] switch
                {
                    "--store" when v is "sqlite" or "postgres" or "both" => o with { Store = v },
                    "--events" => o with { Events = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--batch" => o with { Batch = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--duplicates" => o with { Duplicates = double.Parse(v, CultureInfo.InvariantCulture) },
                    "--concurrency" => o with { Concurrency = [.. v.Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))] },
                    "--rounds" => o with { Rounds = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--tenants" => o with { Tenants = int.Parse(v, CultureInfo.InvariantCulture) },
                    "--pg" => o with { Postgres = v },
                    "--pg-setting" when v.Contains('=', StringComparison.Ordinal) => o with { PgSettings = [.. o.PgSettings, v] },
                    _ => null,
                };
                if (o is null)
                {
                    return null;
                }
            }

            return args.Length % 2 == 0 && o.Concurrency.Length > 0 && o.Concurrency.All(c => c > 1) && o.Rounds > 0 ? o : null;
        }
    }
}
