using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Tenantry.Testing;
using Xunit.Abstractions;

namespace Tenantry.FunctionalTests.Billing;

/// <summary>
/// Usage ingest under kill -9: the host runs as a child process, senders post batches without
/// pause, and the host is killed (SIGKILL) mid-stream, round after round. Every event the host
/// acknowledged must then be in the store exactly once; unacknowledged batches are sent again
/// after the last start and then everything is there exactly once.
/// </summary>
[Collection(SoloCollection.Name)]
public sealed class IngestCrashTests(ITestOutputHelper output) : IDisposable
{
    private const string Secret = "ingest-crash-operator-secret-0123456789";
    private const int Rounds = 3;
    private const int Senders = 4;
    private const int BatchSize = 100;
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-ingest-crash", Guid.NewGuid().ToString("N"));
    private TenantryHost? _host;

    [Fact]
    public async Task Events_acknowledged_before_a_sigkill_are_stored_exactly_once()
    {
        var seed = Random.Shared.Next();
        var rng = new Random(seed);
        output.WriteLine($"seed {seed}, data dir {_dataDir}");
        var acknowledged = new ConcurrentDictionary<string, byte>(StringComparer.Ordinal);
        var unanswered = new ConcurrentQueue<object[]>();
        var next = 0;
        string tenant;

        using (var client = await StartAsync())
        {
            using (var meter = await client.PostAsJsonAsync("/v1/meters", new { key = "widgets", aggregation = "sum", property = "n" }))
            {
                Assert.Equal(HttpStatusCode.Created, meter.StatusCode);
            }

            tenant = await client.CreateActiveTenantAsync("crash-ingest", "basic");
        }

        for (var round = 1; round <= Rounds; round++)
        {
            Kill();
            using var client = await StartAsync();
            using var stop = new CancellationTokenSource();
            var before = acknowledged.Count;
            var senders = Enumerable.Range(0, Senders).Select(_ => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var batch = Enumerable.Range(0, BatchSize).Select(_ => Interlocked.Increment(ref next))
                        .Select(n => (object)new { id = $"ev-{n}", source = "crash-test", type = "widgets", subject = tenant, data = new { n = 1 } })
                        .ToArray();
                    if (!await TrySendAsync(client, batch, acknowledged))
                    {
                        unanswered.Enqueue(batch);
                        return;
                    }
                }
            })).ToList();
            // Killed (SIGKILL) while batches are in flight, some time after the first acknowledgement.
            var waited = Stopwatch.StartNew();
            while (acknowledged.Count == before && waited.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(10);
            }

            await Task.Delay(rng.Next(50, 500));
            Kill();
            await stop.CancelAsync();
            await Task.WhenAll(senders);
            output.WriteLine($"round {round}: {acknowledged.Count - before} events acknowledged before the kill, {unanswered.Count} batches unanswered so far");
        }

        Kill();
        using (var client = await StartAsync())
        {
            // Before anything is resent: every acknowledged event is there, once.
            var stored = StoredIds();
            var missing = acknowledged.Keys.Where(id => !stored.ContainsKey(id)).Take(10).ToList();
            Assert.True(missing.Count == 0, $"acknowledged but not stored (seed {seed}): {string.Join(", ", missing)}");
            Assert.All(stored, kv => Assert.Equal(1, kv.Value));

            // Batches that got no answer are sent again: replays are no-ops, the rest is stored now.
            while (unanswered.TryDequeue(out var batch))
            {
                Assert.True(await TrySendAsync(client, batch, acknowledged), "A quiet host did not answer a batch.");
            }

            stored = StoredIds();
            Assert.Equal(next - 0, acknowledged.Count);
            Assert.Equal(acknowledged.Count, stored.Count);
            Assert.All(stored, kv => Assert.Equal(1, kv.Value));
            var usage = await client.GetJsonAsync($"/v1/usage?tenantId={tenant}&meter=widgets&window=month");
            Assert.Equal(acknowledged.Count, usage.GetProperty("items").EnumerateArray().Sum(i => i.GetProperty("value").GetDecimal()));
            output.WriteLine($"{acknowledged.Count} events sent, each stored exactly once after {Rounds} kills");
        }

        Assert.True(unanswered.IsEmpty);
    }

    /// <summary>True when the host answered 202; the batch's events are then stored (accepted now or before).</summary>
    private static async Task<bool> TrySendAsync(HttpClient client, object[] batch, ConcurrentDictionary<string, byte> acknowledged)
    {
        try
        {
            using var response = await client.PostAsJsonAsync("/v1/usage/events", batch);
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                return false;
            }

            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(0, json.RootElement.GetProperty("rejected").GetArrayLength());
            Assert.Equal(batch.Length, json.RootElement.GetProperty("accepted").GetInt32() + json.RootElement.GetProperty("duplicates").GetInt32());
            foreach (var e in batch)
            {
                acknowledged.TryAdd(JsonSerializer.SerializeToElement(e).GetProperty("id").GetString()!, 0);
            }

            return true;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return false;
        }
    }

    private Dictionary<string, long> StoredIds()
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(_dataDir, "control.db"), Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, count(*) FROM usage_events WHERE source = 'crash-test' GROUP BY id";
        using var reader = command.ExecuteReader();
        var ids = new Dictionary<string, long>(StringComparer.Ordinal);
        while (reader.Read())
        {
            ids[reader.GetString(0)] = reader.GetInt64(1);
        }

        return ids;
    }

    private async Task<HttpClient> StartAsync()
    {
        _host = await TenantryHost.StartAsync(new TenantryHostOptions { DataDir = _dataDir, OperatorSecret = Secret, StartTimeout = TimeSpan.FromSeconds(60) });
        var client = new HttpClient { BaseAddress = _host.ControlPlane, Timeout = TimeSpan.FromSeconds(30) };
        var token = await TenantryFactory.TokenAsync(client, "operator", Secret, "tenantry:admin");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    /// <summary>SIGKILL.</summary>
    private void Kill()
    {
        _host?.Dispose();
        _host = null;
    }

    public void Dispose()
    {
        Kill();
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// The billing host tests run one class at a time, after the parallel ones: their load must not skew
/// the timing-driven crash tests (kills within 250 ms of a burst) on a 2-core machine.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoloCollection
{
    public const string Name = "solo: heavy load";
}
