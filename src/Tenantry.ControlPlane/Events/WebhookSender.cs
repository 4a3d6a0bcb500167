using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;
using StandardWebhooks;

namespace Tenantry.ControlPlane.Events;

/// <summary>
/// Webhook secrets: <c>whsec_</c> and the base64 of 24 random bytes, shown once, kept encrypted with
/// ASP.NET Data Protection and bound to their endpoint (a ciphertext copied onto another row does not decrypt).
/// </summary>
internal sealed class WebhookSecrets(IDataProtectionProvider protection)
{
    public const string Prefix = "whsec_";
    private readonly IDataProtector _protector = protection.CreateProtector("Tenantry.Webhooks.Secrets.v1");
    private readonly ConcurrentDictionary<string, byte[]> _keys = new(StringComparer.Ordinal);

    public static string NewSecret() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));

    public string Protect(string webhookId, string secret) => _protector.CreateProtector(webhookId).Protect(secret);

    /// <summary>The signing key of a stored secret: the base64-decoded part after <c>whsec_</c>.</summary>
    public byte[] Key(string webhookId, string protectedSecret) => _keys.GetOrAdd(
        webhookId + "\n" + protectedSecret,
        _ => Convert.FromBase64String(_protector.CreateProtector(webhookId).Unprotect(protectedSecret)[Prefix.Length..]));
}

/// <summary>
/// Sends one delivery: the event as a CloudEvents JSON body, signed per the Standard Webhooks spec
/// (<c>webhook-id</c> = the event's id on every attempt, <c>webhook-timestamp</c>, <c>webhook-signature</c>
/// = <c>v1,</c> base64 HMAC-SHA256 of <c>{id}.{timestamp}.{body}</c>, one signature per valid secret),
/// over a connection the SSRF guard has checked. 2xx is a success; anything else, a timeout or a
/// refused address is a failure that is retried.
/// </summary>
internal sealed class WebhookSender : IDisposable
{
    public const int ExcerptBytes = 1024;
    private readonly HttpClient _http;
    private readonly WebhookSecrets _secrets;
    private readonly WebhookUrlGuard _guard;
    private readonly TimeProvider _time;

    public WebhookSender(WebhookUrlGuard guard, WebhookSecrets secrets, IOptions<WebhookOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        (_guard, _secrets, _time) = (guard, secrets, time);
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = guard.ConnectAsync,
            ConnectTimeout = options.Value.Timeout,
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            MaxConnectionsPerServer = options.Value.MaxConcurrency,
        };
        _http = new HttpClient(handler) { Timeout = options.Value.Timeout };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("Tenantry-Webhooks", "1.0"));
    }

    public async Task<AttemptResult> SendAsync(ClaimedDelivery delivery, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        var at = _time.GetUtcNow();
        var started = Stopwatch.GetTimestamp();
        int Elapsed() => (int)Math.Min(int.MaxValue, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        var webhook = delivery.Webhook;
        if (_guard.CheckForm(webhook.Url, out var uri) is { } formProblem)
        {
            return new AttemptResult(delivery, at, false, null, Elapsed(), "Refused by the SSRF guard: " + formProblem, null);
        }

        var body = delivery.Event.CloudEventJson;
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Content.Headers.ContentType!.CharSet = null;
        request.Headers.TryAddWithoutValidation("webhook-id", delivery.Event.Id);
        request.Headers.TryAddWithoutValidation("webhook-timestamp", at.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("webhook-signature", Sign(webhook, delivery.Event.Id, at, body));
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            var excerpt = await ExcerptAsync(response, cancellationToken);
            var code = (int)response.StatusCode;
            var ok = code is >= 200 and < 300;
            return new AttemptResult(delivery, at, ok, code, Elapsed(), ok ? null : $"The endpoint answered {code}.", excerpt);
        }
        catch (HttpRequestException ex) when (Refusal(ex) is { } refused)
        {
            return new AttemptResult(delivery, at, false, null, Elapsed(), "Refused by the SSRF guard: " + refused.Message, null);
        }
        catch (HttpRequestException ex)
        {
            return new AttemptResult(delivery, at, false, null, Elapsed(), Trim($"{ex.HttpRequestError}: {(ex.InnerException ?? ex).Message}"), null);
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new AttemptResult(delivery, at, false, null, Elapsed(), $"No answer within {_http.Timeout.TotalSeconds:0.###} s.", null);
        }
    }

    /// <summary>The <c>webhook-signature</c> header: with the current secret, and with the previous one while it is still valid.</summary>
    public string Sign(Webhook webhook, string messageId, DateTimeOffset timestamp, string body)
    {
        ArgumentNullException.ThrowIfNull(webhook);
        var signature = new StandardWebhook(_secrets.Key(webhook.Id, webhook.ProtectedSecret)).Sign(messageId, timestamp, body);
        if (webhook.PreviousSecret is { } previous && webhook.PreviousSecretUntil > timestamp)
        {
            signature += " " + new StandardWebhook(_secrets.Key(webhook.Id, previous)).Sign(messageId, timestamp, body);
        }

        return signature;
    }

    private static WebhookUrlRefusedException? Refusal(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is WebhookUrlRefusedException refused)
            {
                return refused;
            }
        }

        return null;
    }

    /// <summary>The first <see cref="ExcerptBytes"/> bytes of the response, as text.</summary>
    private static async Task<string?> ExcerptAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[ExcerptBytes];
        var read = 0;
        while (read < buffer.Length && await stream.ReadAsync(buffer.AsMemory(read), cancellationToken) is var n and > 0)
        {
            read += n;
        }

        if (read == 0)
        {
            return null;
        }

        return Encoding.UTF8.GetString(buffer, 0, read);
    }

    private static string Trim(string text) => text.Length > 500 ? text[..500] : text;

    public void Dispose() => _http.Dispose();
}
