using System.Text.Json.Nodes;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Identity;
using Tenantry.ControlPlane.Mail;

namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// The notify step's mails to the tenant's admin, queued in one transaction with what they carry: the
/// welcome mail with the admin's one-time invitation (while the admin has no password), and the
/// suspension and reactivation notices. The message key queues each once, so a step run again after a
/// crash neither mails twice nor issues a second invitation.
/// </summary>
internal sealed class MailNotificationProvider(
    IControlPlaneDatabase db, ITenantRegistry tenants, InvitationStore invitations, MailOutbox mails, TimeProvider time) : INotificationProvider
{
    public const string OnboardingActor = "system:onboarding";

    public Task NotifyAsync(TenantRef tenant, string messageKey, string kind, JsonObject payload, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        return db.WriteAsync(
            async (c, tx) =>
            {
                if (await MailOutbox.ExistsAsync(c, tx, messageKey) || await tenants.GetAsync(c, tx, tenant.Id) is not { } current)
                {
                    return;
                }

                var now = time.GetUtcNow();
                var email = current.AdminEmail;
                (string Subject, string Body) mail;
                switch (kind)
                {
                    case NotificationKinds.Welcome:
                        IssuedInvitation? invitation = null;
                        if (!await InvitationStore.HasPasswordAsync(c, tx, current.Id, email))
                        {
                            invitation = await invitations.IssueAsync(c, tx, current, email, TenantRoles.Admin, OnboardingActor, now);
                        }

                        mail = MailTemplates.ForWelcome(current.Name, current.Slug, email, invitation?.Link, invitation?.ExpiresAt);
                        break;
                    case NotificationKinds.Suspended:
                        mail = MailTemplates.ForSuspended(current.Name, current.Slug);
                        break;
                    case NotificationKinds.Reactivated:
                        mail = MailTemplates.ForReactivated(current.Name, current.Slug);
                        break;
                    default:
                        throw new PermanentStepException($"Unknown notification '{kind}'.");
                }

                await mails.EnqueueAsync(c, tx, new OutgoingMail(messageKey, current.Id, kind, email, mail.Subject, mail.Body), now);
            },
            cancellationToken);
    }
}
