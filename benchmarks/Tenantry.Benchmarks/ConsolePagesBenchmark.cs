using System.Globalization;
using Microsoft.Data.Sqlite;
using Tenantry.Health;
using Tenantry.Testing;

namespace Tenantry.Benchmarks;

/// <summary>
/// Every API call the console's pages make (fleet, tenant list, tenant, health, worst tenants, costs,
/// invoices, plans, policies, audit), timed with a small store and again with a large one: 10,000
/// tenants and 30 days of per-minute health for 100 of them, seeded straight into the control-plane
/// store (SQLite) with the host stopped, so seeding takes a minute instead of hours of onboarding.
/// Goal: p99 ≤ 300 ms with the large store; the baseline is the same calls with the small one.
/// </summary>
internal static class ConsolePagesBenchmark
{
    private const double GoalMs = 300;

    public static async Task<int> MainAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine("""
                console-pages [--tenants 10000] [--health-tenants 100] [--days 30] [--baseline 100] [--requests 100]
                  Seeds --baseline tenants (health for a tenth of them) into the store, times each console call
                  --requests times, seeds up to --tenants tenants with --days of per-minute health for
                  --health-tenants of them, times them again; prints p50/p99 and the ratios.
                """);
            return 0;
        }

        var tenants = Int(args, "--tenants", 10_000);
        var healthTenants = Int(args, "--health-tenants", 100);
        var days = Int(args, "--days", 30);
        var baseline = Int(args, "--baseline", 100);
        var requests = Int(args, "--requests", 100);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(40));
        var ct = cancel.Token;
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-bench", "console-pages-" + Guid.NewGuid().ToString("N"));
        var settings = new[] { $"--Tenantry:Health:MinuteRetention={days + 2}.00:00:00", "--Tenantry:Billing:SampleInterval=00:00:00" };
        try
        {
            // A first start makes the store and its schema.
            using (await TenantryHost.StartAsync(new TenantryHostOptions { DataDir = dataDir, KeepDataDir = true, Settings = settings }, ct))
            {
            }

            var now = DateTimeOffset.UtcNow;
            var db = Path.Combine(dataDir, "control.db");
            var seeded = await SeedAsync(db, 0, baseline, Math.Max(1, healthTenants * baseline / tenants), days, now, ct);
            var small = await MeasureAsync(dataDir, settings, requests, ct);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            seeded += await SeedAsync(db, baseline, tenants, healthTenants, days, now, ct);
            var seeding = clock.Elapsed;
            var large = await MeasureAsync(dataDir, settings, requests, ct);

            Console.WriteLine($"## Console API with {tenants:N0} tenants and {days} days of per-minute health for {healthTenants} of them, vs {baseline:N0} tenants (same run)");
            Console.WriteLine();
            Console.WriteLine($"{requests} sequential requests per call after 10 warm-ups, timed at the client on loopback (send → whole body read), so an upper bound of server time. Store seeded directly: {seeded:N0} health minutes in all, the large part in {seeding.TotalSeconds:0.0} s.");
            Console.WriteLine();
            Console.WriteLine($"| call | {baseline:N0} tenants p50 / p99 | {tenants:N0} tenants p50 / p99 | p99 ratio | p99 vs goal ({GoalMs:0} ms) |");
            Console.WriteLine("|---|---|---|---|---|");
            var worst = 0.0;
            foreach (var (name, s) in small)
            {
                var l = large[name];
                worst = Math.Max(worst, l.P99);
                Console.WriteLine($"| {name} | {Format.Ms(s.P50)} / {Format.Ms(s.P99)} ms | {Format.Ms(l.P50)} / {Format.Ms(l.P99)} ms | {Format.Ratio(l.P99 / s.P99)} | {Format.Ratio(l.P99 / GoalMs)} {(l.P99 <= GoalMs ? "met" : "NOT met")} |");
            }

            Console.WriteLine();
            Console.WriteLine(worst <= GoalMs ? $"Goal met: worst p99 {Format.Ms(worst)} ms ≤ {GoalMs:0} ms." : $"Goal NOT met: worst p99 {Format.Ms(worst)} ms > {GoalMs:0} ms.");
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static (string Name, string Path)[] Calls(string tenant, DateTimeOffset now)
    {
        string T(DateTimeOffset t) => Uri.EscapeDataString(t.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
        var period = now.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        return
        [
            ("fleet overview", "v1/fleet"),
            ("tenant list, first page", "v1/tenants?limit=25"),
            ("tenant list, search", "v1/tenants?limit=25&q=c-0012"),
            ("tenant", $"v1/tenants/{tenant}"),
            ("health, last 6 h per minute", $"v1/tenants/{tenant}/health?from={T(now.AddHours(-6))}&to={T(now)}&step=1m"),
            ("health, last 24 h per 5 min", $"v1/tenants/{tenant}/health?from={T(now.AddHours(-24))}&to={T(now)}&step=5m"),
            ("health, last 30 d per hour", $"v1/tenants/{tenant}/health?from={T(now.AddDays(-30))}&to={T(now)}&step=1h"),
            ("worst tenants, 1 h", "v1/health/worst?window=1h&by=errorRate"),
            ("worst tenants, 24 h by p99", "v1/health/worst?window=24h&by=p99"),
            ("costs of the month", $"v1/costs?period={period}"),
            ("tenant's invoices", $"v1/tenants/{tenant}/invoices"),
            ("invoice preview", $"v1/tenants/{tenant}/invoices/preview?period={period}"),
            ("plans", "v1/plans"),
            ("tenant's policies", $"v1/tenants/{tenant}/policies"),
            ("guardrails", "v1/guardrails"),
            ("audit, first page", "v1/audit?limit=50"),
            ("fleet migrations", "v1/migrations?limit=20"),
        ];
    }

    private static async Task<Dictionary<string, Distribution>> MeasureAsync(string dataDir, string[] settings, int requests, CancellationToken ct)
    {
        using var host = await TenantryHost.StartAsync(new TenantryHostOptions { DataDir = dataDir, KeepDataDir = true, Settings = settings }, ct);
        using var api = new TenantryApi(host.ControlPlane);
        await api.AuthenticateAsync(host.OperatorSecret, ct);
        var result = new Dictionary<string, Distribution>(StringComparer.Ordinal);
        var budget = TimeSpan.FromSeconds(90);
        foreach (var (name, path) in Calls("c-00000", DateTimeOffset.UtcNow))
        {
            for (var i = 0; i < 10; i++)
            {
                await api.TimeGetAsync(path, ct);
            }

            var samples = new List<double>(requests);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (var i = 0; i < requests && (clock.Elapsed < budget || samples.Count < 20); i++)
            {
                samples.Add(await api.TimeGetAsync(path, ct));
            }

            result[name] = Distribution.Of(samples);
        }

        return result;
    }

    /// <summary>
    /// Tenants c-{from}…c-{to-1} (active pool tenants, as onboarding leaves them in the registry) and,
    /// for the first <paramref name="healthTenants"/> of all, per-minute health for <paramref name="days"/>
    /// days up to <paramref name="now"/> with the hours rolled up, as the gateways and the roll-up would.
    /// </summary>
    private static async Task<long> SeedAsync(string file, int from, int to, int healthTenants, int days, DateTimeOffset now, CancellationToken ct)
    {
        await using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Pooling = false }.ToString());
        await c.OpenAsync(ct);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        var ids = new List<Guid>();
        await using (var insert = c.CreateCommand())
        {
            insert.Transaction = tx;
            insert.CommandText = """
                INSERT INTO tenants (id, slug, name, tier, isolation, status, status_reason, admin_email, config, resources, version, current_operation_id, created_at, updated_at)
                VALUES ($id, $slug, $name, 'basic', 'pool', 'active', NULL, $email, '{}', '{"database":{"engine":"sqlite","model":"pool"},"compute":{"provider":"local","mode":"shared","apps":{}}}', 1, NULL, $at, $at)
                """;
            var id = insert.Parameters.Add("$id", SqliteType.Text);
            var slug = insert.Parameters.Add("$slug", SqliteType.Text);
            var name = insert.Parameters.Add("$name", SqliteType.Text);
            var email = insert.Parameters.Add("$email", SqliteType.Text);
            var at = insert.Parameters.Add("$at", SqliteType.Text);
            for (var i = from; i < to; i++)
            {
                var tenant = Guid.CreateVersion7(now.AddDays(-days - 1).AddSeconds(i));
                ids.Add(tenant);
                id.Value = tenant.ToString();
                slug.Value = $"c-{i:D5}";
                name.Value = $"Console Bench {i:D5}";
                email.Value = $"admin@c-{i:D5}.test";
                at.Value = now.AddDays(-days - 1).AddSeconds(i).UtcDateTime.ToString("O", CultureInfo.InvariantCulture);
                await insert.ExecuteNonQueryAsync(ct);
            }
        }

        // A few latency shapes, so rows differ without a sketch made per row.
        var shapes = Enumerable.Range(0, 16).Select(k =>
        {
            var sketch = new LatencySketch();
            var random = new Random(k);
            for (var n = 0; n < 60; n++)
            {
                sketch.Add(2 + random.NextDouble() * (k + 1) * 10);
            }

            return sketch;
        }).ToArray();
        var shapeBytes = shapes.Select(s => s.ToBytes()).ToArray();
        var lastMinute = now.ToUnixTimeSeconds() / 60 - 1;
        var firstMinute = lastMinute - (long)days * 24 * 60;
        long rows = 0;
        await using (var minute = c.CreateCommand())
        await using (var hour = c.CreateCommand())
        {
            minute.Transaction = tx;
            minute.CommandText = "INSERT INTO health_minutes (tenant_id, minute, requests, status_4xx, status_5xx, throttled, latency) VALUES ($t, $m, $r, $s4, $s5, $th, $l)";
            var (t, m, r, s4, s5, th, l) = (minute.Parameters.Add("$t", SqliteType.Text), minute.Parameters.Add("$m", SqliteType.Integer), minute.Parameters.Add("$r", SqliteType.Integer),
                minute.Parameters.Add("$s4", SqliteType.Integer), minute.Parameters.Add("$s5", SqliteType.Integer), minute.Parameters.Add("$th", SqliteType.Integer), minute.Parameters.Add("$l", SqliteType.Blob));
            hour.Transaction = tx;
            hour.CommandText = "INSERT INTO health_hours (tenant_id, hour, requests, status_4xx, status_5xx, throttled, latency) VALUES ($t, $h, $r, $s4, $s5, $th, $l)";
            var (ht, hh, hr, hs4, hs5, hth, hl) = (hour.Parameters.Add("$t", SqliteType.Text), hour.Parameters.Add("$h", SqliteType.Integer), hour.Parameters.Add("$r", SqliteType.Integer),
                hour.Parameters.Add("$s4", SqliteType.Integer), hour.Parameters.Add("$s5", SqliteType.Integer), hour.Parameters.Add("$th", SqliteType.Integer), hour.Parameters.Add("$l", SqliteType.Blob));
            minute.Prepare();
            hour.Prepare();
            for (var k = 0; k < Math.Min(healthTenants, ids.Count); k++)
            {
                ct.ThrowIfCancellationRequested();
                var tenant = ids[k].ToString();
                t.Value = tenant;
                ht.Value = tenant;
                var random = new Random(k);
                long hourKey = -1, hourRequests = 0, h4 = 0, h5 = 0, hThrottled = 0;
                var hourSketch = new LatencySketch();
                for (var x = firstMinute; x <= lastMinute; x++)
                {
                    if (x / 60 != hourKey)
                    {
                        if (hourKey >= 0)
                        {
                            (hh.Value, hr.Value, hs4.Value, hs5.Value, hth.Value, hl.Value) = (hourKey, hourRequests, h4, h5, hThrottled, hourSketch.ToBytes());
                            await hour.ExecuteNonQueryAsync(ct);
                        }

                        (hourKey, hourRequests, h4, h5, hThrottled, hourSketch) = (x / 60, 0, 0, 0, 0, new LatencySketch());
                    }

                    var shape = random.Next(shapes.Length);
                    var requestsThisMinute = 60;
                    var errors4 = random.Next(4);
                    var errors5 = random.Next(20) == 0 ? random.Next(1, 6) : 0;
                    (m.Value, r.Value, s4.Value, s5.Value, th.Value, l.Value) = (x, requestsThisMinute, errors4, errors5, 0, shapeBytes[shape]);
                    await minute.ExecuteNonQueryAsync(ct);
                    rows++;
                    hourRequests += requestsThisMinute;
                    h4 += errors4;
                    h5 += errors5;
                    hourSketch.Merge(shapes[shape]);
                }

                (hh.Value, hr.Value, hs4.Value, hs5.Value, hth.Value, hl.Value) = (hourKey, hourRequests, h4, h5, hThrottled, hourSketch.ToBytes());
                await hour.ExecuteNonQueryAsync(ct);
            }
        }

        await tx.CommitAsync(ct);
        return rows;
    }

    private static int Int(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;
    }
}
