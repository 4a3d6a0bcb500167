using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Events;

/// <summary>A host whose webhooks may reach loopback receivers, with quick retries.</summary>
public sealed class WebhookFactory : IDisposable
{
    public WebhookFactory()
    {
        Host.Settings["Tenantry:Webhooks:AllowPrivateNetworks"] = "true";
        Host.Settings["Tenantry:Webhooks:RetryBaseDelay"] = "00:00:00.050";
        Host.Settings["Tenantry:Webhooks:MaxRetryDelay"] = "00:00:00.400";
        Host.Settings["Tenantry:Webhooks:MaxAttempts"] = "50";
        Host.Settings["Tenantry:Webhooks:PollInterval"] = "00:00:00.050";
    }

    public TenantryFactory Host { get; } = new();

    public void Dispose() => Host.Dispose();
}

/// <summary>Webhooks through the real API to a real HTTP receiver on loopback.</summary>
public sealed class WebhookTests(WebhookFactory fixture) : IClassFixture<WebhookFactory>, IAsyncLifetime
{
    private TenantryFactory Factory => fixture.Host;

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>Each test's endpoints go with it, so a later receiver on a reused port gets nothing of theirs.</summary>
    public async Task DisposeAsync()
    {
        using var client = await Factory.OperatorAsync();
        foreach (var hook in (await client.GetJsonAsync("/v1/webhooks?limit=200")).GetProperty("items").EnumerateArray())
        {
            using var deleted = await client.DeleteAsync(new Uri($"/v1/webhooks/{hook.GetProperty("id").GetString()}", UriKind.Relative));
        }
    }

    [Fact]
    public async Task Deliveries_are_signed_cloud_events_logged_and_replayed_with_the_same_webhook_id()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var client = await Factory.OperatorAsync();
        var (hookId, secret) = await CreateWebhookAsync(client, new { url = receiver.Url("/acme").ToString(), events = new[] { "tenant.*" } });
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.False((await client.GetJsonAsync($"/v1/webhooks/{hookId}")).TryGetProperty("secret", out _));

        var tenant = await client.CreateActiveTenantAsync("hook-signed");
        Assert.True(await receiver.WaitForAsync(r => r.Count >= 2), $"received {receiver.Received.Count}");
        var received = receiver.Received.ToList();
        Assert.Equal(2, received.Count); // operation.succeeded does not match tenant.*
        Assert.All(received, r =>
        {
            Assert.True(WebhookReceiver.IsSigned(r, secret), $"bad signature on {r.Id}");
            Assert.Equal("/acme", r.Path);
            Assert.StartsWith("application/json", r.ContentType, StringComparison.Ordinal);
            var body = JsonDocument.Parse(r.Body).RootElement;
            Assert.Equal(r.Id, body.GetProperty("id").GetString());
            Assert.Equal("1.0", body.GetProperty("specversion").GetString());
            Assert.Equal(tenant, body.GetProperty("subject").GetString());
        });
        Assert.Equal(["tenant.created", "tenant.activated"], received.Select(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("type").GetString()!).ToArray());
        Assert.False(WebhookReceiver.IsSigned(received[0] with { Body = received[0].Body.Replace("hook-signed", "hook-signee", StringComparison.Ordinal) }, secret));

        var log = await DeliveriesAsync(client, hookId, 2);
        Assert.All(log, d =>
        {
            Assert.Equal("succeeded", d.GetProperty("status").GetString());
            Assert.Equal(1, d.GetProperty("attempts").GetInt32());
            var last = d.GetProperty("lastAttempt");
            Assert.Equal(200, last.GetProperty("statusCode").GetInt32());
            Assert.True(last.GetProperty("durationMs").GetInt32() >= 0);
            Assert.StartsWith("received ", last.GetProperty("responseExcerpt").GetString(), StringComparison.Ordinal);
        });

