using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Npgsql;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Operations;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Tenants;
using Tenantry.Testing;
using Xunit.Abstractions;

namespace Tenantry.Host.Tests;

/// <summary>A private PostgreSQL server for the lease tests; each test makes its own database.</summary>
public sealed class LeasePostgres : IAsyncLifetime
{
    private int _databases;

    public PostgresServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await PostgresServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();

    public async Task<string> NewDatabaseAsync()
    {
        var name = $"leases_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}"[..30];
        await Server.ExecuteAsync($"CREATE DATABASE {name}");
        return Server.SuperuserConnectionStringFor(name);
    }
}

/// <summary>
/// Operation leases: a node that comes back after a crash takes its own leases back at once, and a
/// holder whose lease was taken over (a stale fencing token) can no longer commit a step.
/// </summary>
public sealed class OperationLeaseTests(LeasePostgres pg, ITestOutputHelper output) : IClassFixture<LeasePostgres>, IDisposable
{
    private const string OperatorSecret = "lease-tests-operator-secret-0123456";
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-lease-tests", Guid.NewGuid().ToString("N"));

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task A_stale_fencing_token_cannot_commit_a_step_or_finish_the_operation(string engine)
    {
        using var store = await OpenStoreAsync(engine);
        var db = store.Database;
        var op = await InsertOperationAsync(db);
        var t0 = DateTimeOffset.UtcNow;

        var first = await db.WriteAsync((c, tx) => OperationStore.AcquireAsync(c, tx, op, "node-a", t0, t0.AddSeconds(15)));
        Assert.NotNull(first);
        var held = await db.WriteAsync((c, tx) => OperationStore.AcquireAsync(c, tx, op, "node-b", t0.AddSeconds(1), t0.AddSeconds(16)));
        Assert.Null(held); // node-a's lease has not ended yet

        // node-a pauses past its lease; node-b takes the operation over.
        var second = await db.WriteAsync((c, tx) => OperationStore.AcquireAsync(c, tx, op, "node-b", t0.AddSeconds(20), t0.AddSeconds(35)));
        Assert.NotNull(second);
        Assert.True(second.Value.Token > first.Value.Token);

        Assert.False(await db.WriteAsync((c, tx) => OperationStore.FenceAsync(c, tx, first.Value, t0.AddSeconds(40))));
        Assert.False(await db.WriteAsync((c, tx) => OperationStore.FinishAsync(c, tx, first.Value, OperationStatus.Failed, "stale", t0.AddSeconds(21))));
        var afterStale = await db.ReadAsync(c => OperationStore.GetAsync(c, null, op));
        Assert.Equal(OperationStatus.Pending, afterStale!.Status);

        // The same node taking its own operation again also fences out its earlier run.
        var third = await db.WriteAsync((c, tx) => OperationStore.AcquireAsync(c, tx, op, "node-b", t0.AddSeconds(22), t0.AddSeconds(37)));
        Assert.NotNull(third);
        Assert.False(await db.WriteAsync((c, tx) => OperationStore.FenceAsync(c, tx, second.Value, t0.AddSeconds(40))));

        Assert.True(await db.WriteAsync((c, tx) => OperationStore.FenceAsync(c, tx, third.Value, t0.AddSeconds(40))));
        Assert.True(await db.WriteAsync((c, tx) => OperationStore.FinishAsync(c, tx, third.Value, OperationStatus.Succeeded, null, t0.AddSeconds(23))));
        var done = await db.ReadAsync(c => OperationStore.GetAsync(c, null, op));
        Assert.Equal(OperationStatus.Succeeded, done!.Status);
    }

    [Fact]
    public async Task A_sqlite_store_made_before_fencing_tokens_gets_the_column_and_leases_work()
    {
        Directory.CreateDirectory(_dataDir);
        var path = Path.Combine(_dataDir, "control.db");
        var before = System.Text.RegularExpressions.Regex.Replace(ControlPlaneSchema.Sqlite, @",\s*lease_token BIGINT NOT NULL DEFAULT 0", "");
        Assert.NotEqual(ControlPlaneSchema.Sqlite, before);
        using (var old = new SqliteDatabase(path, before))
        {
            Assert.Equal(0L, await old.ReadAsync(c => c.ScalarAsync("SELECT count(*) FROM pragma_table_info('operations') WHERE name = 'lease_token'", null)));
        }

        using var db = new SqliteDatabase(path, ControlPlaneSchema.Sqlite, ControlPlaneSchema.AddedColumns);
        var op = await InsertOperationAsync(db);
        var now = DateTimeOffset.UtcNow;
        var lease = await db.WriteAsync((c, tx) => OperationStore.AcquireAsync(c, tx, op, "node-a", now, now.AddSeconds(15)));
        Assert.Equal(1L, lease?.Token);
    }

