using System.Diagnostics;
using System.Globalization;
using System.Text;
using Npgsql;
using Tenantry;
using Tenantry.Data;
using Tenantry.Data.Benchmarks;
using Tenantry.Data.Migrations;
using Tenantry.Data.Postgres;
using Tenantry.Testing;

var options = BenchOptions.Parse(args);
if (options is null)
{
    Console.WriteLine(BenchOptions.Help);
    return 0;
}

Console.Error.WriteLine($"Starting a private PostgreSQL (initdb into a temp dir)...");
await using var server = await PostgresServer.StartAsync();
Console.Error.WriteLine($"PostgreSQL {server.Version} on 127.0.0.1:{server.Port}");

var rows = new List<string[]>();
var rls = await RlsBenchmark.RunAsync(server, options);
rows.AddRange(rls);
rows.Add(await OnboardingBenchmark.SiloAsync(server, options));
rows.AddRange(await OnboardingBenchmark.BridgeFanOutAsync(server, options));

var report = new StringBuilder()
    .AppendLine(CultureInfo.InvariantCulture, $"Data plane on PostgreSQL {server.Version}, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd}; server and client on this machine, fsync=off.")
    .AppendLine()
    .AppendLine("| measurement | RLS pool (set_config in the same round trip) | baseline | ratio | goal |")
    .AppendLine("|---|---|---|---|---|");
foreach (var row in rows)
{
    report.AppendLine("| " + string.Join(" | ", row) + " |");
}

report.AppendLine().AppendLine("Reproduce: `" + options.Command + "`");
Console.WriteLine(report);
return 0;

namespace Tenantry.Data.Benchmarks
{
    internal sealed record BenchOptions(int Tenants, int RowsPerTenant, int Lookups, int Aggregates, int Silos, int Bridges, int Parallel)
    {
        public const string Help = """
            Tenantry data-plane benchmarks (starts its own PostgreSQL; needs `apt-get install postgresql`).
              --tenants N      pool tenants (default 50)
              --rows N         rows per pool tenant (default 2000)
              --lookups N      point lookups per variant (default 10000)
              --aggregates N   tenant aggregates per variant (default 1000)
              --silos N        silo tenants onboarded (default 10)
              --bridges N      bridge schemas migrated (default 200)
              --parallel N     migration fan-out parallelism (default 4)
            """;

        public string Command =>
            $"dotnet run -c Release --project benchmarks/Tenantry.Data.Benchmarks -- --tenants {Tenants} --rows {RowsPerTenant} --lookups {Lookups} --aggregates {Aggregates} --silos {Silos} --bridges {Bridges} --parallel {Parallel}";

        public static BenchOptions? Parse(string[] args)
        {
            var o = new BenchOptions(50, 2000, 10000, 1000, 10, 200, 4);
            for (var i = 0; i < args.Length; i++)
            {
                if (args[i] is "--help" or "-h")
                {
                    return null;
                }

                var value = i + 1 < args.Length ? int.Parse(args[++i], CultureInfo.InvariantCulture) : throw new ArgumentException($"{args[i]} needs a value");
                ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, args[i - 1]);
                o = args[i - 1] switch
                {
                    "--tenants" => o with { Tenants = value },
                    "--rows" => o with { RowsPerTenant = value },
                    "--lookups" => o with { Lookups = value },
                    "--aggregates" => o with { Aggregates = value },
                    "--silos" => o with { Silos = value },
                    "--bridges" => o with { Bridges = value },
                    "--parallel" => o with { Parallel = value },
                    _ => throw new ArgumentException($"Unknown option {args[i - 1]}.\n{Help}"),
                };
            }

