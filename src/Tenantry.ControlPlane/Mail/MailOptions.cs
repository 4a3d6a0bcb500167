using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Mail;

/// <summary>Settings under <c>Tenantry:Mail</c>: how welcome, notice and invitation mails leave.</summary>
public sealed class MailOptions
{
    public const string Section = "Tenantry:Mail";

    /// <summary>An SMTP server; without a host, mails are written as <c>.eml</c> files under <c>{DataDir}/mail/</c>.</summary>
    public SmtpOptions Smtp { get; set; } = new();
}

public sealed class SmtpOptions
{
    /// <summary>The SMTP server's host name; empty: no SMTP, mails become <c>.eml</c> files.</summary>
    public string? Host { get; set; }

    [Range(1, 65535)]
    public int Port { get; set; } = 587;

    /// <summary>TLS required (implicit TLS on port 465, STARTTLS elsewhere); false: plain SMTP, for a relay on this host.</summary>
    public bool UseTls { get; set; } = true;

    /// <summary>User name to authenticate with; none: no authentication.</summary>
    public string? User { get; set; }

    public string? Password { get; set; }

    /// <summary>The sender of every mail (also written into <c>.eml</c> files).</summary>
    [Required]
    public string From { get; set; } = "Tenantry <tenantry@localhost>";

    public bool Enabled => !string.IsNullOrWhiteSpace(Host);
}

internal sealed class MailOptionsValidator : IValidateOptions<MailOptions>
{
    public ValidateOptionsResult Validate(string? name, MailOptions options)
    {
        var errors = new List<string>();
        if (!MimeKit.MailboxAddress.TryParse(options.Smtp.From, out _))
        {
            errors.Add($"{MailOptions.Section}:Smtp:From: '{options.Smtp.From}' is not a mail address (e.g. Tenantry <no-reply@example.com>).");
        }

        if (!string.IsNullOrEmpty(options.Smtp.User) && !options.Smtp.Enabled)
        {
            errors.Add($"{MailOptions.Section}:Smtp:User is set but {MailOptions.Section}:Smtp:Host is not.");
        }

        if (options.Smtp.Host is { Length: > 0 } host && Uri.CheckHostName(host.Trim()) == UriHostNameType.Unknown)
        {
            errors.Add($"{MailOptions.Section}:Smtp:Host: '{host}' is not a host name or address.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
