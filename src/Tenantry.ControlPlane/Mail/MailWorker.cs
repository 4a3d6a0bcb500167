using System.Globalization;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Mail;

/// <summary>Where mails go: an SMTP server, or <c>.eml</c> files in the data dir.</summary>
internal interface IMailTransport
{
    /// <summary><c>smtp</c> or <c>file</c>.</summary>
    string Name { get; }

    /// <summary>Sends <paramref name="message"/>; returns where it went (the server's reply, or the file's name).</summary>
    Task<string> SendAsync(MimeMessage message, CancellationToken cancellationToken);
}

/// <summary>SMTP through MailKit: one connection per batch of mails, TLS as <c>Tenantry:Mail:Smtp:UseTls</c> says.</summary>
internal sealed class SmtpMailTransport(IOptions<MailOptions> options) : IMailTransport
{
    public string Name => "smtp";

    public async Task<string> SendAsync(MimeMessage message, CancellationToken cancellationToken)
    {
        var smtp = options.Value.Smtp;
        using var client = new SmtpClient();
        var security = !smtp.UseTls ? SecureSocketOptions.None : smtp.Port == 465 ? SecureSocketOptions.SslOnConnect : SecureSocketOptions.StartTls;
        await client.ConnectAsync(smtp.Host!.Trim(), smtp.Port, security, cancellationToken);
        if (!string.IsNullOrEmpty(smtp.User))
        {
            await client.AuthenticateAsync(smtp.User, smtp.Password ?? "", cancellationToken);
        }

        var reply = await client.SendAsync(message, cancellationToken);
        await client.DisconnectAsync(quit: true, cancellationToken);
        return $"{smtp.Host}:{smtp.Port.ToString(CultureInfo.InvariantCulture)} {reply}".Trim();
    }
}

/// <summary>
/// The embedded default: each mail is an <c>.eml</c> file under <c>{DataDir}/mail/</c> (owner-only, as it
/// may hold a one-time link), written whole or not at all.
/// </summary>
internal sealed class EmlFileTransport(IOptions<TenantryOptions> tenantry) : IMailTransport
{
    public string Name => "file";

    public string Folder => Path.Combine(tenantry.Value.DataPath, "mail");

    public async Task<string> SendAsync(MimeMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(Folder);
        }
        else
        {
            Directory.CreateDirectory(Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var name = $"{message.Date.UtcDateTime.ToString("yyyyMMdd'T'HHmmss", CultureInfo.InvariantCulture)}-{(message.MessageId ?? Guid.NewGuid().ToString("N")).Split('@')[0]}.eml";
        var path = Path.Combine(Folder, name);
        var temp = path + ".tmp";
        var create = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        await using (var stream = new FileStream(temp, create))
        {
            await message.WriteToAsync(stream, cancellationToken);
            await stream.FlushAsync(cancellationToken);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        return name;
    }

    /// <summary>The path of a mail's file, when <paramref name="name"/> is one of this folder's.</summary>
    public string? PathOf(string? name) =>
        name is { Length: > 0 } && name == Path.GetFileName(name) && name.EndsWith(".eml", StringComparison.Ordinal) && File.Exists(Path.Combine(Folder, name))
            ? Path.Combine(Folder, name)
            : null;
}

/// <summary>
/// Sends the mail queue, at least once: takes due mails with a lease, sends each, records it sent (its
/// body dropped) or schedules another attempt (30 s doubling to an hour, 12 attempts, about a day).
/// Woken when a mail is queued in this process; polls every second for the rest.
/// </summary>
internal sealed partial class MailWorker(
    IControlPlaneDatabase db, MailSignals signals, IMailTransport transport, IOptions<MailOptions> options, TimeProvider time, ILogger<MailWorker> logger) : BackgroundService
{
    public const int MaxAttempts = 12;
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);
    private readonly string _node = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid():N}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        var failures = 0;
        try
        {
            await db.WriteAsync((c, tx) => MailOutbox.ReleaseAsync(c, tx, db.Engine == "sqlite" ? null : _node), stoppingToken);
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    while (await SendDueAsync(stoppingToken) > 0)
                    {
                    }

                    failures = 0;
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    failures++;
                    Log.PassFailed(logger, failures, ex);
                }

                await signals.WaitAsync(LoopBackOff.After(Poll, failures), stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task<int> SendDueAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var due = await db.WriteAsync((c, tx) => MailOutbox.ClaimAsync(c, tx, _node, now, now + TimeSpan.FromMinutes(5), 20), ct);
        foreach (var mail in due)
        {
            string? location = null;
            string? error = null;
            try
            {
                location = await transport.SendAsync(Message(mail), ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                error = $"{ex.GetType().Name}: {ex.Message}";
            }

            var at = time.GetUtcNow();
            if (error is null)
            {
                await db.WriteAsync((c, tx) => MailOutbox.SentAsync(c, tx, mail.Id, transport.Name, location!, at), CancellationToken.None);
                Log.Sent(logger, mail.TenantId, mail.Id, mail.Kind, transport.Name);
            }
            else
            {
                var attempts = mail.Attempts + 1;
                DateTimeOffset? next = attempts >= MaxAttempts ? null : at + TimeSpan.FromSeconds(Math.Min(3600, 30 * Math.Pow(2, attempts - 1)));
                await db.WriteAsync((c, tx) => MailOutbox.FailedAsync(c, tx, mail.Id, error, next), CancellationToken.None);
                Log.SendFailed(logger, mail.TenantId, mail.Id, attempts, error);
            }
        }

        return due.Count;
    }

    private MimeMessage Message(PendingMail mail)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(options.Value.Smtp.From));
        message.To.Add(MailboxAddress.Parse(mail.To));
        message.Subject = mail.Subject;
        // The same id on every attempt, so a mail sent twice (a crash before it was recorded) is recognisably one.
        message.MessageId = $"{mail.Id}@tenantry";
        message.Date = mail.CreatedAt;
        if (mail.TenantId is { } tenant)
        {
            message.Headers.Add("X-Tenantry-Tenant", tenant.ToString());
        }

        message.Headers.Add("X-Tenantry-Mail", mail.Kind);
        var body = new TextPart("plain") { Text = mail.Body };
        // Plain 7-bit where the text allows it (links stay whole in the file), quoted-printable otherwise.
        body.ContentTransferEncoding = body.GetBestEncoding(EncodingConstraint.SevenBit, 998);
        message.Body = body;
        return message;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Mail {MailId} ({Kind}) for tenant {TenantId} sent ({Transport})")]
        public static partial void Sent(ILogger logger, Guid? tenantId, string mailId, string kind, string transport);

        [LoggerMessage(2, LogLevel.Warning, "Mail {MailId} for tenant {TenantId} not sent (attempt {Attempt}): {Error}")]
        public static partial void SendFailed(ILogger logger, Guid? tenantId, string mailId, int attempt, string error);

        [LoggerMessage(3, LogLevel.Error, "Sending mails failed ({Failures} in a row); it goes on after a pause")]
        public static partial void PassFailed(ILogger logger, int failures, Exception exception);
    }
}