            return o;
        }
    }

    internal static class Stats
    {
        public static double Percentile(List<double> values, double p)
        {
            var sorted = values.Order().ToList();
            return sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];
        }

        public static string Ms(double ms) => ms.ToString(ms < 10 ? "0.000" : "0.0", CultureInfo.InvariantCulture) + " ms";
    }

    /// <summary>
    /// The pool's cost: the same query through a tenant session (RLS, set_config batched with it)
    /// and over a plain connection against an identical table without RLS, with an explicit
    /// <c>WHERE tenant_id</c>. Same server, same connection settings, same transaction shape,
    /// alternating in blocks so drift hits both alike.
    /// </summary>
    internal static class RlsBenchmark
    {
        private const string AppRole = "bench_app";
        private const string AppPassword = "bench-app-password-1";

        public static async Task<List<string[]>> RunAsync(PostgresServer server, BenchOptions options)
        {
            await server.ExecuteAsync("CREATE DATABASE bench");
            var admin = server.SuperuserConnectionStringFor("bench");
            await using (var connection = new NpgsqlConnection(admin))
            {
                await connection.OpenAsync();
                await PostgresTenantDdl.ExecuteAsync(connection, PostgresTenantDdl.CreatePoolAppRole(AppRole, AppPassword));
            }

            var schema = new TenantSchema("bench", [new TenantMigration(1, "orders", new CreateTable(new TableDefinition(
                "orders",
                [new ColumnDefinition("id", ColumnType.Integer64), new ColumnDefinition("amount", ColumnType.Numeric), new ColumnDefinition("status", ColumnType.Text)],
                ["id"])))]);
            var report = await new TenantMigrationRunner(schema).RunAsync([MigrationTarget.PostgresPool(admin, AppRole)]);
            if (!report.Succeeded)
            {
                throw new InvalidOperationException(report.Failed.First().Error);
            }

            var tenants = Enumerable.Range(0, options.Tenants).Select(_ => Guid.CreateVersion7()).ToArray();
            Console.Error.WriteLine($"Loading {options.Tenants} x {options.RowsPerTenant} rows into orders (RLS) and orders_plain (no RLS)...");
            await using (var connection = new NpgsqlConnection(admin))
            {
                await connection.OpenAsync();
                await using var load = new NpgsqlCommand($"""
                    CREATE TABLE orders_plain (LIKE orders INCLUDING ALL);
                    GRANT SELECT ON orders_plain TO {AppRole};
                    INSERT INTO orders (tenant_id, id, amount, status)
                        SELECT t, g, (g % 1000) / 10.0, CASE WHEN g % 3 = 0 THEN 'open' ELSE 'paid' END
                        FROM unnest(@tenants::uuid[]) AS t, generate_series(1, @rows) AS g;
                    INSERT INTO orders_plain SELECT * FROM orders;
                    """, connection);
                load.Parameters.AddWithValue("@tenants", tenants);
                load.Parameters.AddWithValue("@rows", options.RowsPerTenant);
                await load.ExecuteNonQueryAsync();
                foreach (var table in new[] { "orders", "orders_plain" })
                {
                    await using var vacuum = new NpgsqlCommand($"VACUUM ANALYZE {table}", connection);
                    await vacuum.ExecuteNonQueryAsync();
                }
            }

            var appConnection = server.ConnectionString("bench", AppRole, AppPassword);
            var settings = new TenantDataSourceOptions { MaxPoolSize = 4 };
            await using var data = TenantDataSource.Create(settings);
            // The baseline's data source carries the settings TenantDataSource applies to its own.
            await using var plain = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(appConnection)
            {
                MaxPoolSize = settings.MaxPoolSize,
                MaxAutoPrepare = settings.MaxAutoPrepare,
                AutoPrepareMinUsages = 2,
                IncludeErrorDetail = false,
                ApplicationName = settings.ApplicationName,
                ConnectionIdleLifetime = (int)settings.ConnectionIdleLifetime.TotalSeconds,
            }.ConnectionString);
            var contexts = tenants.Select((t, i) => new TenantDataContext
            {
                TenantId = t,
                Slug = $"bench-{i:000}",
                Isolation = IsolationModel.Pool,
                Target = new PostgresPoolTarget(appConnection),
            }).ToArray();

            var random = new Random(42);
            var result = new List<string[]>();

            async Task<double> RlsLookup(int i)
            {
                var tenant = contexts[i % contexts.Length];
                var id = (long)random.Next(1, options.RowsPerTenant + 1);
                var started = Stopwatch.GetTimestamp();
                await using var session = await data.OpenSessionAsync(tenant);
                var value = await session.ScalarAsync("SELECT amount FROM orders WHERE id = @id", [("@id", id)]);
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                return value is null ? throw new InvalidOperationException("lookup found nothing") : elapsed;
            }

            async Task<double> PlainLookup(int i)
            {
                var tenant = tenants[i % tenants.Length];
                var id = (long)random.Next(1, options.RowsPerTenant + 1);
                var started = Stopwatch.GetTimestamp();
                await using var connection = await plain.OpenConnectionAsync();
                await using var transaction = await connection.BeginTransactionAsync();
                await using var command = new NpgsqlCommand("SELECT amount FROM orders_plain WHERE tenant_id = @t AND id = @id", connection, transaction);
                command.Parameters.AddWithValue("@t", tenant);
                command.Parameters.AddWithValue("@id", id);
                var value = await command.ExecuteScalarAsync();
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                return value is null ? throw new InvalidOperationException("lookup found nothing") : elapsed;
            }

            // Diagnostic: the same batch shape as the RLS path (set_config + query in one round trip) but no RLS,
            // which splits the pool's overhead into "the setting" and "the policy".
            async Task<double> PlainLookupWithSetConfig(int i)
            {
                var tenant = tenants[i % tenants.Length];
                var id = (long)random.Next(1, options.RowsPerTenant + 1);
                var started = Stopwatch.GetTimestamp();
                await using var connection = await plain.OpenConnectionAsync();
                await using var transaction = await connection.BeginTransactionAsync();
                await using var batch = new NpgsqlBatch(connection, transaction)
                {
                    BatchCommands =
                    {
                        new NpgsqlBatchCommand("SELECT set_config('app.tenant_id', $1, true)") { Parameters = { new() { Value = tenant.ToString() } } },
                        new NpgsqlBatchCommand("SELECT amount FROM orders_plain WHERE tenant_id = @t AND id = @id") { Parameters = { new("@t", tenant), new("@id", id) } },
                    },
                };
                await using var reader = await batch.ExecuteReaderAsync();
                await reader.NextResultAsync();
                var found = await reader.ReadAsync();
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                return found ? elapsed : throw new InvalidOperationException("lookup found nothing");
            }

            async Task<double> RlsAggregate(int i)
            {
                var started = Stopwatch.GetTimestamp();
                await using var session = await data.OpenSessionAsync(contexts[i % contexts.Length]);
                var rows = await session.QueryAsync("SELECT count(*), sum(amount) FROM orders", r => r.GetInt64(0));
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                return rows[0] == options.RowsPerTenant ? elapsed : throw new InvalidOperationException($"aggregate saw {rows[0]} rows");
            }

            async Task<double> PlainAggregate(int i)
            {
                var started = Stopwatch.GetTimestamp();
                await using var connection = await plain.OpenConnectionAsync();
                await using var transaction = await connection.BeginTransactionAsync();
                await using var command = new NpgsqlCommand("SELECT count(*), sum(amount) FROM orders_plain WHERE tenant_id = @t", connection, transaction);
                command.Parameters.AddWithValue("@t", tenants[i % tenants.Length]);
                await using var reader = await command.ExecuteReaderAsync();
                await reader.ReadAsync();
                var count = reader.GetInt64(0);
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                return count == options.RowsPerTenant ? elapsed : throw new InvalidOperationException($"aggregate saw {count} rows");
            }

            Console.Error.WriteLine("Point lookups...");
            result.Add(await CompareAsync("point lookup by id (p50 latency)", options.Lookups, RlsLookup, PlainLookup));
            var split = await CompareAsync("(diagnostic) point lookup: the policy alone", options.Lookups, RlsLookup, PlainLookupWithSetConfig, "the same set_config batch, explicit `WHERE tenant_id`, no RLS");
            split[4] = "–";
            result.Add(split);
            Console.Error.WriteLine("Tenant aggregates...");
            result.Add(await CompareAsync($"aggregate over a tenant's {options.RowsPerTenant} rows (p50 latency)", options.Aggregates, RlsAggregate, PlainAggregate));
            return result;
        }

        private static async Task<string[]> CompareAsync(string name, int count, Func<int, Task<double>> rls, Func<int, Task<double>> baseline, string baselineName = "explicit `WHERE tenant_id`, no RLS")
        {
            // Warm up both paths (pools, auto-prepared statements, caches).
            for (var i = 0; i < Math.Min(count / 5, 500); i++)
            {
                await rls(i);
                await baseline(i);
            }

            // Alternate one by one (AB, BA, AB, …) so that noise from other processes on this machine hits both alike.
            var a = new List<double>(count);
            var b = new List<double>(count);
            for (var i = 0; i < count; i++)
            {
                if (i % 2 == 0)
                {
                    a.Add(await rls(i));
                    b.Add(await baseline(i));
                }
                else
                {
                    b.Add(await baseline(i));
                    a.Add(await rls(i));
                }
            }

            var p50A = Stats.Percentile(a, 50);
            var p50B = Stats.Percentile(b, 50);
            var ratio = p50A / p50B;
            return
            [
                name,
                $"{Stats.Ms(p50A)} (p95 {Stats.Ms(Stats.Percentile(a, 95))}, mean {Stats.Ms(a.Average())})",
                $"{Stats.Ms(p50B)} (p95 {Stats.Ms(Stats.Percentile(b, 95))}, mean {Stats.Ms(b.Average())}): {baselineName}",
                $"**{ratio:0.00}x** p50, {a.Average() / b.Average():0.00}x mean",
                ratio <= 1.10 ? "≤ 1.10x: met" : "≤ 1.10x: **missed**",
            ];
        }
    }

    internal static class OnboardingBenchmark
    {
        private static readonly TenantSchema Schema = new("bench-app",
        [
            new TenantMigration(1, "orders", new CreateTable(new TableDefinition(
                "orders",
                [new ColumnDefinition("id", ColumnType.Uuid), new ColumnDefinition("number", ColumnType.Text), new ColumnDefinition("amount", ColumnType.Numeric)],
                ["id"]) { UniqueKeys = [["number"]] })),
            new TenantMigration(2, "orders created_at",
                new AddColumn("orders", new ColumnDefinition("created_at", ColumnType.Timestamp) { PostgresDefault = "now()", SqliteDefault = "CURRENT_TIMESTAMP" }),
                new CreateIndex("orders", new IndexDefinition("orders_created_at_idx", ["created_at"]))),
            new TenantMigration(3, "customers", new CreateTable(new TableDefinition(
                "customers",
                [new ColumnDefinition("id", ColumnType.Uuid), new ColumnDefinition("email", ColumnType.Text)],
                ["id"]) { UniqueKeys = [["email"]] })),
        ]);

        /// <summary>Onboarding a silo tenant: role, database, three migrations, as the control plane will do it.</summary>
        public static async Task<string[]> SiloAsync(PostgresServer server, BenchOptions options)
        {
            Console.Error.WriteLine($"Onboarding {options.Silos} silo tenants...");
            var endpoint = new PostgresEndpoint(PostgresServer.Host, server.Port);
            var runner = new TenantMigrationRunner(Schema);
            var times = new List<double>();
            await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.SuperuserConnectionString) { Pooling = false }.ConnectionString);
            await admin.OpenAsync();
            for (var i = 0; i < options.Silos; i++)
            {
                var slug = $"silo-{i:000}";
                var password = PostgresTenantDdl.NewPassword();
                var started = Stopwatch.GetTimestamp();
                await PostgresTenantDdl.CreateSiloTenantAsync(admin, slug, password);
                var report = await runner.RunAsync([MigrationTarget.PostgresSilo(slug, PostgresSiloTarget.For(endpoint, slug, password))]);
                times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                if (!report.Succeeded)
                {
                    throw new InvalidOperationException(report.Failed.First().Error);
                }
            }

            return
            [
                $"onboard a silo tenant: role + CREATE DATABASE + 3 migrations (n={options.Silos})",
                $"p50 {Stats.Ms(Stats.Percentile(times, 50))}, max {Stats.Ms(times.Max())}",
                "–", "–", "–",
            ];
        }

        /// <summary>Provisioning then migrating many bridge schemas in one shared database.</summary>
        public static async Task<string[][]> BridgeFanOutAsync(PostgresServer server, BenchOptions options)
        {
            Console.Error.WriteLine($"Provisioning {options.Bridges} bridge schemas...");
            await server.ExecuteAsync("CREATE DATABASE bridges");
            var adminConnection = server.SuperuserConnectionStringFor("bridges");
            var provisioning = Stopwatch.StartNew();
            await using (var admin = new NpgsqlConnection(adminConnection))
            {
                await admin.OpenAsync();
                await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.PrepareBridgeDatabase());
                for (var i = 0; i < options.Bridges; i++)
                {
                    await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.CreateBridgeTenant($"bridge-{i:000}", PostgresTenantDdl.NewPassword()));
                }
            }

            provisioning.Stop();
            var targets = Enumerable.Range(0, options.Bridges).Select(i => MigrationTarget.PostgresBridge(adminConnection, $"bridge-{i:000}")).ToList();
            Console.Error.WriteLine($"Migrating {options.Bridges} bridge schemas, {options.Parallel} at a time...");
            var runner = new TenantMigrationRunner(Schema, new MigrationRunnerOptions { MaxParallelism = options.Parallel });
            var first = await runner.RunAsync(targets);
            if (!first.Succeeded)
            {
                throw new InvalidOperationException(first.Failed.First().Error);
            }

            var again = await runner.RunAsync(targets);
            return
            [
                [
                    $"provision {options.Bridges} bridge tenants (role + schema + grants), sequential",
                    $"{provisioning.Elapsed.TotalSeconds:0.00} s ({Stats.Ms(provisioning.Elapsed.TotalMilliseconds / options.Bridges)} each)",
                    "–", "–", "–",
                ],
                [
                    $"migrations fan-out: {options.Bridges} bridge schemas x 3 migrations, parallelism {options.Parallel}",
                    $"{first.Duration.TotalSeconds:0.00} s ({first.AppliedCount} migrations, {Stats.Ms(first.Duration.TotalMilliseconds / options.Bridges)} per schema)",
                    $"re-run with nothing to apply: {again.Duration.TotalSeconds:0.00} s ({again.AppliedCount} applied)",
                    "–", "–",
                ],
            ];
        }
    }
}