    [Fact]
    public async Task A_node_killed_mid_onboarding_on_postgresql_takes_its_own_leases_back_at_restart()
    {
        var store = await pg.NewDatabaseAsync();
        var lines = new ConcurrentQueue<(int Start, string Line)>();
        var starts = 0;
        // A lease far longer than the test may wait: the operations finish only if the restarted node reclaims it.
        string[] arguments =
        [
            "--data-dir", _dataDir, "--operator-secret", OperatorSecret, "--Tenantry:ApplicationPlane:Enabled=false",
            $"--Tenantry:Store={store}", "--Tenantry:MasterKey=" + TenantryHostOptions.TestMasterKey, "--Tenantry:Operations:Lease=00:30:00", "--Tenantry:Operations:LeaseRenewal=00:01:00",
            "--Tenantry:Operations:MaxParallel=2",
        ];

        List<(Guid Id, string Owner, long Token)> held = [];
        var ids = new List<string>();
        for (var round = 0; round < 5 && held.Count == 0; round++)
        {
            var (host, client) = await StartAsync(arguments, ++starts, lines);
            using (host)
            using (client)
            {
                for (var i = 0; i < 10; i++)
                {
                    using var created = await client.CreateTenantAsync(new { name = $"Lease {round} {i}", slug = $"lease-{round}-{i}", tier = "standard", adminEmail = $"a@lease{i}.test" });
                    Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
                    ids.Add((await created.JsonAsync()).GetProperty("id").GetString()!);
                }

                for (var poll = 0; poll < 2_000 && await CountAsync(store, "SELECT count(*) FROM operations WHERE lease_owner IS NOT NULL") == 0; poll++)
                {
                }

                host.Kill();
            }

            held = await HeldLeasesAsync(store);
            output.WriteLine($"round {round}: {held.Count} leases held at the kill");
        }

        Assert.NotEmpty(held);
        var node = File.ReadAllText(Path.Combine(_dataDir, OperationNode.FileName)).Trim();
        Assert.All(held, h => Assert.Equal(node, h.Owner));

        var (again, againClient) = await StartAsync(arguments, ++starts, lines);
        using (again)
        using (againClient)
        {
            foreach (var id in ids)
            {
                await againClient.WaitForStatusAsync(id, "active", seconds: 60);
            }
        }

        var restartLines = lines.Where(l => l.Start == starts).Select(l => l.Line).ToList();
        Assert.Contains(restartLines, l => l.Contains($"Reclaimed {held.Count} operation leases held by node {node}", StringComparison.Ordinal));
        foreach (var (id, _, token) in held)
        {
            var now = await CountAsync(store, "SELECT lease_token FROM operations WHERE id = $1 AND status = 'succeeded' AND lease_owner IS NULL", id.ToString());
            Assert.True(now > token, $"operation {id}: token {now}, was {token} at the kill");
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static async Task<(TenantryHost Host, HttpClient Client)> StartAsync(string[] arguments, int start, ConcurrentQueue<(int, string)> lines)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = TenantryHost.FreePorts(1)[0];
            var host = TenantryHost.Start([.. arguments, "--port", port.ToString(CultureInfo.InvariantCulture)], l => lines.Enqueue((start, l)));
            var baseAddress = new Uri($"http://127.0.0.1:{port}");
            var failure = await host.WaitHealthyAsync(TimeSpan.FromSeconds(60), baseAddress);
            if (failure is null)
            {
                var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantryHost.OperatorTokenAsync(client, OperatorSecret));
                return (host, client);
            }

            host.Dispose();
            if (host.ExitCode != 4 || attempt >= 3)
            {
                Assert.Fail($"start {start}: {failure}\n{string.Join("\n", lines.TakeLast(30).Select(l => l.Item2))}");
            }
        }
    }

    private static async Task<long> CountAsync(string store, string sql, params string[] parameters)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var value in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return Convert.ToInt64(await command.ExecuteScalarAsync() ?? 0L, CultureInfo.InvariantCulture);
    }

    private static async Task<List<(Guid, string, long)>> HeldLeasesAsync(string store)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id, lease_owner, lease_token FROM operations WHERE lease_owner IS NOT NULL AND status IN ('pending', 'running')", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var held = new List<(Guid, string, long)>();
        while (await reader.ReadAsync())
        {
            held.Add((Guid.Parse(reader.GetString(0)), reader.GetString(1), reader.GetInt64(2)));
        }

        return held;
    }

    private async Task<Store> OpenStoreAsync(string engine)
    {
        if (engine == "sqlite")
        {
            Directory.CreateDirectory(_dataDir);
            return new Store(new SqliteDatabase(Path.Combine(_dataDir, "control.db"), ControlPlaneSchema.Sqlite));
        }

        return new Store(PostgresDatabase.Open(await pg.NewDatabaseAsync(), ControlPlaneSchema.Postgres));
    }

    private static async Task<Guid> InsertOperationAsync(IControlPlaneDatabase db)
    {
        var now = DateTimeOffset.UtcNow;
        var tenant = new Tenant
        {
            Id = Guid.CreateVersion7(),
            Slug = "fenced",
            Name = "Fenced",
            Tier = "basic",
            Isolation = IsolationModel.Pool,
            Status = TenantStatus.Provisioning,
            AdminEmail = "admin@fenced.test",
            Config = [],
            Resources = [],
            Version = 1,
            CreatedAt = now,
            UpdatedAt = now,
        };
        var op = new Operation
        {
            Id = Guid.CreateVersion7(),
            Kind = OperationKind.Onboard,
            TenantId = tenant.Id,
            Status = OperationStatus.Pending,
            Actor = "test",
            CreatedAt = now,
            Steps = [.. OperationDefinition.Onboard.Steps.Select((name, i) => new OperationStep { Ordinal = i, Name = name, Status = OperationStatus.Pending, Attempts = 0 })],
        };
        await db.WriteAsync(async (c, tx) =>
        {
            await TenantStore.InsertAsync(c, tx, tenant);
            await OperationStore.InsertAsync(c, tx, op);
        });
        return op.Id;
    }

    private sealed class Store(IControlPlaneDatabase database) : IDisposable
    {
        public IControlPlaneDatabase Database { get; } = database;

        public void Dispose() => (Database as IDisposable)?.Dispose();
    }
}
