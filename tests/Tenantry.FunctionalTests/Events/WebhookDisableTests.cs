using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Http;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Events;

/// <summary>A host that disables an endpoint after three seconds of failures (days by default).</summary>
public sealed class QuickDisableFactory : IDisposable
{
    public QuickDisableFactory()
    {
        Host.Settings["Tenantry:Webhooks:AllowPrivateNetworks"] = "true";
        Host.Settings["Tenantry:Webhooks:RetryBaseDelay"] = "00:00:00.050";
        Host.Settings["Tenantry:Webhooks:MaxRetryDelay"] = "00:00:00.200";
        Host.Settings["Tenantry:Webhooks:MaxAttempts"] = "50";
        Host.Settings["Tenantry:Webhooks:PollInterval"] = "00:00:00.050";
        Host.Settings["Tenantry:Webhooks:DisableAfter"] = "00:00:03";
    }

    public TenantryFactory Host { get; } = new();

    public void Dispose() => Host.Dispose();
}

public sealed class WebhookDisableTests(QuickDisableFactory fixture) : IClassFixture<QuickDisableFactory>
{
    [Fact]
    public async Task An_endpoint_that_keeps_failing_is_retried_then_disabled_and_that_is_an_event()
    {
        await using var failing = await WebhookReceiver.StartAsync();
        failing.Answer = _ => StatusCodes.Status500InternalServerError;
        await using var watcher = await WebhookReceiver.StartAsync();
        using var client = await fixture.Host.OperatorAsync();
        var (broken, _) = await WebhookTests.CreateWebhookAsync(client, new { url = failing.Url().ToString(), events = new[] { "tenant.*" } });
        var (watching, secret) = await WebhookTests.CreateWebhookAsync(client, new { url = watcher.Url().ToString(), events = new[] { "webhook.disabled" } });
        await client.CreateActiveTenantAsync("keeps-failing");

        Assert.True(await watcher.WaitForAsync(r => r.Count >= 1), "webhook.disabled was not delivered");
        var disabledEvent = JsonDocument.Parse(watcher.Received.First().Body).RootElement;
        Assert.Equal("webhook.disabled", disabledEvent.GetProperty("type").GetString());
        Assert.Equal(broken, disabledEvent.GetProperty("data").GetProperty("webhookId").GetString());
        Assert.True(WebhookReceiver.IsSigned(watcher.Received.First(), secret));

        var hook = await client.GetJsonAsync($"/v1/webhooks/{broken}");
        Assert.False(hook.GetProperty("enabled").GetBoolean());
        Assert.Contains("500", hook.GetProperty("disabledReason").GetString(), StringComparison.Ordinal);

        // Every attempt answered 500, each logged with its code, duration and body; retried with growing pauses.
        var log = (await client.GetJsonAsync($"/v1/webhooks/{broken}/deliveries")).GetProperty("items").EnumerateArray().ToList();
        var first = log.Single(d => d.GetProperty("eventType").GetString() == "tenant.created");
        var detail = await client.GetJsonAsync($"/v1/webhooks/{broken}/deliveries/{first.GetProperty("id").GetString()}");
        var attempts = detail.GetProperty("history").EnumerateArray().ToList();
        Assert.True(attempts.Count >= 3, $"{attempts.Count} attempts: {detail} {string.Join("\n", log)} {hook}");
        Assert.All(attempts, a => Assert.Equal(500, a.GetProperty("statusCode").GetInt32()));
        Assert.All(attempts, a => Assert.StartsWith("received", a.GetProperty("responseExcerpt").GetString(), StringComparison.Ordinal));
        Assert.Equal("pending", detail.GetProperty("status").GetString());
        var audit = (await client.GetJsonAsync("/v1/audit?limit=200")).GetProperty("items").EnumerateArray();
        Assert.Contains(audit, e => e.GetProperty("action").GetString() == "webhook.disabled");

        // Disabled, it is sent nothing more; enabled again, the waiting deliveries go out (to a receiver that now answers 200).
        var before = failing.Received.Count;
        await Task.Delay(400);
        Assert.Equal(before, failing.Received.Count);
        failing.Answer = _ => StatusCodes.Status200OK;
        using (var enable = await client.PatchAsJsonAsync($"/v1/webhooks/{broken}", new { enabled = true }))
        {
            Assert.Equal(HttpStatusCode.OK, enable.StatusCode);
            Assert.Equal(JsonValueKind.Null, (await enable.JsonAsync()).GetProperty("failingSince").ValueKind);
        }

        var done = await WebhookTests.DeliveriesAsync(client, broken, 2);
        Assert.All(done, d => Assert.Equal("succeeded", d.GetProperty("status").GetString()));
        Assert.Equal(watching, (await client.GetJsonAsync($"/v1/webhooks/{watching}")).GetProperty("id").GetString());
    }
}
