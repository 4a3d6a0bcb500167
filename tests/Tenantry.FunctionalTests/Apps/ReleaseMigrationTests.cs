using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Tenantry.ControlPlane.AppMigrations;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Providers;
using Tenantry.Data;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Apps;

/// <summary>A registered app's migrations and seed on the embedded engine: the pool file, and a file per bridge and silo tenant.</summary>
public sealed class ReleaseMigrationTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    private const string Notes = "CREATE TABLE notes (tenant_id TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, id));";

    // Not idempotent: a second run fails ("duplicate column"), so a migration applied twice shows.
    private const string Pinned = "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;";

    private const string Jots = "CREATE TABLE jots (tenant_id TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant_id, id));";

    private const string Welcome = "INSERT INTO notes (tenant_id, id, body) VALUES (@tenant_id, 'welcome', 'Welcome aboard');";

    [Fact]
    public async Task An_apps_migrations_and_seed_reach_a_new_tenant_of_every_tier_once()
    {
        using var client = await factory.OperatorAsync();
        await RegisterAsync(client, "notes", "/notes", new { version = "1.0.0", migrations = new[] { Migration("001_notes", Notes), Migration("002_pinned", Pinned) }, seed = Welcome });

        var tenants = new List<TenantRef>();
        foreach (var (slug, tier) in new[] { ("note-pool-a", "basic"), ("note-pool-b", "basic"), ("note-bridge", "standard"), ("note-silo", "premium") })
        {
            var id = await client.CreateActiveTenantAsync(slug, tier);
            var apps = (await client.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("resources").GetProperty("database").GetProperty("apps");
            Assert.Equal("1.0.0", apps.GetProperty("notes").GetProperty("release").GetString());
            Assert.True(apps.GetProperty("notes").GetProperty("seeded").GetBoolean());
            tenants.Add(Ref(id, slug, tier));
        }

        foreach (var tenant in tenants)
        {
            Assert.Equal(new[] { (tenant.Id.ToString(), "welcome", 0L) }, await NotesAsync(tenant));
        }

        // The pool got the migrations once for both pool tenants; bridge and silo files each their own.
        var root = Path.Combine(factory.DataDir, "databases");
        Assert.Equal(["001_notes", "002_pinned"], await LedgerAsync(Path.Combine(root, "pool.db"), "notes"));
        Assert.Equal(["001_notes", "002_pinned"], await LedgerAsync(Path.Combine(root, "bridge", "note-bridge.db"), "notes"));
        Assert.Equal(["001_notes", "002_pinned"], await LedgerAsync(Path.Combine(root, "silo", "note-silo.db"), "notes"));

        // Again, as a retried onboarding step or a second applier would: nothing runs twice.
        var release = (await Registry().GetReleaseAsync("notes", "1.0.0"))!;
        foreach (var tenant in tenants)
        {
            var again = await Migrator().ApplyAsync(tenant, release);
            Assert.Equal((ReleaseMigrationOutcome.UpToDate, 2, 0), (again.Outcome, again.AlreadyApplied, again.Applied.Count));
            Assert.Equal(ReleaseSeedOutcome.AlreadySeeded, (await Migrator().SeedAsync(tenant, release)).Outcome);
            Assert.NotNull(await factory.Services.GetRequiredService<CurrentReleases>().ApplyToNewTenantAsync(tenant, CancellationToken.None));
            Assert.Single(await NotesAsync(tenant));
        }
    }

    [Fact]
    public async Task On_the_sqlite_pool_an_apps_tables_are_guarded_like_any_tenant_table()
    {
        using var client = await factory.OperatorAsync();
        await RegisterAsync(client, "shouts", "/shouts", new
        {
            version = "1.0.0",
            // An upper-case TENANT_ID is the same column to SQLite, so it is guarded all the same.
            migrations = new[] { Migration("001_shouts", "CREATE TABLE shouts (TENANT_ID TEXT NOT NULL, id TEXT NOT NULL, body TEXT, PRIMARY KEY (TENANT_ID, id));") },
        });
        var a = Ref(await client.CreateActiveTenantAsync("shout-a", "basic"), "shout-a", "basic");
        var b = Ref(await client.CreateActiveTenantAsync("shout-b", "basic"), "shout-b", "basic");
        var data = factory.Services.GetRequiredService<ITenantDataSource>();
        foreach (var tenant in new[] { a, b })
        {
            await using var session = await data.OpenSessionAsync((await ContextAsync(tenant))!);
            await session.ExecuteAsync("INSERT INTO shouts (id, body) VALUES ('1', @body)", [("@body", tenant.Slug)]);
            await session.CommitAsync();
        }

        await using (var session = await data.OpenSessionAsync((await ContextAsync(a))!))
        {
            Assert.Equal(["shout-a"], await session.QueryAsync("SELECT body FROM shouts", r => r.GetString(0)));
            Assert.Empty(await session.QueryAsync("SELECT body FROM shouts WHERE TENANT_ID = @b", r => r.GetString(0), [("@b", b.Id.ToString())]));
            await Assert.ThrowsAsync<SqliteException>(() => session.QueryAsync("SELECT body FROM main.shouts", r => r.GetString(0)));
            var refused = await Assert.ThrowsAsync<SqliteException>(() => session.ExecuteAsync("INSERT INTO shouts (TENANT_ID, id, body) VALUES (@b, '2', 'forged')", [("@b", b.Id.ToString())]));
            Assert.Contains("tenant policy", refused.Message, StringComparison.Ordinal);
            Assert.Equal(0, await session.ExecuteAsync("UPDATE shouts SET body = 'changed' WHERE TENANT_ID = @b", [("@b", b.Id.ToString())]));
        }

        await using (var session = await data.OpenSessionAsync((await ContextAsync(b))!))
        {
            Assert.Equal(["shout-b"], await session.QueryAsync("SELECT body FROM shouts", r => r.GetString(0)));
        }
    }

    [Fact]
    public async Task Broken_sql_is_refused_at_release_creation_with_the_databases_message_and_nothing_is_kept()
    {
        using var client = await factory.OperatorAsync();
        using (var created = await client.PostAsJsonAsync("/v1/apps", new { name = "broken", routePrefix = "/broken" }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var cases = new (object Release, string Type, string[] Says)[]
        {
            (new { version = "1.0.0", migrations = new[] { Migration("001_jots", Jots), Migration("002_bad", "INSERT INTO nowhere (tenant_id) VALUES ('x');") } },
                "migration-failed", ["'002_bad'", "no such table: nowhere", "SQLite"]),
            (new { version = "1.0.0", migrations = new[] { Migration("001_typo", "CREAT TABLE notes (tenant_id TEXT);") } },
                "migration-failed", ["'001_typo'", "syntax error"]),
            // The lexical check cannot see a virtual table; the catalog can.
            (new { version = "1.0.0", migrations = new[] { Migration("001_search", "CREATE VIRTUAL TABLE search USING fts5(body);") } },
                "pool-rules-violated", ["'001_search'", "search has no tenant_id"]),
            (new { version = "1.0.0", migrations = new[] { Migration("001_codes", "CREATE TABLE codes (tenant_id TEXT NOT NULL, code TEXT NOT NULL UNIQUE);") } },
                "pool-rules-violated", ["codes", "does not lead with tenant_id"]),
            (new { version = "1.0.0", migrations = new[] { Migration("001_serial", "CREATE TABLE serials (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL);") } },
                "pool-rules-violated", ["INTEGER PRIMARY KEY id"]),
            (new { version = "1.0.0", migrations = new[] { Migration("001_jots", Jots) }, seed = "INSERT INTO jots (tenant_id, id) VALUES (@tenant_id, 'no body');" },
                "seed-failed", ["NOT NULL constraint failed"]),
            // Through the guard, as a pool tenant: a seed cannot write another tenant's rows or change the schema.
            (new { version = "1.0.0", migrations = new[] { Migration("001_jots", Jots) }, seed = "INSERT INTO jots (tenant_id, id, body) VALUES ('someone-else', 'x', 'y');" },
                "seed-failed", ["tenant policy"]),
            (new { version = "1.0.0", migrations = new[] { Migration("001_jots", Jots) }, seed = "DROP TABLE jots;" },
                "seed-failed", ["not authorized"]),
            (new { version = "1.0.0", migrations = new[] { Migration("001_jots", Jots + "\nCOMMIT;") } },
                "transaction-control", ["'001_jots'", "COMMIT"]),
        };
        foreach (var (release, type, says) in cases)
        {
            using var response = await client.PostAsJsonAsync("/v1/apps/broken/releases", Merge(release));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.UnprocessableEntity, $"{type}: {(int)response.StatusCode} {text}");
            var problem = JsonDocument.Parse(text).RootElement;
            Assert.Equal("https://tenantry.dev/problems/" + type, problem.GetProperty("type").GetString());
            foreach (var said in says)
            {
                Assert.Contains(said, problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            }
        }

        Assert.Empty((await client.GetJsonAsync("/v1/apps/broken/releases")).GetProperty("items").EnumerateArray());
        var scratch = Path.Combine(factory.DataDir, "databases", "scratch");
        Assert.True(!Directory.Exists(scratch) || !Directory.EnumerateFileSystemEntries(scratch).Any(), "scratch files were left behind");

        // A trigger's END and a string's COMMIT are not transaction control; the release is taken.
        using var fine = await client.PostAsJsonAsync("/v1/apps/broken/releases", Merge(new
        {
            version = "1.0.0",
            migrations = new[]
            {
                Migration("001_jots", Jots),
                Migration("002_trigger", "CREATE TRIGGER jots_trim AFTER INSERT ON jots BEGIN UPDATE jots SET body = trim(body) WHERE tenant_id = NEW.tenant_id AND id = NEW.id; END;\n-- COMMIT\nSELECT 'COMMIT';"),
            },
        }));
        Assert.True(fine.StatusCode == HttpStatusCode.Created, await fine.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_failing_tenant_is_reported_with_its_reason_and_the_others_are_migrated()
    {
        using var client = await factory.OperatorAsync();
        var pool = Ref(await client.CreateActiveTenantAsync("fan-pool", "basic"), "fan-pool", "basic");
        var clash = Ref(await client.CreateActiveTenantAsync("fan-clash", "standard"), "fan-clash", "standard");
        var silo = Ref(await client.CreateActiveTenantAsync("fan-silo", "premium"), "fan-silo", "premium");

        // Someone made a table by hand in one tenant's file; the release's first migration collides with it there only.
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(factory.DataDir, "databases", "bridge", "fan-clash.db")}"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE tallies (x TEXT)";
            await command.ExecuteNonQueryAsync();
        }

        var release = Release("tallies", "1.0.0", ("001_tallies", "CREATE TABLE tallies (tenant_id TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tenant_id));"), ("002_more", "ALTER TABLE tallies ADD COLUMN m INTEGER;"));
        var reported = new System.Collections.Concurrent.ConcurrentBag<ReleaseMigrationResult>();
        var results = await Migrator().ApplyAsync([pool, clash, silo], release, parallelism: 2, (r, _) => { reported.Add(r); return Task.CompletedTask; });

        Assert.Equal([pool.Id, clash.Id, silo.Id], results.Select(r => r.TenantId));
        Assert.Equal(3, reported.Count);
        Assert.Equal((ReleaseMigrationOutcome.Applied, "pool"), (results[0].Outcome, results[0].Target));
        Assert.Equal(ReleaseMigrationOutcome.Applied, results[2].Outcome);
        var failed = results[1];
        Assert.Equal((ReleaseMigrationOutcome.Failed, "001_tallies", false), (failed.Outcome, failed.FailedMigration, failed.Retryable));
        Assert.Contains("table tallies already exists", failed.Error, StringComparison.Ordinal);
        Assert.Contains("Migration '001_tallies' failed", failed.Error, StringComparison.Ordinal);
        Assert.Empty(failed.Applied);

        // It stopped there: the next migration was not tried, and the ledger shows nothing of the release.
        Assert.Empty(await LedgerAsync(Path.Combine(factory.DataDir, "databases", "bridge", "fan-clash.db"), "tallies"));
        Assert.Equal(["001_tallies", "002_more"], await LedgerAsync(Path.Combine(factory.DataDir, "databases", "silo", "fan-silo.db"), "tallies"));
    }

    [Fact]
    public async Task A_migration_that_changed_after_it_ran_is_refused_and_never_runs_again()
    {
        using var client = await factory.OperatorAsync();
        var tenant = Ref(await client.CreateActiveTenantAsync("changed-one", "standard"), "changed-one", "standard");
        var first = Release("drift", "1.0.0", ("001_drift", "CREATE TABLE drift (tenant_id TEXT NOT NULL, a TEXT, PRIMARY KEY (tenant_id));"));
        Assert.Equal(ReleaseMigrationOutcome.Applied, (await Migrator().ApplyAsync(tenant, first)).Outcome);

        var edited = Release("drift", "1.1.0", ("001_drift", "CREATE TABLE drift (tenant_id TEXT NOT NULL, a TEXT, b TEXT, PRIMARY KEY (tenant_id));"), ("002_next", "ALTER TABLE drift ADD COLUMN c TEXT;"));
        var result = await Migrator().ApplyAsync(tenant, edited);
        Assert.Equal((ReleaseMigrationOutcome.Failed, "001_drift"), (result.Outcome, result.FailedMigration));
        Assert.Contains("was applied with checksum", result.Error, StringComparison.Ordinal);
        Assert.Equal(["001_drift"], await LedgerAsync(Path.Combine(factory.DataDir, "databases", "bridge", "changed-one.db"), "drift"));
    }

    [Fact]
    public async Task Concurrent_appliers_apply_each_migration_once()
    {
        using var client = await factory.OperatorAsync();
        var tenants = new[]
        {
            Ref(await client.CreateActiveTenantAsync("race-pool", "basic"), "race-pool", "basic"),
            Ref(await client.CreateActiveTenantAsync("race-bridge", "standard"), "race-bridge", "standard"),
        };
        var release = Release("racing", "1.0.0",
            ("001_racing", "CREATE TABLE racing (tenant_id TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tenant_id, id));"),
            ("002_lap", "ALTER TABLE racing ADD COLUMN lap INTEGER;"),
            ("003_time", "ALTER TABLE racing ADD COLUMN time_ms INTEGER;"));
        foreach (var tenant in tenants)
        {
            var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => Migrator().ApplyAsync(tenant, release))));
            Assert.All(results, r => Assert.True(r.Succeeded, r.Error));
            Assert.Equal(3, results.Sum(r => r.Applied.Count));
            Assert.All(results, r => Assert.Equal(3, r.Applied.Count + r.AlreadyApplied));
        }
    }

    [Fact]
    public async Task Fleet_migrations_bring_a_new_apps_current_release_to_existing_tenants()
    {
        using var client = await factory.OperatorAsync();
        var bridge = Ref(await client.CreateActiveTenantAsync("late-bridge", "standard"), "late-bridge", "standard");
        var pool = Ref(await client.CreateActiveTenantAsync("late-pool", "basic"), "late-pool", "basic");
        await RegisterAsync(client, "late", "/late", new { version = "1.0.0", migrations = new[] { Migration("001_late", "CREATE TABLE late_items (tenant_id TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tenant_id, id));") } });

        var report = await client.RunFleetMigrationAsync();
        Assert.True(report.GetProperty("succeeded").GetBoolean(), report.ToString());
        Assert.Equal("fleet-migration", report.GetProperty("kind").GetString());
        var progress = report.GetProperty("progress");
        Assert.Equal(progress.GetProperty("total").GetInt32(), progress.GetProperty("done").GetInt32());
        Assert.Equal(0, progress.GetProperty("failed").GetInt32());
        var byTenant = report.GetProperty("tenants").EnumerateArray().Where(t => t.GetProperty("slug").ValueKind == JsonValueKind.String)
            .ToDictionary(t => t.GetProperty("slug").GetString()!, t => t.GetProperty("apps").EnumerateArray().Single(a => a.GetProperty("app").GetString() == "late"));
        Assert.Equal("1.0.0", byTenant["late-bridge"].GetProperty("release").GetString());
        Assert.Equal(("applied", "late-bridge"), (byTenant["late-bridge"].GetProperty("outcome").GetString(), byTenant["late-bridge"].GetProperty("target").GetString()));
        Assert.Equal("pool", byTenant["late-pool"].GetProperty("target").GetString());
        Assert.Equal(["001_late"], await LedgerAsync(Path.Combine(factory.DataDir, "databases", "bridge", "late-bridge.db"), "late"));
        Assert.Equal(["001_late"], await LedgerAsync(Path.Combine(factory.DataDir, "databases", "pool.db"), "late"));

        // Run again: nothing left to apply anywhere.
        var second = await client.RunFleetMigrationAsync();
        Assert.All(
            second.GetProperty("tenants").EnumerateArray().Where(t => t.GetProperty("slug").ValueKind == JsonValueKind.String),
            t => Assert.Equal("up-to-date", t.GetProperty("apps").EnumerateArray().Single(a => a.GetProperty("app").GetString() == "late").GetProperty("outcome").GetString()));
        Assert.Equal(ReleaseMigrationOutcome.UpToDate, (await Migrator().ApplyAsync(pool, (await Registry().GetReleaseAsync("late", "1.0.0"))!)).Outcome);
        Assert.Equal(ReleaseMigrationOutcome.UpToDate, (await Migrator().ApplyAsync(bridge, (await Registry().GetReleaseAsync("late", "1.0.0"))!)).Outcome);
    }

    private IReleaseMigrator Migrator() => factory.Services.GetRequiredService<IReleaseMigrator>();

    private IAppRegistry Registry() => factory.Services.GetRequiredService<IAppRegistry>();

    private async Task<TenantDataContext?> ContextAsync(TenantRef tenant) =>
        await factory.Services.GetRequiredService<ITenantDatabaseProvider>().ConnectAsync(tenant, CancellationToken.None);

    private async Task<List<(string Tenant, string Id, long Pinned)>> NotesAsync(TenantRef tenant)
    {
        var data = factory.Services.GetRequiredService<ITenantDataSource>();
        await using var session = await data.OpenReadSessionAsync((await ContextAsync(tenant))!);
        return await session.QueryAsync("SELECT tenant_id, id, pinned FROM notes", r => (r.GetString(0), r.GetString(1), r.GetInt64(2)));
    }

    private static async Task<List<string>> LedgerAsync(string file, string app)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id FROM tenantry_app_migrations WHERE app = @app ORDER BY id";
        command.Parameters.AddWithValue("@app", app);
        var ids = new List<string>();
        try
        {
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                ids.Add(reader.GetString(0));
            }
        }
        catch (SqliteException e) when (e.Message.Contains("no such table", StringComparison.Ordinal))
        {
        }

        return ids;
    }

    private static TenantRef Ref(string id, string slug, string tier) => new(
        Guid.Parse(id), slug, slug, tier, tier switch { "basic" => IsolationModel.Pool, "standard" => IsolationModel.Bridge, _ => IsolationModel.Silo }, $"admin@{slug}.test");

    private static AppRelease Release(string app, string version, params (string Id, string Sql)[] migrations) => new()
    {
        App = app,
        Version = version,
        Process = new ReleaseProcess("/bin/sh", [], null, new Dictionary<string, string>()),
        Migrations = [.. migrations.Select(m => new ReleaseMigration(m.Id, m.Sql, ReleaseMigrations.Checksum(m.Sql)))],
        CreatedBy = "test",
        CreatedAt = DateTimeOffset.UtcNow,
    };

    private static object Migration(string id, string sql) => new { id, sql };

    /// <summary>A release body: the given fields plus a process that exists.</summary>
    private static Dictionary<string, object?> Merge(object release)
    {
        var body = JsonSerializer.Deserialize<Dictionary<string, object?>>(JsonSerializer.Serialize(release))!;
        body["process"] = new { command = "/bin/sh", args = new[] { "-c", "exit 0" } };
        return body;
    }

    private static async Task RegisterAsync(HttpClient client, string name, string prefix, object release)
    {
        using (var app = await client.PostAsJsonAsync("/v1/apps", new { name, routePrefix = prefix }))
        {
            Assert.Equal(HttpStatusCode.Created, app.StatusCode);
        }

        using var created = await client.PostAsJsonAsync($"/v1/apps/{name}/releases", Merge(release));
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
    }
}
