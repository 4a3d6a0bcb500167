using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using StandardWebhooks;

namespace Tenantry.Testing;

/// <summary>One webhook request as the receiver got it.</summary>
public sealed record ReceivedWebhook(string Path, string Id, string Timestamp, string Signature, string ContentType, string Body, DateTimeOffset At);

/// <summary>
/// A real HTTP receiver of webhooks on a loopback port (Kestrel): it records every request and answers
/// with the status <see cref="Answer"/> gives (200 by default). <see cref="StopAsync"/> takes it off the
/// network (connections are refused) and <see cref="StartAsync()"/> puts it back on the same port.
/// </summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private WebApplication? _app;

    private WebhookReceiver(int port) => Port = port;

    public int Port { get; private set; }

    /// <summary>Every request received, in arrival order.</summary>
    public ConcurrentQueue<ReceivedWebhook> Received { get; } = new();

    /// <summary>The status to answer a request with; 200 unless set.</summary>
    public Func<ReceivedWebhook, int> Answer { get; set; } = _ => StatusCodes.Status200OK;

    public Uri Url(string path = "/hook") => new($"http://127.0.0.1:{Port}{path}");

    public static async Task<WebhookReceiver> StartAsync(int port = 0)
    {
        var receiver = new WebhookReceiver(port);
        await receiver.StartAsync();
        return receiver;
    }

    /// <summary>Listens (again) on the receiver's port.</summary>
    public async Task StartAsync()
    {
        if (_app is not null)
        {
            return;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, Port));
        var app = builder.Build();
        app.Run(async http =>
        {
            using var reader = new StreamReader(http.Request.Body);
            var body = await reader.ReadToEndAsync(http.RequestAborted);
            var received = new ReceivedWebhook(
                http.Request.Path.Value ?? "", http.Request.Headers["webhook-id"].ToString(), http.Request.Headers["webhook-timestamp"].ToString(),
                http.Request.Headers["webhook-signature"].ToString(), http.Request.ContentType ?? "", body, DateTimeOffset.UtcNow);
            Received.Enqueue(received);
            http.Response.StatusCode = Answer(received);
            await http.Response.WriteAsync("received " + received.Id, http.RequestAborted);
        });
        await app.StartAsync();
        Port = new Uri(app.Urls.First()).Port;
        _app = app;
    }

    /// <summary>Stops listening: deliveries are refused until <see cref="StartAsync()"/>.</summary>
    public async Task StopAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>
    /// True when one of the signatures of <paramref name="received"/> (space-separated, per the Standard
    /// Webhooks spec) is valid for <paramref name="secret"/>. Each is checked on its own: the package's
    /// verifier does not reach the last of several.
    /// </summary>
    public static bool IsSigned(ReceivedWebhook received, string secret)
    {
        ArgumentNullException.ThrowIfNull(received);
        foreach (var signature in received.Signature.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var headers = new HeaderDictionary
            {
                ["webhook-id"] = received.Id,
                ["webhook-timestamp"] = received.Timestamp,
                ["webhook-signature"] = signature,
            };
            try
            {
                new StandardWebhook(secret).Verify(received.Body, headers);
                return true;
            }
            catch (StandardWebhooks.Diagnostics.WebhookVerificationException)
            {
            }
        }

        return false;
    }

    /// <summary>Waits (at most <paramref name="seconds"/>) until <paramref name="done"/> holds for what was received.</summary>
    public async Task<bool> WaitForAsync(Func<IReadOnlyCollection<ReceivedWebhook>, bool> done, int seconds = 30)
    {
        ArgumentNullException.ThrowIfNull(done);
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (done(Received.ToArray()))
            {
                return true;
            }

            await Task.Delay(25);
        }

        return done(Received.ToArray());
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
