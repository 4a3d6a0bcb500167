using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Npgsql;
using Tenantry.Testing;
using Xunit.Abstractions;
using static Tenantry.Host.Tests.StoreQueries;

namespace Tenantry.Host.Tests;

/// <summary>
/// Two control-plane replicas on one PostgreSQL store: a replica stopped gracefully (SIGTERM) frees its operation
/// leases, so the other takes its operations over at once rather than when the leases end; and a long-poll of an
/// operation on one replica answers when another replica finishes it (a NOTIFY on the store).
/// </summary>
public sealed class ReplicaHandoverTests(LeasePostgres pg, ITestOutputHelper output) : IClassFixture<LeasePostgres>, IDisposable
{
    private const string OperatorSecret = "handover-tests-operator-secret-0123";
    private const string MasterKey = "handover-tests-master-key-0123456789abcdef";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "tenantry-handover-tests", Guid.NewGuid().ToString("N"));
    private readonly ConcurrentQueue<string> _lines = new();

    [Fact]
    public async Task A_replica_stopped_gracefully_frees_its_leases_for_the_other_and_long_polls_wake_on_the_other_replicas_commit()
    {
        var store = await pg.NewDatabaseAsync();
        var issuer = $"http://127.0.0.1:{TenantryHost.FreePorts(1)[0]}/";
        var (b, bClient) = await StartAsync("b", store, issuer);
        using var bHost = b;
        using var bApi = bClient;

        // Every notification the replicas send on the operations channel.
        var notified = new ConcurrentQueue<string>();
        await using var listen = new NpgsqlConnection(store);
        await listen.OpenAsync();
        listen.Notification += (_, e) => notified.Enqueue(e.Payload);
        await using (var command = new NpgsqlCommand("LISTEN tenantry_operations", listen))
        {
            await command.ExecuteNonQueryAsync();
        }

        using var listening = new CancellationTokenSource();
        var pump = PumpAsync(listen, listening.Token);

        // A takes operations and is stopped with SIGTERM while it holds some. Leases last 30 minutes: only
        // A freeing them lets B finish its operations while the test runs.
        var ids = new List<string>();
        var released = 0;
        for (var round = 0; round < 5 && released == 0; round++)
        {
            var (a, aClient) = await StartAsync("a", store, issuer);
            using (a)
            using (aClient)
            {
                for (var i = 0; i < 10; i++)
                {
                    using var created = await aClient.CreateTenantAsync(new { name = $"Handover {round} {i}", slug = $"handover-{round}-{i}", tier = "standard", adminEmail = $"a@handover{i}.test" });
                    Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
                    ids.Add((await created.JsonAsync()).GetProperty("id").GetString()!);
                }

                for (var poll = 0; poll < 2_000 && await CountAsync(store, "SELECT count(*) FROM operations WHERE lease_owner = 'handover-a'") == 0; poll++)
                {
                }

                var code = a.Terminate(TimeSpan.FromSeconds(90));
                Assert.True(code == 0, $"A exited with {code}\n{Tail()}");
            }

            released = _lines.Where(l => l.StartsWith("a: ", StringComparison.Ordinal) && l.Contains("operation leases held by node handover-a at shutdown", StringComparison.Ordinal)).Count();
            output.WriteLine($"round {round}: A released leases {released} time(s)");
        }

        Assert.True(released > 0, $"A never held a lease when stopped\n{Tail()}");
        Assert.Equal(0L, await CountAsync(store, "SELECT count(*) FROM operations WHERE lease_owner = 'handover-a'"));
        Assert.Contains("released", notified);
        foreach (var id in ids)
        {
            await bApi.WaitForStatusAsync(id, "active", seconds: 120);
        }

        // Every step of every onboarding succeeded, whichever replica ran it, and no lease is left.
        Assert.Equal(0L, await CountAsync(store, "SELECT count(*) FROM operation_steps WHERE status <> 'succeeded'"));
        Assert.Equal(0L, await CountAsync(store, "SELECT count(*) FROM operations WHERE lease_owner IS NOT NULL"));

        // A long-poll on A answers when B finishes the operation: B's commit notifies A.
        var (again, againClient) = await StartAsync("a", store, issuer);
        using (again)
        using (againClient)
        {
            using var created = await bApi.CreateTenantAsync(new { name = "Handover Poll", slug = "handover-poll", tier = "standard", adminEmail = "a@handover-poll.test" });
            Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
            var tenant = (await created.JsonAsync()).GetProperty("id").GetString()!;
            var operation = await TextAsync(store, "SELECT id FROM operations WHERE tenant_id = $1", tenant);
            var polled = await againClient.GetJsonAsync($"/v1/operations/{operation}?wait=30");
            Assert.Equal("succeeded", polled.GetProperty("status").GetString());
            for (var i = 0; i < 100 && !notified.Contains("finished:" + operation); i++)
            {
                await Task.Delay(100);
            }

            Assert.Contains("finished:" + operation, notified);
        }

        await listening.CancelAsync();
        await pump;
    }

    [Fact]
    public async Task A_replica_paused_past_its_lease_commits_nothing_after_the_other_took_its_operations_over()
    {
        var store = await pg.NewDatabaseAsync();
        var issuer = $"http://127.0.0.1:{TenantryHost.FreePorts(1)[0]}/";
        var (b, bClient) = await StartAsync("b", store, issuer, "00:00:06", "00:00:02", "fence");
        using var bHost = b;
        using var bApi = bClient;
        var (a, aClient) = await StartAsync("a", store, issuer, "00:00:06", "00:00:02", "fence");
        using var aHost = a;
        using var aApi = aClient;

        var ids = new List<string>();
        List<(string Id, long Token)> held = [];
        for (var round = 0; round < 5 && held.Count == 0; round++)
        {
            for (var i = 0; i < 10; i++)
            {
                using var created = await aApi.CreateTenantAsync(new { name = $"Fence {round} {i}", slug = $"fence-{round}-{i}", tier = "standard", adminEmail = $"a@fence{i}.test" });
                Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
                ids.Add((await created.JsonAsync()).GetProperty("id").GetString()!);
            }

            for (var poll = 0; poll < 2_000 && held.Count == 0; poll++)
            {
                held = await HeldAsync(store, "fence-a");
            }

            if (held.Count > 0)
            {
                a.Pause();
            }
        }

        Assert.NotEmpty(held);

        // What A still held when it stopped (it may have finished some of those read before the pause).
        held = await HeldAsync(store, "fence-a");
        output.WriteLine($"A paused holding {held.Count} operations");
        try
        {
            // B takes A's operations over once A's leases end, and finishes every onboarding.
            foreach (var id in ids)
            {
                await bApi.WaitForStatusAsync(id, "active", seconds: 120);
            }
        }
        finally
        {
            a.Resume();
        }

        var resumedAt = _lines.Count;
        foreach (var (id, token) in held)
        {
            Assert.True(await CountAsync(store, $"SELECT lease_token FROM operations WHERE id = '{id}' AND status = 'succeeded'") > token, $"operation {id} was not taken over\n{Tail()}");
        }

        // A wakes up, finds its leases taken (a higher fencing token), or itself declared dead as a node (its leases freed by
        // the survivor that took it over), and drops the operations.
        static bool Fenced(string l) => l.StartsWith("a: ", StringComparison.Ordinal)
            && (l.Contains("another node took it over", StringComparison.Ordinal) || l.Contains("Node fence-a was declared dead", StringComparison.Ordinal));
        for (var i = 0; i < 600 && !_lines.Skip(resumedAt).Any(Fenced); i++)
        {
            await Task.Delay(100);
        }

        Assert.Contains(_lines.Skip(resumedAt), Fenced);
        using (var again = await aApi.GetAsync(new Uri("/healthz", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        // Each tenant made once, each onboarding ended once, and A recorded no end of an operation it had lost.
        Assert.Equal(ids.Count, await CountAsync(store, "SELECT count(*) FROM tenants WHERE status = 'active'"));
        Assert.Equal(ids.Count, await CountAsync(store, "SELECT count(*) FROM audit_events WHERE action = 'operation.onboarding' AND outcome = 'succeeded'"));
        Assert.Equal(ids.Count, await CountAsync(store, "SELECT count(DISTINCT tenant_id) FROM audit_events WHERE action = 'operation.onboarding' AND outcome = 'succeeded'"));
        Assert.Equal(0L, await CountAsync(store, "SELECT count(*) FROM operation_steps WHERE status <> 'succeeded'"));
        foreach (var (id, _) in held)
        {
            Assert.DoesNotContain(_lines.Skip(resumedAt), l => l.StartsWith("a: ", StringComparison.Ordinal) && l.Contains($"Operation {id} ", StringComparison.Ordinal) && l.Contains("succeeded", StringComparison.Ordinal));
        }
    }

    public void Dispose()
    {
        foreach (var line in _lines.TakeLast(60))
        {
            output.WriteLine(line);
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static async Task PumpAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                await connection.WaitAsync(cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private string Tail() => string.Join('\n', _lines.TakeLast(60));

    private async Task<(TenantryHost Host, HttpClient Client)> StartAsync(string name, string store, string issuer, string lease = "00:30:00", string renewal = "00:01:00", string prefix = "handover")
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = TenantryHost.FreePorts(1)[0];
            var host = TenantryHost.Start(
                [
                    "--data-dir", Path.Combine(_root, name), "--operator-secret", OperatorSecret, "--Tenantry:ApplicationPlane:Enabled=false",
                    $"--Tenantry:Store={store}", $"--Tenantry:NodeName={prefix}-{name}", "--Tenantry:Issuer=" + issuer,
                    "--Tenantry:Operations:Lease=" + lease, "--Tenantry:Operations:LeaseRenewal=" + renewal, "--Tenantry:Operations:MaxParallel=2",
                    "--port", port.ToString(CultureInfo.InvariantCulture),
                ],
                l => _lines.Enqueue($"{name}: {l}"),
                new Dictionary<string, string>(StringComparer.Ordinal) { ["TENANTRY_MASTER_KEY"] = MasterKey });
            var baseAddress = new Uri($"http://127.0.0.1:{port}");
            var failure = await host.WaitHealthyAsync(TimeSpan.FromSeconds(90), baseAddress);
            if (failure is null)
            {
                var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await TenantryHost.OperatorTokenAsync(client, OperatorSecret));
                return (host, client);
            }

            host.Dispose();
            if (host.ExitCode != 4 || attempt >= 3)
            {
                Assert.Fail($"{name}: {failure}\n{Tail()}");
            }
        }
    }

    private static async Task<string> TextAsync(string store, string sql, string parameter)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue(Guid.Parse(parameter).ToString("D"));
        return Convert.ToString(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture)!;
    }
}
