using System.Globalization;

namespace Tenantry.ControlPlane.Mail;

/// <summary>The text of each kind of mail; every one names the tenant it is about.</summary>
public static class MailTemplates
{
    public const string Welcome = "welcome";
    public const string Invitation = "invitation";
    public const string Suspended = "suspended";
    public const string Reactivated = "reactivated";

    /// <summary>The onboarding's last step: the workspace is ready; <paramref name="link"/> sets the admin's password once.</summary>
    public static (string Subject, string Body) ForWelcome(string tenantName, string slug, string email, Uri? link, DateTimeOffset? expires) => (
        $"Welcome to Tenantry, {tenantName}",
        $"""
        Hello,

        The workspace of {tenantName} ({slug}) is ready, and you are its administrator ({email}).

        {(link is null
            ? "Your account already has a password: sign in with it."
            : $"Choose your password here (the link works once, until {Format(expires!.Value)}):\n\n{link}\n\nThen sign in as {email} with tenant {slug}.")}

        -- Tenantry
        """);

    /// <summary>A tenant user was invited by its admin or an operator.</summary>
    public static (string Subject, string Body) ForInvitation(string tenantName, string slug, string email, string role, Uri link, DateTimeOffset expires) => (
        $"You are invited to {tenantName}",
        $"""
        Hello,

        You are invited to the workspace of {tenantName} ({slug}) as {(role == "admin" ? "an administrator" : "a member")}.

        Choose your password here (the link works once, until {Format(expires)}):

        {link}

        Then sign in as {email} with tenant {slug}.

        -- Tenantry
        """);

    public static (string Subject, string Body) ForSuspended(string tenantName, string slug) => (
        $"{tenantName} has been suspended",
        $"""
        Hello,

        The workspace of {tenantName} ({slug}) has been suspended: its users and clients cannot sign in and its apps answer no requests until it is reactivated. Its data is kept.

        -- Tenantry
        """);

    public static (string Subject, string Body) ForReactivated(string tenantName, string slug) => (
        $"{tenantName} is active again",
        $"""
        Hello,

        The workspace of {tenantName} ({slug}) is active again: its users, clients and apps work as before.

        -- Tenantry
        """);

    private static string Format(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);
}
