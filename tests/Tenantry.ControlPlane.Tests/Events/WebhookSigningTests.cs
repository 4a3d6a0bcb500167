using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Events;
using Tenantry.Testing;

namespace Tenantry.ControlPlane.Tests.Events;

/// <summary>Standard Webhooks signing, and the SSRF guard where a delivery connects.</summary>
public sealed class WebhookSigningTests
{
    private static readonly WebhookSecrets Secrets = new(new EphemeralDataProtectionProvider());

    [Fact]
    public void Signatures_match_the_published_example_of_the_standard_webhooks_spec()
    {
        var sender = Sender(allowPrivate: false);
        var webhook = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        var signature = sender.Sign(webhook, "msg_p5jXN8AQM9LWM0D4loKWxJek", DateTimeOffset.FromUnixTimeSeconds(1614265330), "{\"test\": 2432232314}");
        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", signature);
    }

    [Fact]
    public void A_rotated_secret_signs_beside_the_previous_one_until_the_overlap_ends()
    {
        var sender = Sender(allowPrivate: false);
        var now = DateTimeOffset.FromUnixTimeSeconds(1614265330);
        var rotated = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") is var old
            ? old with { ProtectedSecret = Secrets.Protect(old.Id, WebhookSecrets.NewSecret()), PreviousSecret = old.ProtectedSecret, PreviousSecretUntil = now.AddMinutes(1) }
            : null!;
        var both = sender.Sign(rotated, "msg_p5jXN8AQM9LWM0D4loKWxJek", now, "{\"test\": 2432232314}").Split(' ');
        Assert.Equal(2, both.Length);
        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", both[1]);
        Assert.Single(sender.Sign(rotated, "msg_p5jXN8AQM9LWM0D4loKWxJek", now.AddMinutes(2), "{}").Split(' '));
    }

    [Fact]
    public async Task A_url_that_resolves_to_loopback_is_refused_again_at_delivery_before_connecting()
    {
        // The name is resolved and checked where the delivery connects, not only when it was registered
        // (so a name that later resolves to a private address, DNS rebinding, is refused too).
        await using var receiver = await WebhookReceiver.StartAsync();
        var sender = Sender(allowPrivate: false);
        foreach (var url in new[] { $"https://localhost:{receiver.Port}/hook", $"https://127.0.0.1:{receiver.Port}/hook", $"http://localhost:{receiver.Port}/hook" })
        {
            var result = await sender.SendAsync(Delivery(url), CancellationToken.None);
            Assert.False(result.Succeeded);
            Assert.StartsWith("Refused by the SSRF guard", result.Error, StringComparison.Ordinal);
        }

        Assert.Empty(receiver.Received);

        // Allowed, it reaches the receiver; the control plane's own port is refused even then.
        var open = Sender(allowPrivate: true);
        Assert.True((await open.SendAsync(Delivery($"http://127.0.0.1:{receiver.Port}/hook"), CancellationToken.None)).Succeeded);
        Assert.Single(receiver.Received);
        var self = await open.SendAsync(Delivery($"http://127.0.0.1:{new TenantryOptions().Ports.ControlPlane}/v1/tenants"), CancellationToken.None);
        Assert.Contains("the control plane itself", self.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tenant.*", "tenant.activated", true)]
    [InlineData("*", "invoice.finalized", true)]
    [InlineData("*.failed", "operation.failed", true)]
    [InlineData("*.failed", "tenant.failed", true)]
    [InlineData("tenant.*", "operation.succeeded", false)]
    [InlineData("tenant.activated", "tenant.activated", true)]
    [InlineData("tenant.activated", "tenant.activatedx", false)]
    [InlineData("t*d", "tenant.suspended", true)]
    public void Filters_match_types_with_wildcards(string filter, string type, bool matches) =>
        Assert.Equal(matches, EventCatalog.Matches(filter, type));

    private static WebhookSender Sender(bool allowPrivate)
    {
        var options = Options.Create(new WebhookOptions { AllowPrivateNetworks = allowPrivate, Timeout = TimeSpan.FromSeconds(5) });
        return new WebhookSender(new WebhookUrlGuard(options, Options.Create(new TenantryOptions())), Secrets, options, TimeProvider.System);
    }

    private static Webhook Webhook(string secret, string url = "https://hooks.example.com/x")
    {
        var id = Guid.NewGuid().ToString();
        return new Webhook
        {
            Id = id, Url = url, Events = ["*"], ProtectedSecret = Secrets.Protect(id, secret), Enabled = true, FromSequence = 0,
            CreatedBy = "test", CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow,
        };
    }

    private static ClaimedDelivery Delivery(string url) => new(
        Guid.NewGuid().ToString(),
        Webhook(WebhookSecrets.NewSecret(), url),
        new StoredEvent(1, Guid.NewGuid().ToString(), "tenant.activated", Guid.NewGuid(), new JsonObject { ["slug"] = "acme" }, DateTimeOffset.UtcNow),
        0);
}
