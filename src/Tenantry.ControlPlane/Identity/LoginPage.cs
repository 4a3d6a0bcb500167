using System.Globalization;
using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// The authorization endpoint's own page (<c>/connect/authorize</c>, after OpenIddict has checked the
/// client, redirect URI and PKCE parameters): a server-rendered sign-in form with no external assets.
/// GET shows it; POST checks the antiforgery token and the password, then lets OpenIddict issue a
/// single-use code to the redirect URI. A wrong password shows the form again and issues nothing.
/// </summary>
internal static class LoginPage
{
    /// <summary>The form's own fields: never carried over as authorization request parameters.</summary>
    private static readonly HashSet<string> FormFields = new(StringComparer.Ordinal) { "tenant", "email", "password", "__RequestVerificationToken" };

    public static async Task<IResult> AuthorizeAsync(HttpContext http, IAntiforgery antiforgery, TenantSignIn signIn, Billing.Usage.BuiltInUsageBuffer usage, TimeProvider time)
    {
        var request = http.GetOpenIddictServerRequest()
            ?? throw new InvalidOperationException("The OpenIddict server request is missing.");
        if (request.HasPromptValue("none"))
        {
            // No session to reuse: the client must show the page (OIDC Core §3.1.2.6).
            return Results.Forbid(
                new AuthenticationProperties(new Dictionary<string, string?>
                {
                    [OpenIddictServerAspNetCoreConstants.Properties.Error] = OpenIddictConstants.Errors.LoginRequired,
                    [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = "The user must sign in.",
                }),
                [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
        }

        if (!HttpMethods.IsPost(http.Request.Method))
        {
            return Render(http, antiforgery, request, tenant: null, email: null, error: null, StatusCodes.Status200OK);
        }

        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        var tenant = Field(form, "tenant", 100);
        var email = Field(form, "email", 254);
        if (!await antiforgery.IsRequestValidAsync(http))
        {
            return Render(http, antiforgery, request, tenant, email, "The form expired. Please sign in again.", StatusCodes.Status400BadRequest);
        }

        var password = form["password"].ToString();
        var attempt = await signIn.SignInAsync(http, string.IsNullOrEmpty(tenant) ? null : tenant, TenantUserStore.NormalizeEmail(email), password, "sign-in-form");
        if (attempt.RetryAfter is { } wait)
        {
            var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
            http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            return Render(http, antiforgery, request, tenant, email, $"Too many failed sign-ins from this address. Try again in {Wait(seconds)}.", StatusCodes.Status429TooManyRequests);
        }

        if (!attempt.Succeeded)
        {
            // A locked account shows the same message as a wrong password (no user enumeration).
            return Render(http, antiforgery, request, tenant, email, "The e-mail, password or tenant is not valid, or the tenant is not active.", StatusCodes.Status200OK);
        }

        var found = attempt.Result!;
        var identity = IdentityApi.UserIdentity(found.User!, found.Tenant!, request.GetScopes());
        IdentityApi.RecordLogin(usage, time, found.User!, found.Tenant!);
        return Results.SignIn(new ClaimsPrincipal(identity), properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    private static string Wait(int seconds) => seconds < 120
        ? string.Create(CultureInfo.InvariantCulture, $"{seconds} seconds")
        : string.Create(CultureInfo.InvariantCulture, $"{(seconds + 59) / 60} minutes");

    private static string? Field(IFormCollection form, string name, int maxLength)
    {
        var value = form[name].ToString().Trim();
        return value.Length == 0 ? null : value[..Math.Min(value.Length, maxLength)];
    }

    private static IResult Render(HttpContext http, IAntiforgery antiforgery, OpenIddictRequest request, string? tenant, string? email, string? error, int status)
    {
        var headers = http.Response.Headers;
        // The page may not be framed (clickjacking), cached, or load anything from elsewhere.
        headers.XFrameOptions = "DENY";
        headers.ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";
        headers.CacheControl = "no-store";
        headers["Referrer-Policy"] = "no-referrer";
        var tokens = antiforgery.GetAndStoreTokens(http);

        var html = new StringBuilder();
        html.Append("""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Sign in · Tenantry</title>
            <style>
            body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
            form{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;width:20rem}
            h1{font-size:1.25rem;margin:0 0 1rem}label{display:block;margin:.75rem 0 .25rem;font-size:.9rem}
            input{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #bbb;border-radius:4px}
            button{margin-top:1.25rem;width:100%;padding:.6rem;border:0;border-radius:4px;background:#2456c8;color:#fff;font-size:1rem}
            .error{color:#a4161a;background:#fde8e8;padding:.5rem;border-radius:4px;font-size:.9rem}
            </style></head><body>
            <form method="post" action="/connect/authorize">
            <h1>Sign in</h1>
            """);
        html.Append("<p>to <strong>").Append(Encode(request.ClientId)).Append("</strong></p>\n");
        if (error is not null)
        {
            html.Append("<p class=\"error\" role=\"alert\">").Append(Encode(error)).Append("</p>\n");
        }

        foreach (var (name, value) in request.GetParameters())
        {
            if (!FormFields.Contains(name))
            {
                html.Append("<input type=\"hidden\" name=\"").Append(Encode(name)).Append("\" value=\"").Append(Encode(value.ToString())).Append("\">\n");
            }
        }

        html.Append("<input type=\"hidden\" name=\"").Append(Encode(tokens.FormFieldName)).Append("\" value=\"").Append(Encode(tokens.RequestToken)).Append("\">\n");
        html.Append("<label for=\"tenant\">Tenant</label><input id=\"tenant\" name=\"tenant\" autocomplete=\"organization\" value=\"").Append(Encode(tenant)).Append("\">\n");
        html.Append("<label for=\"email\">E-mail</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required value=\"").Append(Encode(email)).Append("\">\n");
        html.Append("<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n");
        html.Append("<button type=\"submit\">Sign in</button>\n</form></body></html>\n");
        return Results.Content(html.ToString(), "text/html; charset=utf-8", Encoding.UTF8, status);
    }

    private static string Encode(string? value) => System.Net.WebUtility.HtmlEncode(value ?? "");
}
