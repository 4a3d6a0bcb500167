using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.Http;

namespace Tenantry.ControlPlane.Mail;

/// <summary>A mail as listed: never its body, which may hold a one-time link.</summary>
public sealed record MailResponse(
    string Id, Guid? TenantId, string Kind, string To, string Subject, string Status, int Attempts, string? Error,
    string? Transport, string? Location, DateTimeOffset CreatedAt, DateTimeOffset? SentAt);

/// <summary>The mails the control plane sent or queued (operators): the console's sent-mail list.</summary>
public static class MailsApi
{
    public static RouteGroupBuilder MapMailsApi(this RouteGroupBuilder v1)
    {
        var mails = v1.MapGroup("/mails").WithTags("Mail");
        mails.MapGet("/", List).WithSummary("Mails, newest first: kind, recipient, subject, status (pending, sent, failed), transport; ?tenantId=, ?limit=, ?cursor=.");
        mails.MapGet("/{id}", Get).WithSummary("One mail.");
        mails.MapGet("/{id}/eml", Eml).WithSummary("The .eml file of a mail written to the data dir (embedded default, no SMTP): message/rfc822.");
        return v1;
    }

    private static async Task<Results<Ok<Page<MailResponse>>, ProblemHttpResult>> List(
        string? tenantId, int? limit, string? cursor, IControlPlaneDatabase db, ITenantRegistry tenants, CancellationToken cancellationToken)
    {
        if (Paging.CheckLimit(limit, out var take) is { } bad)
        {
            return bad.ToResult();
        }

        if (Paging.CheckSequenceCursor(cursor, out var before) is { } badCursor)
        {
            return badCursor.ToResult();
        }

        var rows = await db.ReadAsync<List<MailRecord>?>(
            async c =>
            {
                Guid? tenant = null;
                if (tenantId is not null)
                {
                    if (await tenants.FindAsync(c, null, tenantId) is not { } found)
                    {
                        return null;
                    }

                    tenant = found.Id;
                }

                return await MailOutbox.ListAsync(c, tenant, before, take + 1);
            },
            cancellationToken);
        if (rows is null)
        {
            return ApiError.NotFound($"Tenant '{tenantId}'").ToResult();
        }

        var next = rows.Count > take ? Paging.Encode(rows[take - 1].Sequence.ToString(CultureInfo.InvariantCulture)) : null;
        return TypedResults.Ok(new Page<MailResponse>([.. rows.Take(take).Select(Response)], next));
    }

    private static async Task<Results<Ok<MailResponse>, ProblemHttpResult>> Get(string id, IControlPlaneDatabase db, CancellationToken cancellationToken) =>
        await db.ReadAsync(c => MailOutbox.GetAsync(c, id), cancellationToken) is { } mail
            ? TypedResults.Ok(Response(mail))
            : ApiError.NotFound($"Mail '{id}'").ToResult();

    private static async Task<Results<PhysicalFileHttpResult, ProblemHttpResult>> Eml(string id, IControlPlaneDatabase db, IMailTransport transport, CancellationToken cancellationToken)
    {
        var mail = await db.ReadAsync(c => MailOutbox.GetAsync(c, id), cancellationToken);
        return mail is { Transport: "file" } && transport is EmlFileTransport files && files.PathOf(mail.Location) is { } path
            ? TypedResults.PhysicalFile(path, "message/rfc822", mail.Location)
            : ApiError.NotFound($"The .eml file of mail '{id}'").ToResult();
    }

    private static MailResponse Response(MailRecord m) =>
        new(m.Id, m.TenantId, m.Kind, m.To, m.Subject, m.Status, m.Attempts, m.Error, m.Transport, m.Location, m.CreatedAt, m.SentAt);
}
