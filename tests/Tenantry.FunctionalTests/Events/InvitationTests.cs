using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Events;

/// <summary>A host on the embedded mail default (.eml files) whose clock a test can move.</summary>
public sealed class InvitationFactory : IDisposable
{
    public InvitationFactory()
    {
        Host.Time = Clock;
        Host.Settings["Tenantry:Identity:InvitationLifetime"] = "00:30:00";
    }

    public ShiftedTime Clock { get; } = new();

    public TenantryFactory Host { get; } = new();

    public void Dispose() => Host.Dispose();
}

/// <summary>The welcome mail, its one-time invitation link, and tenant admins inviting their own users.</summary>
public sealed partial class InvitationTests(InvitationFactory fixture) : IClassFixture<InvitationFactory>
{
    private TenantryFactory Factory => fixture.Host;

    [GeneratedRegex(@"https?://\S+/invite/(?<token>[A-Za-z0-9_\-]+)")]
    private static partial Regex InviteLink();

    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"(?<token>[^\"]+)\"")]
    private static partial Regex AntiforgeryField();

    [Fact]
    public async Task The_welcome_mail_lets_the_admin_choose_a_password_once_and_sign_in_without_an_operator()
    {
        using var client = await Factory.OperatorAsync();
        var tenant = await client.CreateActiveTenantAsync("welcome-co");

        var mail = await SentMailAsync(client, tenant, "welcome");
        Assert.Equal("admin@welcome-co.test", mail.GetProperty("to").GetString());
        Assert.Equal("file", mail.GetProperty("transport").GetString());
        Assert.Contains("Tenant welcome-co", mail.GetProperty("subject").GetString(), StringComparison.Ordinal);
        var eml = await File.ReadAllTextAsync(Path.Combine(Factory.DataDir, "mail", mail.GetProperty("location").GetString()!));
        Assert.Contains("To: admin@welcome-co.test", eml, StringComparison.Ordinal);
        Assert.Contains("The workspace of Tenant welcome-co (welcome-co) is ready", eml, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(Factory.DataDir, "mail", mail.GetProperty("location").GetString()!)));
        }

        using (var download = await client.GetAsync(new Uri($"/v1/mails/{mail.GetProperty("id").GetString()}/eml", UriKind.Relative)))
        {
            Assert.Equal("message/rfc822", download.Content.Headers.ContentType?.MediaType);
            Assert.Equal(eml, await download.Content.ReadAsStringAsync());
        }

        var token = InviteLink().Match(eml).Groups["token"].Value;
        Assert.False(string.IsNullOrEmpty(token), eml);
        Assert.Equal("invited", (await client.GetJsonAsync($"/v1/tenants/{tenant}/users")).GetProperty("items")[0].GetProperty("status").GetString());

        var browser = Factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        await SetPasswordAsync(browser, token, "a long enough secret 1");
        Assert.Equal("active", (await client.GetJsonAsync($"/v1/tenants/{tenant}/users")).GetProperty("items")[0].GetProperty("status").GetString());
        Assert.NotNull(await LoginAsync("admin@welcome-co.test", "a long enough secret 1", "welcome-co"));

        // The link works once: the page and a replayed form are both refused.
        using (var again = await browser.GetAsync(new Uri($"/invite/{token}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Gone, again.StatusCode);
        }

        using (var replay = await browser.PostAsync(new Uri($"/invite/{token}", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["password"] = "another long secret 2", ["confirm"] = "another long secret 2",
        })))
        {
            Assert.Equal(HttpStatusCode.Gone, replay.StatusCode);
        }

        Assert.Null(await LoginAsync("admin@welcome-co.test", "another long secret 2", "welcome-co"));
        using var unknown = await browser.GetAsync(new Uri("/invite/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Gone, unknown.StatusCode);
    }

    [Fact]
    public async Task The_invitation_form_refuses_a_post_without_its_antiforgery_token_and_weak_passwords()
    {
        using var client = await Factory.OperatorAsync();
        var tenant = await client.CreateActiveTenantAsync("csrf-co");
        var token = await LinkTokenAsync(client, tenant, "welcome");
        var browser = Factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        using (var page = await browser.GetAsync(new Uri($"/invite/{token}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
            Assert.Equal("no-referrer", page.Headers.GetValues("Referrer-Policy").Single());
            Assert.Contains("Welcome to Tenant csrf-co", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // A cross-site form (no antiforgery token, or another session's) is refused and uses nothing.
        var forger = Factory.CreateClient();
        using (var forged = await forger.PostAsync(new Uri($"/invite/{token}", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["password"] = "attacker chosen secret", ["confirm"] = "attacker chosen secret",
        })))
        {
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        }

        using (var weak = await PostFormAsync(browser, token, "short", "short"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, weak.StatusCode);
            Assert.Contains("12 to 128 characters", await weak.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var mismatch = await PostFormAsync(browser, token, "a long enough secret 1", "a long enough secret 2"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, mismatch.StatusCode);
        }

        Assert.Null(await LoginAsync("admin@csrf-co.test", "attacker chosen secret", "csrf-co"));
        await SetPasswordAsync(browser, token, "the admin's own secret");
        Assert.NotNull(await LoginAsync("admin@csrf-co.test", "the admin's own secret", "csrf-co"));
    }

    [Fact]
    public async Task An_expired_invitation_link_is_refused()
    {
        using var client = await Factory.OperatorAsync();
        var tenant = await client.CreateActiveTenantAsync("late-co");
        var token = await LinkTokenAsync(client, tenant, "welcome");
        var browser = Factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        try
        {
            fixture.Clock.Offset = TimeSpan.FromMinutes(31);
            using var page = await browser.GetAsync(new Uri($"/invite/{token}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Gone, page.StatusCode);
        }
        finally
        {
            fixture.Clock.Offset = TimeSpan.Zero;
        }
    }

    [Fact]
    public async Task A_tenant_admin_invites_its_own_users_by_mail_only_and_never_into_another_tenant()
    {
        using var client = await Factory.OperatorAsync();
        var own = await client.CreateActiveTenantAsync("inviter-co");
        var other = await client.CreateActiveTenantAsync("other-co");
        var browser = Factory.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { HandleCookies = true });
        await SetPasswordAsync(browser, await LinkTokenAsync(client, own, "welcome"), "inviter admin secret");
        using var admin = Factory.CreateClient();
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await LoginAsync("admin@inviter-co.test", "inviter admin secret", "inviter-co"));

        // Into another tenant, by id or slug: refused and audited; nothing is created there.
        foreach (var target in new[] { other, "other-co" })
        {
            using var foreign = await admin.PostAsJsonAsync($"/v1/tenants/{target}/users", new { email = "mole@other-co.test", role = "admin" });
            Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
        }

        Assert.DoesNotContain((await client.GetJsonAsync($"/v1/tenants/{other}/users")).GetProperty("items").EnumerateArray(), u => u.GetProperty("email").GetString() == "mole@other-co.test");
        Assert.Contains((await client.GetJsonAsync($"/v1/audit?tenantId={own}&limit=200")).GetProperty("items").EnumerateArray(),
            e => e.GetProperty("action").GetString() == "tenant.user.invited" && e.GetProperty("outcome").GetString() == "denied");

        // A password in the answer would let the admin sign in as someone else's mailbox.
        using (var withPassword = await admin.PostAsJsonAsync($"/v1/tenants/{own}/users", new { email = "new@inviter-co.test", role = "member", delivery = "password" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, withPassword.StatusCode);
        }

        using (var invited = await admin.PostAsJsonAsync($"/v1/tenants/{own}/users", new { email = "new@inviter-co.test", role = "member" }))
        {
            Assert.Equal(HttpStatusCode.Created, invited.StatusCode);
            var body = await invited.JsonAsync();
            Assert.Equal("mail", body.GetProperty("delivery").GetString());
            Assert.False(body.TryGetProperty("initialPassword", out _));
        }

        var mail = await SentMailAsync(client, own, "invitation");
        Assert.Equal("new@inviter-co.test", mail.GetProperty("to").GetString());
        Assert.Contains("Tenant inviter-co", mail.GetProperty("subject").GetString(), StringComparison.Ordinal);
        var memberToken = await LinkTokenAsync(client, own, "invitation");

        // A newer invitation of the same user replaces the older link.
        using (var again = await admin.PostAsJsonAsync($"/v1/tenants/{own}/users", new { email = "new@inviter-co.test", role = "member" }))
        {
            Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        }

        await WaitForMailsAsync(client, own, "invitation", 2);
        using (var stale = await browser.GetAsync(new Uri($"/invite/{memberToken}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Gone, stale.StatusCode);
        }

        await SetPasswordAsync(browser, await LinkTokenAsync(client, own, "invitation"), "the member's own secret");
        var memberLogin = await LoginAsync("new@inviter-co.test", "the member's own secret", "inviter-co");
        Assert.NotNull(memberLogin);

        // A member does not invite.
        using var member = Factory.CreateClient();
        member.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", memberLogin);
        using var byMember = await member.PostAsJsonAsync($"/v1/tenants/{own}/users", new { email = "third@inviter-co.test" });
        Assert.Equal(HttpStatusCode.Forbidden, byMember.StatusCode);

        // An operator may mail an invitation too.
        using var byOperator = await client.PostAsJsonAsync($"/v1/tenants/{other}/users", new { email = "ops@other-co.test", role = "admin", delivery = "mail" });
        Assert.Equal(HttpStatusCode.Created, byOperator.StatusCode);
        using var badDelivery = await client.PostAsJsonAsync($"/v1/tenants/{other}/users", new { email = "ops2@other-co.test", delivery = "pigeon" });
        Assert.Equal(HttpStatusCode.BadRequest, badDelivery.StatusCode);
    }

    /// <summary>Sets the password through the invitation page as a browser does: GET the form, POST it back with its antiforgery token.</summary>
    internal static async Task SetPasswordAsync(HttpClient browser, string token, string password)
    {
        using var done = await PostFormAsync(browser, token, password, password);
        var html = await done.Content.ReadAsStringAsync();
        Assert.True(done.StatusCode == HttpStatusCode.OK && html.Contains("Your password is set", StringComparison.Ordinal), $"{(int)done.StatusCode}: {html}");
    }

    private static async Task<HttpResponseMessage> PostFormAsync(HttpClient browser, string token, string password, string confirm)
    {
        using var page = await browser.GetAsync(new Uri($"/invite/{token}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var field = AntiforgeryField().Match(await page.Content.ReadAsStringAsync()).Groups["token"].Value;
        return await browser.PostAsync(new Uri($"/invite/{token}", UriKind.Relative), new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = WebUtility.HtmlDecode(field), ["password"] = password, ["confirm"] = confirm,
        }));
    }

    /// <summary>The newest sent mail of a kind for the tenant.</summary>
    private static async Task<JsonElement> SentMailAsync(HttpClient client, string tenant, string kind) =>
        (await WaitForMailsAsync(client, tenant, kind, 1))[0];

    private static async Task<List<JsonElement>> WaitForMailsAsync(HttpClient client, string tenant, string kind, int count)
    {
        List<JsonElement> sent = [];
        for (var i = 0; i < 200; i++)
        {
            sent = [.. (await client.GetJsonAsync($"/v1/mails?tenantId={tenant}")).GetProperty("items").EnumerateArray()
                .Where(m => m.GetProperty("kind").GetString() == kind && m.GetProperty("status").GetString() == "sent")];
            if (sent.Count >= count)
            {
                return sent;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"No {count} sent {kind} mails for {tenant}.");
        return sent;
    }

    /// <summary>The invitation token of the newest sent mail of a kind, read from its .eml file.</summary>
    private async Task<string> LinkTokenAsync(HttpClient client, string tenant, string kind)
    {
        var mail = await SentMailAsync(client, tenant, kind);
        var eml = await File.ReadAllTextAsync(Path.Combine(Factory.DataDir, "mail", mail.GetProperty("location").GetString()!));
        return InviteLink().Match(eml).Groups["token"].Value;
    }

    /// <summary>An access token from the password grant, or null when the sign-in is refused.</summary>
    private async Task<string?> LoginAsync(string email, string password, string tenant)
    {
        using var anonymous = Factory.CreateClient();
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "password", ["username"] = email, ["password"] = password, ["tenant"] = tenant,
        });
        using var response = await anonymous.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        return response.IsSuccessStatusCode ? (await response.JsonAsync()).GetProperty("access_token").GetString() : null;
    }
}
