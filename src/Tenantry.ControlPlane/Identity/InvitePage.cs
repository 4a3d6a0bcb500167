using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// <c>/invite/{token}</c>: the page an invitation mail links to. GET shows a form to choose a password
/// (antiforgery token, no external assets, not frameable, no referrer, not cached); POST checks the
/// antiforgery token and the password, then uses the invitation once: the user's password is set and
/// the user is active, so it can sign in at once. An unknown, used, superseded or expired link gets
/// the same 410 page.
/// </summary>
internal static class InvitePage
{
    public static async Task<IResult> HandleAsync(string token, HttpContext http, IAntiforgery antiforgery, InvitationStore invitations)
    {
        var invitation = await invitations.FindOpenAsync(token, http.RequestAborted);
        if (invitation is null)
        {
            return Gone(http);
        }

        if (!HttpMethods.IsPost(http.Request.Method))
        {
            return Form(http, antiforgery, token, invitation, null, StatusCodes.Status200OK);
        }

        if (!http.Request.HasFormContentType)
        {
            return Form(http, antiforgery, token, invitation, "The form was not sent. Please try again.", StatusCodes.Status400BadRequest);
        }

        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        if (!await antiforgery.IsRequestValidAsync(http))
        {
            return Form(http, antiforgery, token, invitation, "The form expired. Please choose your password again.", StatusCodes.Status400BadRequest);
        }

        var password = form["password"].ToString();
        if (InvitationStore.CheckPassword(password, form["confirm"].ToString()) is { } problem)
        {
            return Form(http, antiforgery, token, invitation, problem, StatusCodes.Status400BadRequest);
        }

        var (outcome, used) = await invitations.RedeemAsync(token, password, http.RequestAborted);
        return outcome == RedeemOutcome.PasswordSet ? Done(http, used!) : Gone(http);
    }

    private static IResult Form(HttpContext http, IAntiforgery antiforgery, string token, OpenInvitation invitation, string? error, int status)
    {
        var tokens = antiforgery.GetAndStoreTokens(http);
        var html = Start(http, "Choose your password");
        html.Append("<form method=\"post\" action=\"/invite/").Append(Encode(Uri.EscapeDataString(token))).Append("\">\n<h1>Welcome to ").Append(Encode(invitation.TenantName)).Append("</h1>\n");
        html.Append("<p>Choose the password of <strong>").Append(Encode(invitation.Email)).Append("</strong> (")
            .Append(invitation.Role == TenantRoles.Admin ? "administrator" : "member").Append(" of <strong>").Append(Encode(invitation.TenantSlug)).Append("</strong>). ")
            .Append("This link works once, until ").Append(Encode(invitation.ExpiresAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture))).Append(".</p>\n");
        if (error is not null)
        {
            html.Append("<p class=\"error\" role=\"alert\">").Append(Encode(error)).Append("</p>\n");
        }

        html.Append("<input type=\"hidden\" name=\"").Append(Encode(tokens.FormFieldName)).Append("\" value=\"").Append(Encode(tokens.RequestToken)).Append("\">\n");
        html.Append("<input type=\"hidden\" name=\"username\" autocomplete=\"username\" value=\"").Append(Encode(invitation.Email)).Append("\">\n");
        html.Append("<label for=\"password\">Password (").Append(InvitationStore.MinPasswordLength).Append(" characters or more)</label>")
            .Append("<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"").Append(InvitationStore.MinPasswordLength).Append("\">\n");
        html.Append("<label for=\"confirm\">Password again</label><input id=\"confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" required>\n");
        html.Append("<button type=\"submit\">Set password</button>\n</form></body></html>\n");
        return Results.Content(html.ToString(), "text/html; charset=utf-8", Encoding.UTF8, status);
    }

    private static IResult Done(HttpContext http, OpenInvitation invitation)
    {
        var html = Start(http, "Password set");
        html.Append("<main><h1>Your password is set</h1>\n<p>Sign in as <strong>").Append(Encode(invitation.Email)).Append("</strong> with tenant <strong>")
            .Append(Encode(invitation.TenantSlug)).Append("</strong> (").Append(Encode(invitation.TenantName)).Append(").</p>\n</main></body></html>\n");
        return Results.Content(html.ToString(), "text/html; charset=utf-8", Encoding.UTF8, StatusCodes.Status200OK);
    }

    private static IResult Gone(HttpContext http)
    {
        var html = Start(http, "Invitation not valid");
        html.Append("<main><h1>This invitation is not valid any more</h1>\n<p>The link was used already, replaced by a newer invitation, or it expired. ")
            .Append("Ask your administrator for a new invitation.</p>\n</main></body></html>\n");
        return Results.Content(html.ToString(), "text/html; charset=utf-8", Encoding.UTF8, StatusCodes.Status410Gone);
    }

    private static StringBuilder Start(HttpContext http, string title)
    {
        var headers = http.Response.Headers;
        // Not framed (clickjacking), not cached, nothing loaded from elsewhere, and the link never leaks as a referrer.
        headers.XFrameOptions = "DENY";
        headers.ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        headers.CacheControl = "no-store";
        headers["Referrer-Policy"] = "no-referrer";
        return new StringBuilder()
            .Append("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
            .Append("<title>").Append(Encode(title)).Append(" · Tenantry</title>\n")
            .Append("""
                <style>
                body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
                form,main{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;width:22rem}
                h1{font-size:1.25rem;margin:0 0 1rem}label{display:block;margin:.75rem 0 .25rem;font-size:.9rem}
                input{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #bbb;border-radius:4px}
                button{margin-top:1.25rem;width:100%;padding:.6rem;border:0;border-radius:4px;background:#2456c8;color:#fff;font-size:1rem}
                .error{color:#a4161a;background:#fde8e8;padding:.5rem;border-radius:4px;font-size:.9rem}
                </style></head><body>

                """);
    }

    private static string Encode(string? value) => System.Net.WebUtility.HtmlEncode(value ?? "");
}
