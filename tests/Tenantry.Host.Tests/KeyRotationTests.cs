using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Npgsql;
using Tenantry.Testing;
using Xunit.Abstractions;

namespace Tenantry.Host.Tests;

/// <summary>
/// Key rotation on real processes: two control-plane replicas and a gateway replica on one private PostgreSQL store,
/// and the embedded store across a restart. The new key signs at once; every replica and gateway accepts it without a
/// restart; tokens signed before the rotation keep working until they expire.
/// </summary>
public sealed class KeyRotationTests(LeasePostgres pg, ITestOutputHelper output) : IClassFixture<LeasePostgres>, IDisposable
{
    /// <summary>The longest a replica may take to follow a rotation: the store's notification, else a reload every few seconds.</summary>
    private static readonly TimeSpan Follow = TimeSpan.FromSeconds(60);

    private readonly ConcurrentQueue<string> _lines = new();
    private readonly List<TenantryHost> _hosts = [];

    [Fact]
    public async Task A_rotation_on_one_replica_reaches_the_other_and_the_gateway_and_old_tokens_keep_working()
    {
        var store = await pg.NewDatabaseAsync();
        var ports = TenantryHost.FreePorts(3);
        var issuer = $"http://127.0.0.1:{ports[0]}/";
        var a = await StartReplicaAsync("a", store, ports[0], issuer);
        var b = await StartReplicaAsync("b", store, ports[1], issuer);
        var gatewayAdmin = ports[2];
        await a.StartGatewayReplicaAsync("--Tenantry:Gateway:AdminPort=" + gatewayAdmin.ToString(CultureInfo.InvariantCulture), "--Tenantry:Keys:ReloadEvery=00:00:05");
        using var clientA = new HttpClient { BaseAddress = a.ControlPlane, Timeout = TimeSpan.FromSeconds(60) };
        using var clientB = new HttpClient { BaseAddress = b.ControlPlane, Timeout = TimeSpan.FromSeconds(60) };
        using var gateway = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gatewayAdmin}/"), Timeout = TimeSpan.FromSeconds(60) };

        // Ready: the store answers and the key ring is loaded, on both.
        Assert.Equal(HttpStatusCode.OK, (await clientA.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await clientB.GetAsync(new Uri("/readyz", UriKind.Relative))).StatusCode);

