using Microsoft.Data.Sqlite;
using Tenantry.Data.Migrations;
using Tenantry.Data.Sqlite;

namespace Tenantry.Data.Tests;

/// <summary>Tries to break the embedded default: the shared pool file behind its guard, and files per tenant.</summary>
public sealed class SqliteIsolationTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-data-tests", Guid.NewGuid().ToString("N"));
    private readonly Guid _a = Guid.CreateVersion7();
    private readonly Guid _b = Guid.CreateVersion7();
    private readonly ITenantDataSource _data = TenantDataSource.Create();

    private string PoolFile => Path.Combine(_dir, "databases", "pool.db");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "databases", "silo"));
        // The pool file as the embedded control plane makes it, with its tenants table.
        await using (var connection = new SqliteConnection($"Data Source={PoolFile};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = """
                PRAGMA journal_mode=WAL;
                CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
                INSERT INTO tenants VALUES (@a, 'alpha', '2025-01-01'), (@b, 'bravo', '2025-01-01');
                """;
            command.Parameters.AddWithValue("@a", _a.ToString());
            command.Parameters.AddWithValue("@b", _b.ToString());
            await command.ExecuteNonQueryAsync();
        }

        foreach (var slug in new[] { "charlie", "delta" })
        {
            await using var connection = new SqliteConnection($"Data Source={SiloFile(slug)};Pooling=False");
            await connection.OpenAsync();
        }

        var report = await new TenantMigrationRunner(TestSchema.Orders).RunAsync(
        [
            MigrationTarget.SqlitePool(PoolFile),
            MigrationTarget.SqliteDedicated("charlie", IsolationModel.Silo, SiloFile("charlie")),
            MigrationTarget.SqliteDedicated("delta", IsolationModel.Silo, SiloFile("delta")),
        ]);
        Assert.True(report.Succeeded, string.Join("; ", report.Failed.Select(f => f.Error)));

        foreach (var tenant in new[] { _a, _b })
        {
            await using var session = await _data.OpenSessionAsync(Pool(tenant));
            Assert.Equal(1, await session.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES (@id, @n, 5)", [("@id", Guid.CreateVersion7()), ("@n", "N-1")]));
            await session.CommitAsync();
        }
    }

    public async Task DisposeAsync()
    {
        await _data.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_read_session_reads_beside_an_open_write_and_sees_only_its_tenants_committed_rows()
    {
        // Tenant A holds the pool's write lock (uncommitted insert); B reads at the same time.
        await using var writer = await _data.OpenSessionAsync(Pool(_a));
        Assert.Equal(1, await writer.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES (@id, 'N-2', 7)", [("@id", Guid.CreateVersion7())]));

        // An immediate transaction would wait for the lock (up to its 30 s timeout); a read session takes none.
        using var soon = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using (var reader = await _data.OpenReadSessionAsync(Pool(_b), soon.Token))
        {
            var numbers = await reader.QueryAsync("SELECT number FROM orders", r => r.GetString(0), cancellationToken: soon.Token);
            Assert.Equal(["N-1"], numbers);
        }

        // A's own read session does not see its uncommitted row either (snapshot before the commit).
        await using (var own = await _data.OpenReadSessionAsync(Pool(_a), soon.Token))
        {
            Assert.Single(await own.QueryAsync("SELECT number FROM orders", r => r.GetString(0), cancellationToken: soon.Token));
        }

        await writer.CommitAsync();
    }

    private string SiloFile(string slug) => Path.Combine(_dir, "databases", "silo", slug + ".db");

    private TenantDataContext Pool(Guid id) => new()
    {
        TenantId = id,
        Slug = id == _a ? "alpha" : "bravo",
        Isolation = IsolationModel.Pool,
        Target = new SqlitePoolTarget(PoolFile),
    };

    private TenantDataContext Silo(string slug) => new()
    {
        TenantId = Guid.CreateVersion7(),
        Slug = slug,
        Isolation = IsolationModel.Silo,
        Target = SqliteFileTarget.ForEmbedded(_dir, IsolationModel.Silo, slug),
    };

    [Fact]
    public async Task A_pool_tenant_sees_and_changes_only_its_own_rows()
    {
        await using (var a = await _data.OpenSessionAsync(Pool(_a)))
        {
            Assert.Equal([_a.ToString()], await a.QueryAsync("SELECT tenant_id FROM orders", r => r.GetString(0)));
            Assert.Equal(0L, await a.ScalarAsync("SELECT count(*) FROM orders WHERE tenant_id = @b", [("@b", _b)]));
            Assert.Equal([_a.ToString()], await a.QueryAsync("SELECT tenant_id FROM tenants", r => r.GetString(0)));
            Assert.Equal(1, await a.ExecuteAsync("UPDATE orders SET amount = 7"));
            Assert.Equal(0, await a.ExecuteAsync("UPDATE orders SET amount = 0 WHERE tenant_id = @b", [("@b", _b)]));
            Assert.Equal(0, await a.ExecuteAsync("DELETE FROM orders WHERE tenant_id = @b", [("@b", _b)]));
            await a.CommitAsync();
        }

        await using (var a = await _data.OpenSessionAsync(Pool(_a)))
        {
            var planted = await Assert.ThrowsAsync<SqliteException>(() => a.ExecuteAsync(
                "INSERT INTO orders (tenant_id, id, number, amount) VALUES (@b, @id, 'planted', 1)", [("@b", _b), ("@id", Guid.CreateVersion7())]));
            Assert.Contains("tenant policy", planted.Message, StringComparison.Ordinal);
            var moved = await Assert.ThrowsAsync<SqliteException>(() => a.ExecuteAsync("UPDATE orders SET tenant_id = @b", [("@b", _b)]));
            Assert.Contains("tenant policy", moved.Message, StringComparison.Ordinal);
        }

        await using (var b = await _data.OpenSessionAsync(Pool(_b)))
        {
            Assert.Equal([5.0], await b.QueryAsync("SELECT amount FROM orders", r => r.GetDouble(0)));
        }
    }

    [Theory]
    [InlineData("SELECT count(*) FROM main.orders")]
    [InlineData("WITH o AS (SELECT * FROM main.orders) SELECT count(*) FROM o")]
    [InlineData("SELECT count(*) FROM (SELECT tenant_id FROM main.orders)")]
    [InlineData("DELETE FROM main.orders")]
    [InlineData("UPDATE main.orders SET amount = 0")]
    [InlineData("INSERT INTO main.orders (tenant_id, id, number, amount) VALUES ('x', 'y', 'z', 1)")]
    [InlineData("INSERT INTO schema_migrations VALUES (99, 'x', 'y')")]
    [InlineData("CREATE TEMP VIEW peek AS SELECT * FROM main.orders")]
    [InlineData("CREATE TEMP TRIGGER t AFTER INSERT ON main.orders BEGIN SELECT 1; END")]
    [InlineData("DROP VIEW orders")]
    [InlineData("ALTER TABLE main.orders RENAME TO o2")]
    [InlineData("PRAGMA writable_schema = ON")]
    [InlineData("ATTACH DATABASE 'other.db' AS other")]
    [InlineData("CREATE TABLE main.mine (id)")]
    public async Task A_pool_tenant_cannot_go_around_the_guard(string sql)
    {
        await using var a = await _data.OpenSessionAsync(Pool(_a));
        var error = await Assert.ThrowsAsync<SqliteException>(() => a.ExecuteAsync(sql));
        Assert.Equal(23, error.SqliteErrorCode); // SQLITE_AUTH
    }

    [Fact]
    public async Task Without_a_tenant_the_pool_shows_nothing_and_refuses_inserts()
    {
        await using var connection = new SqliteConnection($"Data Source={PoolFile};Pooling=False");
        await connection.OpenAsync();
        SqliteTenantGuard.InstallPool(connection, tenantId: null);
        await using var count = connection.CreateCommand();
        count.CommandText = "SELECT count(*) FROM orders";
        Assert.Equal(0L, await count.ExecuteScalarAsync());
        await using var insert = connection.CreateCommand();
        insert.CommandText = "INSERT INTO orders (id, number, amount) VALUES ('x', 'y', 1)";
        await Assert.ThrowsAsync<SqliteException>(() => insert.ExecuteNonQueryAsync());
    }

    [Fact]
    public async Task A_reused_pool_connection_shows_each_session_only_its_own_tenant()
    {
        DbConnectionHolder first;
        await using (var a = await _data.OpenReadSessionAsync(Pool(_a)))
        {
            first = new(await a.GetScopedConnectionAsync());
            Assert.Equal([_a.ToString()], await a.QueryAsync("SELECT tenant_id FROM orders", r => r.GetString(0)));
        }

        // The next session, another tenant's, gets the same connection back, with its tenant set.
        await using (var b = await _data.OpenReadSessionAsync(Pool(_b)))
        {
            Assert.Same(first.Connection, await b.GetScopedConnectionAsync());
            Assert.Equal([_b.ToString()], await b.QueryAsync("SELECT tenant_id FROM orders", r => r.GetString(0)));

            // Whatever a session does to the connection's tenant function lasts only as long as it does.
            var scoped = (SqliteConnection)await b.GetScopedConnectionAsync();
            scoped.CreateFunction(SqliteTenantGuard.TenantFunction, () => _a.ToString(), isDeterministic: true);
        }

        await using (var b = await _data.OpenReadSessionAsync(Pool(_b)))
        {
            Assert.Same(first.Connection, await b.GetScopedConnectionAsync());
            Assert.Equal([_b.ToString()], await b.QueryAsync("SELECT tenant_id FROM orders", r => r.GetString(0)));
        }
    }

    [Fact]
    public async Task A_tenant_table_added_after_a_connection_was_pooled_is_guarded_too()
    {
        await using (var a = await _data.OpenSessionAsync(Pool(_a)))
        {
            Assert.Single(await a.QueryAsync("SELECT id FROM orders", r => r.GetString(0)));
        }

        // A migration adds a tenant table (the pooled connection's views predate it).
        await using (var connection = new SqliteConnection($"Data Source={PoolFile};Pooling=False"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = """
                CREATE TABLE notes (tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, body TEXT NOT NULL);
                INSERT INTO notes VALUES (@a, 'n-a', 'alpha note'), (@b, 'n-b', 'bravo note');
                """;
            command.Parameters.AddWithValue("@a", _a.ToString());
            command.Parameters.AddWithValue("@b", _b.ToString());
            await command.ExecuteNonQueryAsync();
        }

        await using (var a = await _data.OpenSessionAsync(Pool(_a)))
        {
            Assert.Equal(["alpha note"], await a.QueryAsync("SELECT body FROM notes", r => r.GetString(0)));
            var direct = await Assert.ThrowsAsync<SqliteException>(() => a.ScalarAsync("SELECT count(*) FROM main.notes"));
            Assert.Equal(23, direct.SqliteErrorCode);
        }
    }

    private sealed record DbConnectionHolder(System.Data.Common.DbConnection Connection);

    [Fact]
    public async Task The_same_natural_key_in_two_pool_tenants_is_allowed_and_conflicts_reveal_nothing()
    {
        // Both tenants already hold N-1. A duplicate within one tenant fails without naming the other.
        await using var a = await _data.OpenSessionAsync(Pool(_a));
        var error = await Assert.ThrowsAsync<SqliteException>(() =>
            a.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES (@id, 'N-1', 1)", [("@id", Guid.CreateVersion7())]));
        Assert.Equal(19, error.SqliteErrorCode); // SQLITE_CONSTRAINT
        Assert.DoesNotContain(_b.ToString(), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Silo_files_hold_one_tenant_and_cannot_attach_another()
    {
        await using (var c = await _data.OpenSessionAsync(Silo("charlie")))
        {
            await c.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES ('1', 'C-1', 1)");
            await c.CommitAsync();
        }

        await using (var c = await _data.OpenSessionAsync(Silo("charlie")))
        {
            Assert.Equal(1L, await c.ScalarAsync("SELECT count(*) FROM orders"));
            var error = await Assert.ThrowsAsync<SqliteException>(() => c.ExecuteAsync("ATTACH DATABASE @f AS other", [("@f", SiloFile("delta"))]));
            Assert.Equal(23, error.SqliteErrorCode);
        }

        await using var d = await _data.OpenSessionAsync(Silo("delta"));
        Assert.Equal(0L, await d.ScalarAsync("SELECT count(*) FROM orders"));
    }

    [Fact]
    public async Task Sqlite_migrations_rerun_apply_nothing()
    {
        var report = await new TenantMigrationRunner(TestSchema.Orders).RunAsync(
            [MigrationTarget.SqlitePool(PoolFile), MigrationTarget.SqliteDedicated("charlie", IsolationModel.Silo, SiloFile("charlie"))]);
        Assert.True(report.Succeeded);
        Assert.Equal(0, report.AppliedCount);
        Assert.All(report.Targets, t => Assert.Equal(3, t.AlreadyApplied));
    }

    [Fact]
    public async Task A_database_migrated_with_another_schema_is_reported_not_skipped()
    {
        var other = new TenantSchema("other-app",
        [
            new TenantMigration(1, "something else", new CreateTable(new TableDefinition("things", [new ColumnDefinition("id", ColumnType.Uuid)], ["id"]))),
        ]);

        var report = await new TenantMigrationRunner(other).RunAsync([MigrationTarget.SqliteDedicated("charlie", IsolationModel.Silo, SiloFile("charlie"))]);

        var result = Assert.Single(report.Targets);
        Assert.False(result.Succeeded);
        Assert.Equal(1, result.FailedVersion);
        Assert.Contains("applied as 'create orders'", result.Error, StringComparison.Ordinal);
    }
}