        var first = log.Single(d => d.GetProperty("eventType").GetString() == "tenant.created");
        using (var replay = await client.PostAsync(new Uri($"/v1/webhooks/{hookId}/deliveries/{first.GetProperty("id").GetString()}/replay", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Accepted, replay.StatusCode);
            Assert.Equal(first.GetProperty("id").GetString(), (await replay.JsonAsync()).GetProperty("replayOf").GetString());
        }

        Assert.True(await receiver.WaitForAsync(r => r.Count >= 3));
        Assert.Equal(received[0].Id, receiver.Received.Last().Id);
        var replayed = await DeliveriesAsync(client, hookId, 3);
        Assert.Equal(first.GetProperty("id").GetString(), replayed[0].GetProperty("replayOf").GetString());
        var detail = await client.GetJsonAsync($"/v1/webhooks/{hookId}/deliveries/{replayed[0].GetProperty("id").GetString()}");
        Assert.Single(detail.GetProperty("history").EnumerateArray());

        // A rotated secret: the old one keeps signing beside the new one for a while.
        using var rotated = await client.PostAsync(new Uri($"/v1/webhooks/{hookId}/rotate-secret", UriKind.Relative), null);
        var newSecret = (await rotated.JsonAsync()).GetProperty("secret").GetString()!;
        Assert.NotEqual(secret, newSecret);
        using (var suspend = await client.PostAsync(new Uri($"/v1/tenants/{tenant}/suspend", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Accepted, suspend.StatusCode);
        }

        Assert.True(await receiver.WaitForAsync(r => r.Count >= 4));
        var afterRotation = receiver.Received.Last();
        Assert.True(WebhookReceiver.IsSigned(afterRotation, newSecret));
        Assert.True(WebhookReceiver.IsSigned(afterRotation, secret));
        Assert.Equal(2, afterRotation.Signature.Split(' ').Length);
    }

    [Fact]
    public async Task A_receiver_that_is_down_gets_every_event_once_per_webhook_id_in_order_when_it_is_back()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await receiver.StopAsync();
        using var client = await Factory.OperatorAsync();
        var (hookId, secret) = await CreateWebhookAsync(client, new { url = receiver.Url().ToString(), events = new[] { "*" } });

        var tenants = new List<string>();
        foreach (var slug in new[] { "down-one", "down-two", "down-three" })
        {
            tenants.Add(await client.CreateActiveTenantAsync(slug));
        }

        using (var suspend = await client.PostAsync(new Uri($"/v1/tenants/{tenants[0]}/suspend", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Accepted, suspend.StatusCode);
        }

        await client.WaitForStatusAsync(tenants[0], "suspended");

        // While it is down, attempts fail and are retried: the log shows refused connections.
        var failing = await WaitAsync(async () =>
            (await DeliveriesAsync(client, hookId, 0)).Where(d => d.GetProperty("attempts").GetInt32() >= 2).ToList() is { Count: > 0 } some ? some : null);
        Assert.Equal("pending", failing[0].GetProperty("status").GetString());
        Assert.Null(failing[0].GetProperty("lastAttempt").GetProperty("statusCode").GetString());
        Assert.False(string.IsNullOrEmpty(failing[0].GetProperty("lastAttempt").GetProperty("error").GetString()));
        Assert.Empty(receiver.Received);

        var expected = new List<JsonElement>();
        foreach (var tenant in tenants)
        {
            var events = (await client.GetJsonAsync($"/v1/events?tenantId={tenant}&limit=200")).GetProperty("items").EnumerateArray().Reverse().ToList();
            expected.AddRange(events);
        }

        Assert.Equal(3 + 3 + 3 + 2, expected.Count);
        await receiver.StartAsync();
        Assert.True(
            await receiver.WaitForAsync(r => r.Select(x => x.Id).Distinct().Count() >= expected.Count, 60),
            $"received {receiver.Received.Select(x => x.Id).Distinct().Count()} of {expected.Count}");
        await Task.Delay(300); // Nothing more should come: each event once.

        var received = receiver.Received.ToList();
        Assert.Equal(expected.Select(e => e.GetProperty("id").GetString()).Order(), received.Select(r => r.Id).Order());
        Assert.All(received, r => Assert.True(WebhookReceiver.IsSigned(r, secret)));
        foreach (var tenant in tenants)
        {
            // Per tenant, in the order the changes committed.
            Assert.Equal(
                expected.Where(e => e.GetProperty("subject").GetString() == tenant).Select(e => e.GetProperty("id").GetString()),
                received.Where(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("subject").GetString() == tenant).Select(r => r.Id));
        }

        var log = await DeliveriesAsync(client, hookId, expected.Count);
        Assert.All(log, d => Assert.Equal("succeeded", d.GetProperty("status").GetString()));
        Assert.Contains(log, d => d.GetProperty("attempts").GetInt32() > 1);
    }

    [Fact]
    public async Task Tenant_filters_and_disabled_endpoints_get_only_what_they_asked_for()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var client = await Factory.OperatorAsync();
        var mine = await client.CreateActiveTenantAsync("filter-mine");
        var (hookId, _) = await CreateWebhookAsync(client, new { url = receiver.Url("/mine").ToString(), events = new[] { "tenant.suspended", "operation.*" }, tenantId = "filter-mine" });
        var (offId, _) = await CreateWebhookAsync(client, new { url = receiver.Url("/off").ToString(), events = new[] { "*" } });
        using (var off = await client.PatchAsJsonAsync($"/v1/webhooks/{offId}", new { enabled = false }))
        {
            Assert.Equal(HttpStatusCode.OK, off.StatusCode);
            Assert.False((await off.JsonAsync()).GetProperty("enabled").GetBoolean());
        }

        var other = await client.CreateActiveTenantAsync("filter-other");
        foreach (var id in new[] { mine, other })
        {
            using var suspend = await client.PostAsync(new Uri($"/v1/tenants/{id}/suspend", UriKind.Relative), null);
            Assert.Equal(HttpStatusCode.Accepted, suspend.StatusCode);
            await client.WaitForStatusAsync(id, "suspended");
        }

        Assert.True(await receiver.WaitForAsync(r => r.Count >= 2));
        await Task.Delay(300);
        var received = receiver.Received.Select(r => JsonDocument.Parse(r.Body).RootElement).ToList();
        Assert.All(receiver.Received, r => Assert.Equal("/mine", r.Path));
        Assert.Equal(["tenant.suspended", "operation.succeeded"], received.Select(e => e.GetProperty("type").GetString()!).ToArray());
        Assert.All(received, e => Assert.Equal(mine, e.GetProperty("subject").GetString()));
        Assert.Equal(mine, (await client.GetJsonAsync($"/v1/webhooks/{hookId}")).GetProperty("tenantId").GetString());

        using (var deleted = await client.DeleteAsync(new Uri($"/v1/webhooks/{hookId}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var gone = await client.GetAsync(new Uri($"/v1/webhooks/{hookId}/deliveries", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task A_tenant_admin_manages_only_its_own_tenants_webhooks()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var client = await Factory.OperatorAsync();
        var a = await client.CreateActiveTenantAsync("hook-tenant-a");
        var b = await client.CreateActiveTenantAsync("hook-tenant-b");
        var (bHook, _) = await CreateWebhookAsync(client, new { url = receiver.Url("/b").ToString(), events = new[] { "*" }, tenantId = b });
        using var admin = await TenantClientAsync(client, a, "boss@hook-tenant-a.test", "admin");
        using var member = await TenantClientAsync(client, a, "staff@hook-tenant-a.test", "member");

        // Another tenant's webhook: refused (403) whether named by id or slug, and audited.
        foreach (var target in new[] { b, "hook-tenant-b" })
        {
            using var foreign = await admin.PostAsJsonAsync("/v1/webhooks", new { url = receiver.Url("/steal").ToString(), events = new[] { "*" }, tenantId = target });
            Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
        }

        var audit = (await client.GetJsonAsync($"/v1/audit?tenantId={a}&limit=200")).GetProperty("items").EnumerateArray();
        Assert.Contains(audit, e => e.GetProperty("action").GetString() == "webhook.created" && e.GetProperty("outcome").GetString() == "denied");

        // Its own: made for its tenant even without naming it, and only its own are listed or readable.
        using var own = await admin.PostAsJsonAsync("/v1/webhooks", new { url = receiver.Url("/a").ToString(), events = new[] { "*" } });
        Assert.Equal(HttpStatusCode.Created, own.StatusCode);
        var ownHook = await own.JsonAsync();
        Assert.Equal(a, ownHook.GetProperty("tenantId").GetString());
        var listed = (await admin.GetJsonAsync("/v1/webhooks")).GetProperty("items").EnumerateArray().Select(w => w.GetProperty("id").GetString()).ToList();
        Assert.Equal(ownHook.GetProperty("id").GetString(), Assert.Single(listed));
        foreach (var (method, path) in new[] { (HttpMethod.Get, $"/v1/webhooks/{bHook}"), (HttpMethod.Delete, $"/v1/webhooks/{bHook}"), (HttpMethod.Get, $"/v1/webhooks/{bHook}/deliveries"), (HttpMethod.Post, $"/v1/webhooks/{bHook}/rotate-secret") })
        {
            using var request = new HttpRequestMessage(method, path);
            using var response = await admin.SendAsync(request);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        using (var move = await admin.PatchAsJsonAsync($"/v1/webhooks/{ownHook.GetProperty("id").GetString()}", new { tenantId = b }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, move.StatusCode);
        }

        using (var listB = await admin.GetAsync(new Uri($"/v1/webhooks?tenantId={b}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, listB.StatusCode);
        }

        using var byMember = await member.PostAsJsonAsync("/v1/webhooks", new { url = receiver.Url("/m").ToString(), events = new[] { "*" } });
        Assert.Equal(HttpStatusCode.Forbidden, byMember.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri($"/v1/webhooks/{bHook}", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task Bad_webhook_input_gets_a_clear_problem()
    {
        using var client = await Factory.OperatorAsync();
        foreach (var (body, field) in new (object Body, string Field)[]
        {
            (new { url = "not a url", events = new[] { "*" } }, "url"),
            (new { url = "ftp://127.0.0.1/x", events = new[] { "*" } }, "url"),
            (new { url = "http://user:secret@127.0.0.1:9/x", events = new[] { "*" } }, "url"),
            (new { url = "http://127.0.0.1:9/x", events = Array.Empty<string>() }, "events"),
            (new { url = "http://127.0.0.1:9/x", events = new[] { "tenant.exploded" } }, "events[0]"),
            (new { url = "http://127.0.0.1:9/x", events = new[] { "Tenant.*" } }, "events[0]"),
        })
        {
            using var response = await client.PostAsJsonAsync("/v1/webhooks", body);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var problem = await response.JsonAsync();
            Assert.Equal("https://tenantry.dev/problems/validation", problem.GetProperty("type").GetString());
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"{body}: {problem}");
        }

        using var noTenant = await client.PostAsJsonAsync("/v1/webhooks", new { url = "http://127.0.0.1:9/x", events = new[] { "*" }, tenantId = "nobody-here" });
        Assert.Equal(HttpStatusCode.BadRequest, noTenant.StatusCode);
        using var notJson = await client.PostAsync(new Uri("/v1/webhooks", UriKind.Relative), new StringContent("{", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, notJson.StatusCode);
        using var unknown = await client.GetAsync(new Uri("/v1/webhooks/nope", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        using var badStatus = await client.GetAsync(new Uri("/v1/webhooks/nope/deliveries?status=lost", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, badStatus.StatusCode);
    }

    internal static async Task<(string Id, string Secret)> CreateWebhookAsync(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync("/v1/webhooks", body);
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var hook = await response.JsonAsync();
        return (hook.GetProperty("id").GetString()!, hook.GetProperty("secret").GetString()!);
    }

    /// <summary>The endpoint's delivery log once it holds at least <paramref name="atLeast"/> deliveries.</summary>
    internal static async Task<List<JsonElement>> DeliveriesAsync(HttpClient client, string hookId, int atLeast)
    {
        List<JsonElement> items = [];
        for (var i = 0; i < 400; i++)
        {
            items = [.. (await client.GetJsonAsync($"/v1/webhooks/{hookId}/deliveries?limit=200")).GetProperty("items").EnumerateArray()];
            if (items.Count >= atLeast && (atLeast == 0 || items.All(d => d.GetProperty("status").GetString() != "pending")))
            {
                return items;
            }

            await Task.Delay(50);
        }

        return items;
    }

    private static async Task<T> WaitAsync<T>(Func<Task<T?>> probe)
        where T : class
    {
        for (var i = 0; i < 400; i++)
        {
            if (await probe() is { } found)
            {
                return found;
            }

            await Task.Delay(50);
        }

        Assert.Fail("The condition did not hold within 20 s.");
        return null!;
    }

    /// <summary>A client with the token of a new user of the tenant (password grant).</summary>
    private async Task<HttpClient> TenantClientAsync(HttpClient operatorClient, string tenant, string email, string role)
    {
        using var invite = await operatorClient.PostAsJsonAsync($"/v1/tenants/{tenant}/users", new { email, role });
        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        var password = (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!;
        var client = Factory.CreateClient();
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = email, ["password"] = password, ["tenant"] = tenant,
        });
        using var token = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (await token.JsonAsync()).GetProperty("access_token").GetString());
        return client;
    }
}