        // A token A issued is good on B and on the gateway replica.
        var before = await TenantryHost.OperatorTokenAsync(clientA, TenantryHostOptions.DefaultOperatorSecret);
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(clientB, "/v1/tenants", before));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(gateway, "/metrics", before));

        var listed = await KeysAsync(clientB, before);
        Assert.DoesNotContain("PRIVATE KEY", listed.GetRawText(), StringComparison.Ordinal);
        var oldSigning = Current(listed, "signing");
        var nextContext = Single(listed, "tenant-context", "next");
        Assert.Equal(oldSigning, Current(await KeysAsync(clientA, before), "signing"));

        // Rotate on A: a new signing key signs at once; the old one retires after the longest token lifetime.
        using var rotate = new HttpRequestMessage(HttpMethod.Post, "/v1/keys/rotate") { Content = JsonContent.Create(new { keys = new[] { "signing", "encryption", "tenant-context", "data-protection" } }) };
        rotate.Headers.Authorization = new AuthenticationHeaderValue("Bearer", before);
        using var rotated = await clientA.SendAsync(rotate);
        var body = await rotated.Content.ReadAsStringAsync();
        Assert.True(rotated.StatusCode == HttpStatusCode.OK, $"{rotated.StatusCode} {body}\n{Tail()}");
        using var result = JsonDocument.Parse(body);
        var newSigning = result.RootElement.GetProperty("current").EnumerateArray().Single(k => k.GetProperty("kind").GetString() == "signing").GetProperty("id").GetString()!;
        Assert.NotEqual(oldSigning, newSigning);
        var retiring = result.RootElement.GetProperty("retiring").EnumerateArray().Single(k => k.GetProperty("kind").GetString() == "signing");
        Assert.Equal(oldSigning, retiring.GetProperty("id").GetString());
        Assert.True(retiring.GetProperty("retiresAt").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(30));
        // The tenant-context key app instances were already given as the next one signs now.
        var newContext = result.RootElement.GetProperty("current").EnumerateArray().Single(k => k.GetProperty("kind").GetString() == "tenant-context").GetProperty("id").GetString();
        Assert.Equal(nextContext, newContext);

        var after = await TenantryHost.OperatorTokenAsync(clientA, TenantryHostOptions.DefaultOperatorSecret);
        Assert.Equal(newSigning, new JsonWebToken(after).Kid);
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(clientA, "/v1/tenants", after));

        // B and the gateway accept the new key's tokens within a bounded wait, without a restart.
        await EventuallyAsync(async () => await StatusAsync(clientB, "/v1/tenants", after) == HttpStatusCode.OK, "B accepts the new key's token");
        await EventuallyAsync(async () => await StatusAsync(gateway, "/metrics", after) == HttpStatusCode.OK, "the gateway accepts the new key's token");
        await EventuallyAsync(() => Task.FromResult(_lines.Any(l => l.Contains("Tenant-context signing key rotated: now " + newContext, StringComparison.Ordinal))), "the gateway signs with the new tenant-context key");
        // B issues with the new key too.
        var fromB = await TenantryHost.OperatorTokenAsync(clientB, TenantryHostOptions.DefaultOperatorSecret);
        Assert.Equal(newSigning, new JsonWebToken(fromB).Kid);

        // Tokens signed before the rotation still work everywhere.
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(clientA, "/v1/tenants", before));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(clientB, "/v1/tenants", before));
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(gateway, "/metrics", before));

        var onB = await KeysAsync(clientB, after);
        Assert.Equal(newSigning, Current(onB, "signing"));
        Assert.Equal(oldSigning, Single(onB, "signing", "retiring"));

        // Both replicas rotating at once make one current key per kind, never two.
        using var r1 = Rotate(clientA, after, "signing");
        using var r2 = Rotate(clientB, after, "signing");
        var both = await Task.WhenAll(r1, r2);
        Assert.All(both, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(1L, await ScalarAsync(store, "SELECT count(*) FROM key_ring WHERE name = 'signing'"));
        var retired = await ScalarAsync(store, "SELECT count(*) FROM key_ring_retiring WHERE name = 'signing'");
        Assert.InRange(retired, 2L, 3L);
        await EventuallyAsync(
            async () => Current(await KeysAsync(clientA, before), "signing") == Current(await KeysAsync(clientB, before), "signing"),
            "both replicas name the same current signing key");

        // Each rotation is audited.
        using var audit = new HttpRequestMessage(HttpMethod.Get, "/v1/audit");
        audit.Headers.Authorization = new AuthenticationHeaderValue("Bearer", before);
        var auditText = await (await clientA.SendAsync(audit)).Content.ReadAsStringAsync();
        Assert.Contains("keys.rotate", auditText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task On_the_embedded_store_a_rotation_survives_a_restart_and_old_tokens_stay_valid()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-key-rotation-tests", Guid.NewGuid().ToString("N"));
        // The same port (so the same issuer) after the restart: a token names its issuer. The first start picks
        // a free one (and tries another when a parallel test takes it first).
        var port = 0;
        try
        {
            string before;
            string after;
            string newSigning;
            await using (var host = await TenantryHost.StartAsync(new TenantryHostOptions { DataDir = dataDir, Output = l => _lines.Enqueue("e: " + l) }))
            {
                port = host.Ports[0];
                using var client = await host.OperatorClientAsync();
                before = client.DefaultRequestHeaders.Authorization!.Parameter!;

                // A caller's mistake is a 400 naming the field.
                using (var bad = await client.PostAsJsonAsync(new Uri("/v1/keys/rotate", UriKind.Relative), new { keys = new[] { "signing", "nope" } }))
                {
                    var problem = await bad.Content.ReadAsStringAsync();
                    Assert.True(bad.StatusCode == HttpStatusCode.BadRequest, $"{bad.StatusCode} {problem}");
                    Assert.Contains("\"keys\"", problem, StringComparison.Ordinal);
                }

                // No body rotates every key.
                using var rotated = await client.PostAsync(new Uri("/v1/keys/rotate", UriKind.Relative), null);
                var body = await rotated.Content.ReadAsStringAsync();
                Assert.True(rotated.StatusCode == HttpStatusCode.OK, $"{rotated.StatusCode} {body}");
                using var result = JsonDocument.Parse(body);
                Assert.Equal(
                    ["data-protection", "encryption", "signing", "tenant-context"],
                    result.RootElement.GetProperty("current").EnumerateArray().Select(k => k.GetProperty("kind").GetString()).Order(StringComparer.Ordinal));
                newSigning = result.RootElement.GetProperty("current").EnumerateArray().Single(k => k.GetProperty("kind").GetString() == "signing").GetProperty("id").GetString()!;
                after = await TenantryHost.OperatorTokenAsync(client, TenantryHostOptions.DefaultOperatorSecret);
                Assert.Equal(newSigning, new JsonWebToken(after).Kid);
                Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/v1/tenants", before));
                Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/v1/tenants", after));

                // The replaced keys are kept beside the current ones, private.
                var retiring = Directory.GetFiles(Path.Combine(dataDir, "keys", "retiring"));
                Assert.Equal(3, retiring.Length);
                Assert.All(retiring, f => Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(f)));
            }

            await using (var again = await TenantryHost.StartAsync(new TenantryHostOptions { DataDir = dataDir, Ports = [port], Output = l => _lines.Enqueue("e2: " + l) }))
            {
                using var client = new HttpClient { BaseAddress = again.ControlPlane, Timeout = TimeSpan.FromSeconds(60) };
                Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/v1/tenants", before));
                Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/v1/tenants", after));
                var fresh = await TenantryHost.OperatorTokenAsync(client, TenantryHostOptions.DefaultOperatorSecret);
                Assert.Equal(newSigning, new JsonWebToken(fresh).Kid);
                var keys = await KeysAsync(client, fresh);
                Assert.Equal(newSigning, Current(keys, "signing"));
                Assert.Equal(new JsonWebToken(before).Kid, Single(keys, "signing", "retiring"));
            }
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

    [Fact]
    public async Task App_instances_started_before_a_tenant_context_rotation_accept_the_gateways_new_key()
    {
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform() with { Output = l => _lines.Enqueue("p: " + l) });
        using var op = await host.OperatorClientAsync();
        var tenant = await host.OnboardAsync(op, "context-rotation", "basic");
        using var gateway = host.GatewayClient(tenant.Token);
        using (var before = await gateway.GetAsync(new Uri("/orders?limit=1", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        // The shared instance keeps the JWKS it was started with; the gateway now signs with the next key it holds.
        var token = op.DefaultRequestHeaders.Authorization!.Parameter!;
        var next = Single(await KeysAsync(op, token), "tenant-context", "next");
        using var rotated = await op.PostAsJsonAsync(new Uri("/v1/keys/rotate", UriKind.Relative), new { keys = new[] { "tenant-context" } });
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        Assert.Equal(next, Current(await KeysAsync(op, token), "tenant-context"));
        Assert.Contains(_lines, l => l.Contains("Key ring reloaded", StringComparison.Ordinal) && l.Contains("tenant-context key " + next, StringComparison.Ordinal));
        for (var i = 0; i < 3; i++)
        {
            using var after = await gateway.GetAsync(new Uri("/orders?limit=1", UriKind.Relative));
            Assert.True(after.StatusCode == HttpStatusCode.OK, $"{after.StatusCode} {await after.Content.ReadAsStringAsync()}\n{Tail()}");
        }
    }

    [Fact]
    public async Task The_schedule_rotates_keys_older_than_RotateEvery()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-key-rotation-tests", Guid.NewGuid().ToString("N"));
        try
        {
            // A first start makes the keys; they are then made to look two hours old.
            await using (await TenantryHost.StartAsync(new TenantryHostOptions { DataDir = dataDir, Output = l => _lines.Enqueue("s: " + l) }))
            {
            }

            var signingFile = Path.Combine(dataDir, "keys", "signing.pem");
            File.SetLastWriteTimeUtc(signingFile, DateTime.UtcNow.AddHours(-2));

            await using var host = await TenantryHost.StartAsync(new TenantryHostOptions
            {
                DataDir = dataDir,
                Settings = ["--Tenantry:Keys:RotateEvery=01:00:00", "--Tenantry:Keys:ReloadEvery=00:00:01"],
                Output = l => _lines.Enqueue("s2: " + l),
            });
            using var client = await host.OperatorClientAsync();
            var token = client.DefaultRequestHeaders.Authorization!.Parameter!;
            await EventuallyAsync(
                async () => (await KeysAsync(client, token)).EnumerateArray().Any(k => k.GetProperty("kind").GetString() == "signing" && k.GetProperty("status").GetString() == "retiring"),
                "the schedule rotated the two-hour-old keys");
            var keys = await KeysAsync(client, token);
            Assert.Single(keys.EnumerateArray(), k => k.GetProperty("kind").GetString() == "signing" && k.GetProperty("status").GetString() == "retiring");
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(client, "/v1/tenants", token));
            var audit = await client.GetStringAsync(new Uri("/v1/audit", UriKind.Relative));
            Assert.Contains("tenantry:schedule", audit, StringComparison.Ordinal);
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

    public void Dispose()
    {
        foreach (var host in _hosts)
        {
            host.Dispose();
        }

        foreach (var line in _lines.TakeLast(80))
        {
            output.WriteLine(line);
        }
    }

    private async Task<TenantryHost> StartReplicaAsync(string name, string store, int port, string issuer)
    {
        var host = await TenantryHost.StartAsync(new TenantryHostOptions
        {
            Store = store,
            Ports = [port],
            Settings = ["--Tenantry:Issuer=" + issuer, "--Tenantry:NodeName=replica-" + name, "--Tenantry:Keys:ReloadEvery=00:00:05"],
            Output = l => _lines.Enqueue($"{name}: {l}"),
        });
        _hosts.Add(host);
        return host;
    }

    private static async Task<HttpResponseMessage> Rotate(HttpClient client, string token, string kind)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/keys/rotate") { Content = JsonContent.Create(new { keys = new[] { kind } }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await client.SendAsync(request);
    }

    private static async Task<HttpStatusCode> StatusAsync(HttpClient client, string path, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    private static async Task<JsonElement> KeysAsync(HttpClient client, string token)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/keys");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("items").Clone();
    }

    private static string Current(JsonElement keys, string kind) => Single(keys, kind, "current");

    private static string Single(JsonElement keys, string kind, string status) =>
        keys.EnumerateArray().Single(k => k.GetProperty("kind").GetString() == kind && k.GetProperty("status").GetString() == status).GetProperty("id").GetString()!;

    private async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Follow;
        for (var attempt = 0; attempt < 600; attempt++)
        {
            if (await condition())
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                break;
            }

            await Task.Delay(250);
        }

        Assert.Fail($"Not within {Follow.TotalSeconds} s: {what}\n{Tail()}");
    }

    private string Tail() => string.Join('\n', _lines.TakeLast(60));

    private static async Task<long> ScalarAsync(string store, string sql)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
