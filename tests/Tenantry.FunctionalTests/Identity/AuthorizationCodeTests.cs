using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Identity;

/// <summary>
/// Tenant users' login with the authorization code flow and PKCE (S256), as a CLI or a SPA does it,
/// over real HTTP against the real host: redirects are followed by hand, the form is parsed and posted back.
/// </summary>
[Collection(IdentityPlatformCollection.Name)]
public sealed partial class AuthorizationCodeTests(IdentityPlatformFixture platform)
{
    private const string Cli = "tenantry-cli";
    private const string CliRedirect = "http://127.0.0.1:53682/callback";

    [Fact]
    public async Task Code_with_pkce_gives_a_tenant_token_that_works_at_the_gateway()
    {
        var pkce = Pkce.New();
        using var browser = Browser();
        using var page = await browser.GetAsync(AuthorizeUri(Cli, CliRedirect, pkce.Challenge, "S256", state: "st-1"));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("name=\"password\"", html, StringComparison.Ordinal);

        using var signedIn = await PostFormAsync(browser, html, platform.Acme.Slug, $"admin@{platform.Acme.Slug}.test", platform.Acme.Password);
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        // The password does not reach the host's log.
        Assert.DoesNotContain(platform.Acme.Password, platform.Host.Output, StringComparison.Ordinal);
        var location = signedIn.Headers.Location!;
        Assert.StartsWith(CliRedirect + "?", location.ToString(), StringComparison.Ordinal);
        var query = ParseQuery(location.Query);
        Assert.Equal("st-1", query["state"]);
        var code = query["code"];

        using var token = await ExchangeAsync(Cli, code, CliRedirect, pkce.Verifier);
        Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        var accessToken = (await token.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;

        // The same claims as the password grant.
        var claims = Payload(accessToken);
        Assert.Equal(platform.Acme.Id.ToString(), claims.GetProperty("tenant_id").GetString());
        Assert.Equal("basic", claims.GetProperty("tier").GetString());
        Assert.Equal("admin", claims.GetProperty("role").GetString());
        Assert.Equal($"admin@{platform.Acme.Slug}.test", claims.GetProperty("email").GetString());

        using var gateway = platform.Acme.Client(accessToken);
        var instance = await gateway.GetFromJsonAsync<JsonElement>("/instance");
        Assert.Equal(platform.Acme.Id, instance.GetProperty("tenantId").GetGuid());
        using var orders = await gateway.PostAsJsonAsync("/orders", new { number = "CODE-1", amount = 1.5m });
        Assert.Equal(HttpStatusCode.Created, orders.StatusCode);
    }

    [Fact]
    public async Task The_id_token_of_a_code_exchange_is_refused_at_the_gateway_and_the_api()
    {
        var pkce = Pkce.New();
        var code = await CodeAsync(platform.Bravo, Cli, CliRedirect, pkce);
        using var token = await ExchangeAsync(Cli, code, CliRedirect, pkce.Verifier);
        var tokens = await token.Content.ReadFromJsonAsync<JsonElement>();
        var idToken = tokens.GetProperty("id_token").GetString()!;

        using var withAccessToken = platform.Bravo.Client(tokens.GetProperty("access_token").GetString()!);
        Assert.Equal(HttpStatusCode.OK, (await withAccessToken.GetAsync(new Uri("/orders", UriKind.Relative))).StatusCode);
        using var withIdToken = platform.Bravo.Client(idToken);
        using var refused = await withIdToken.GetAsync(new Uri("/orders", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal("https://tenantry.dev/problems/unauthorized", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());

        using var api = new HttpClient { BaseAddress = platform.Host.ControlPlane };
        api.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", idToken);
        using var objects = await api.GetAsync(new Uri($"/v1/tenants/{platform.Bravo.Id}/objects", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, objects.StatusCode);
    }

    [Fact]
    public async Task Five_wrong_passwords_on_the_form_lock_the_account_until_an_operator_unlocks_it()
    {
        var tenant = await platform.Host.OnboardAsync(platform.Operator, "formlock", "basic");
        var email = $"admin@{tenant.Slug}.test";
        using var browser = Browser();
        using var page = await browser.GetAsync(AuthorizeUri(Cli, CliRedirect, Pkce.New().Challenge, "S256", state: "s"));
        var html = await page.Content.ReadAsStringAsync();
        string? wrongAnswer = null;
        for (var i = 0; i < 5; i++)
        {
            using var wrong = await PostFormAsync(browser, html, tenant.Slug, email, "guess-" + i);
            Assert.Equal(HttpStatusCode.OK, wrong.StatusCode);
            html = await wrong.Content.ReadAsStringAsync();
            wrongAnswer ??= Alert(html);
        }

        // Locked: the right password shows the very page a wrong one does, and issues nothing.
        using var locked = await PostFormAsync(browser, html, tenant.Slug, email, tenant.Password);
        Assert.Equal(HttpStatusCode.OK, locked.StatusCode);
        Assert.Null(locked.Headers.Location);
        html = await locked.Content.ReadAsStringAsync();
        Assert.Equal(wrongAnswer, Alert(html));
        using (var http = new HttpClient { BaseAddress = platform.Host.ControlPlane })
        {
            using var grant = await TenantryHost.PasswordGrantAsync(http, email, tenant.Password, tenant.Slug);
            Assert.Equal("invalid_grant", (await grant.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString());
        }

        var users = await platform.Operator.GetFromJsonAsync<JsonElement>(new Uri($"/v1/tenants/{tenant.Id}/users", UriKind.Relative));
        Assert.NotEqual(JsonValueKind.Null, users.GetProperty("items")[0].GetProperty("lockedUntil").ValueKind);
        using var unlock = await platform.Operator.PostAsync(new Uri($"/v1/tenants/{tenant.Id}/users/{Uri.EscapeDataString(email)}/unlock", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, unlock.StatusCode);

        using var signedIn = await PostFormAsync(browser, html, tenant.Slug, email, tenant.Password);
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        var audit = await platform.Operator.GetFromJsonAsync<JsonElement>(new Uri($"/v1/audit?tenantId={tenant.Id}&limit=200", UriKind.Relative));
        var actions = audit.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("action").GetString()).ToList();
        Assert.Equal(7, actions.Count(a => a == "tenant.user.sign-in-failed")); // five guesses, then the right password on the form and the grant while locked
        Assert.Contains("tenant.user.locked-out", actions);
        Assert.Contains("tenant.user.unlocked", actions);
    }

    private static string Alert(string html) => AlertText().Match(html) is { Success: true } m ? m.Groups[1].Value : "";

    [GeneratedRegex("<p class=\"error\" role=\"alert\">([^<]*)</p>")]
    private static partial Regex AlertText();

    [Fact]
    public async Task The_discovery_document_advertises_the_code_flow_with_S256_only()
    {
        using var http = new HttpClient { BaseAddress = platform.Host.ControlPlane };
        var discovery = await http.GetFromJsonAsync<JsonElement>("/.well-known/openid-configuration");
        Assert.Equal(new Uri(platform.Host.ControlPlane, "/connect/authorize").ToString(), discovery.GetProperty("authorization_endpoint").GetString());
        Assert.Equal(["S256"], discovery.GetProperty("code_challenge_methods_supported").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("authorization_code", discovery.GetProperty("grant_types_supported").EnumerateArray().Select(e => e.GetString()));
        Assert.Contains("password", discovery.GetProperty("grant_types_supported").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["code"], discovery.GetProperty("response_types_supported").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task A_code_is_single_use()
    {
        var pkce = Pkce.New();
        var code = await CodeAsync(platform.Bravo, Cli, CliRedirect, pkce);
        using var first = await ExchangeAsync(Cli, code, CliRedirect, pkce.Verifier);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        using var again = await ExchangeAsync(Cli, code, CliRedirect, pkce.Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, again.StatusCode);
        Assert.Equal("invalid_grant", (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString());
    }

    [Fact]
    public async Task A_wrong_verifier_another_client_or_another_redirect_uri_gets_no_token()
    {
        var pkce = Pkce.New();
        var code = await CodeAsync(platform.Bravo, Cli, CliRedirect, pkce);
        using var wrongVerifier = await ExchangeAsync(Cli, code, CliRedirect, Pkce.New().Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, wrongVerifier.StatusCode);
        Assert.Equal("invalid_grant", (await wrongVerifier.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString());
        using var noVerifier = await ExchangeAsync(Cli, code, CliRedirect, verifier: null);
        Assert.Equal(HttpStatusCode.BadRequest, noVerifier.StatusCode);
        using var otherRedirect = await ExchangeAsync(Cli, code, "http://127.0.0.1:40000/callback", pkce.Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, otherRedirect.StatusCode);
        using var otherClient = await ExchangeAsync("orders-spa", code, CliRedirect, pkce.Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, otherClient.StatusCode);
        using var unknownClient = await ExchangeAsync("nobody", code, CliRedirect, pkce.Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, unknownClient.StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("plain")]
    [InlineData("S512")]
    public async Task Missing_pkce_or_a_method_other_than_S256_is_refused_without_a_redirect(string? method)
    {
        var pkce = Pkce.New();
        using var browser = Browser();
        // plain: the challenge is the verifier itself.
        var challenge = method is null ? null : method == "plain" ? pkce.Verifier : pkce.Challenge;
        using var response = await browser.GetAsync(AuthorizeUri(Cli, CliRedirect, challenge, method, state: "s"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(response.Headers.Location);
        Assert.DoesNotContain("name=\"password\"", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Cli, "http://127.0.0.1:53682/other")]
    [InlineData(Cli, "http://localhost:53682/callback")]
    [InlineData(Cli, "http://[::1]:53682/callback")]
    [InlineData(Cli, "http://127.0.0.1:53682/callback?x=1")]
    [InlineData(Cli, "https://evil.test/callback")]
    [InlineData(Cli, "http://127.0.0.1:53682/callback#x")]
    [InlineData("orders-spa", "https://spa.tenants.test/callback/../evil")]
    [InlineData("orders-spa", "https://evil.test/callback")]
    [InlineData("unknown-client", "http://127.0.0.1:53682/callback")]
    public async Task An_unregistered_redirect_uri_or_client_is_refused_without_a_redirect(string client, string redirect)
    {
        using var browser = Browser();
        using var response = await browser.GetAsync(AuthorizeUri(client, redirect, Pkce.New().Challenge, "S256", state: "s"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(response.Headers.Location);
    }

    [Fact]
    public async Task Prompt_none_gets_login_required_on_the_redirect_uri()
    {
        using var browser = Browser();
        using var response = await browser.GetAsync(new Uri(AuthorizeUri(Cli, CliRedirect, Pkce.New().Challenge, "S256", state: "pn") + "&prompt=none", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        var query = ParseQuery(response.Headers.Location!.Query);
        Assert.Equal("login_required", query["error"]);
        Assert.Equal("pn", query["state"]);
        Assert.False(query.ContainsKey("code"));
    }

    [Fact]
    public async Task A_wrong_password_shows_the_form_again_with_an_error_and_issues_nothing()
    {
        using var browser = Browser();
        using var page = await browser.GetAsync(AuthorizeUri(Cli, CliRedirect, Pkce.New().Challenge, "S256", state: "s"));
        var html = await page.Content.ReadAsStringAsync();
        foreach (var (tenant, email, password) in new[]
        {
            (platform.Acme.Slug, $"admin@{platform.Acme.Slug}.test", "wrong-password"),
            (platform.Bravo.Slug, $"admin@{platform.Acme.Slug}.test", platform.Acme.Password),
            (platform.Acme.Slug, "nobody@acme.test", platform.Acme.Password),
        })
        {
            using var again = await PostFormAsync(browser, html, tenant, email, password);
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.Null(again.Headers.Location);
            var body = await again.Content.ReadAsStringAsync();
            Assert.Contains("role=\"alert\"", body, StringComparison.Ordinal);
            Assert.Contains("name=\"password\"", body, StringComparison.Ordinal);
            Assert.DoesNotContain("code=", body, StringComparison.Ordinal);
            Assert.DoesNotContain(password, body, StringComparison.Ordinal);
            html = body;
        }

        // The form shown again still works.
        using var right = await PostFormAsync(browser, html, platform.Acme.Slug, $"admin@{platform.Acme.Slug}.test", platform.Acme.Password);
        Assert.Equal(HttpStatusCode.Redirect, right.StatusCode);
    }

    [Fact]
    public async Task A_post_without_the_antiforgery_token_issues_nothing()
    {
        using var browser = Browser();
        using var page = await browser.GetAsync(AuthorizeUri(Cli, CliRedirect, Pkce.New().Challenge, "S256", state: "s"));
        var html = await page.Content.ReadAsStringAsync();
        var fields = HiddenFields(html);
        fields.Remove("__RequestVerificationToken");
        fields["tenant"] = platform.Acme.Slug;
        fields["email"] = $"admin@{platform.Acme.Slug}.test";
        fields["password"] = platform.Acme.Password;
        using var posted = await browser.PostAsync(new Uri("/connect/authorize", UriKind.Relative), new FormUrlEncodedContent(fields));
        Assert.Equal(HttpStatusCode.BadRequest, posted.StatusCode);
        Assert.Null(posted.Headers.Location);

        // Another browser (no antiforgery cookie) replaying the page's token: refused too.
        using var other = Browser();
        using var replay = await PostFormAsync(other, html, platform.Acme.Slug, $"admin@{platform.Acme.Slug}.test", platform.Acme.Password);
        Assert.Equal(HttpStatusCode.BadRequest, replay.StatusCode);
        Assert.Null(replay.Headers.Location);
    }

    [Fact]
    public async Task A_spa_client_with_a_configured_https_redirect_gets_its_code_there()
    {
        var pkce = Pkce.New();
        const string redirect = "https://spa.tenants.test/callback";
        var code = await CodeAsync(platform.Bolt, "orders-spa", redirect, pkce);
        using var token = await ExchangeAsync("orders-spa", code, redirect, pkce.Verifier);
        Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        var claims = Payload((await token.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!);
        Assert.Equal(platform.Bolt.Id.ToString(), claims.GetProperty("tenant_id").GetString());
        Assert.Equal("standard", claims.GetProperty("tier").GetString());
    }

    [Fact]
    public async Task A_suspended_tenant_gets_no_code_and_its_earlier_code_no_token()
    {
        var tenant = await platform.Host.OnboardAsync(platform.Operator, "codesusp", "basic");
        var pkce = Pkce.New();
        var earlier = await CodeAsync(tenant, Cli, CliRedirect, pkce);

        using var suspend = await platform.Operator.PostAsync(new Uri($"/v1/tenants/{tenant.Id}/suspend", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.Accepted, suspend.StatusCode);
        await TenantryHost.WaitForStatusAsync(platform.Operator, tenant.Id.ToString(), "suspended");

        using var browser = Browser();
        using var page = await browser.GetAsync(AuthorizeUri(Cli, CliRedirect, pkce.Challenge, "S256", state: "s"));
        using var refused = await PostFormAsync(browser, await page.Content.ReadAsStringAsync(), tenant.Slug, $"admin@{tenant.Slug}.test", tenant.Password);
        Assert.Equal(HttpStatusCode.OK, refused.StatusCode);
        Assert.Null(refused.Headers.Location);

        using var exchange = await ExchangeAsync(Cli, earlier, CliRedirect, pkce.Verifier);
        Assert.Equal(HttpStatusCode.BadRequest, exchange.StatusCode);
    }

    private async Task<string> CodeAsync(TenantHandle tenant, string client, string redirect, Pkce pkce)
    {
        using var browser = Browser();
        using var page = await browser.GetAsync(AuthorizeUri(client, redirect, pkce.Challenge, "S256", state: "s"));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        using var signedIn = await PostFormAsync(browser, await page.Content.ReadAsStringAsync(), tenant.Slug, $"admin@{tenant.Slug}.test", tenant.Password);
        Assert.Equal(HttpStatusCode.Redirect, signedIn.StatusCode);
        Assert.StartsWith(redirect + "?", signedIn.Headers.Location!.ToString(), StringComparison.Ordinal);
        return ParseQuery(signedIn.Headers.Location!.Query)["code"];
    }

    private HttpClient Browser() => new(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = new CookieContainer(), UseCookies = true })
    {
        BaseAddress = platform.Host.ControlPlane,
    };

    private static Uri AuthorizeUri(string client, string redirect, string? challenge, string? method, string state)
    {
        var query = new Dictionary<string, string?>
        {
            ["response_type"] = "code",
            ["client_id"] = client,
            ["redirect_uri"] = redirect,
            ["scope"] = "openid email roles",
            ["state"] = state,
            ["code_challenge"] = challenge,
            ["code_challenge_method"] = method,
        };
        return new Uri("/connect/authorize?" + string.Join('&', query.Where(p => p.Value is not null)
            .Select(p => $"{p.Key}={Uri.EscapeDataString(p.Value!)}")), UriKind.Relative);
    }

    private static Task<HttpResponseMessage> PostFormAsync(HttpClient browser, string html, string tenant, string email, string password)
    {
        var fields = HiddenFields(html);
        fields["tenant"] = tenant;
        fields["email"] = email;
        fields["password"] = password;
        return browser.PostAsync(new Uri("/connect/authorize", UriKind.Relative), new FormUrlEncodedContent(fields));
    }

    private async Task<HttpResponseMessage> ExchangeAsync(string client, string code, string redirect, string? verifier)
    {
        using var http = new HttpClient { BaseAddress = platform.Host.ControlPlane };
        var form = new Dictionary<string, string>
        {
            ["grant_type"] = "authorization_code",
            ["client_id"] = client,
            ["code"] = code,
            ["redirect_uri"] = redirect,
        };
        if (verifier is not null)
        {
            form["code_verifier"] = verifier;
        }

        return await http.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(form));
    }

    private static Dictionary<string, string> HiddenFields(string html) =>
        HiddenInput().Matches(html).ToDictionary(m => WebUtility.HtmlDecode(m.Groups[1].Value), m => WebUtility.HtmlDecode(m.Groups[2].Value), StringComparer.Ordinal);

    private static Dictionary<string, string> ParseQuery(string query) =>
        query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .ToDictionary(p => Uri.UnescapeDataString(p[0]), p => Uri.UnescapeDataString(p.Length > 1 ? p[1] : ""), StringComparer.Ordinal);

    private static JsonElement Payload(string jwt)
    {
        var part = jwt.Split('.')[1].Replace('-', '+').Replace('_', '/');
        part = part.PadRight(part.Length + ((4 - (part.Length % 4)) % 4), '=');
        return JsonDocument.Parse(Convert.FromBase64String(part)).RootElement.Clone();
    }

    [GeneratedRegex("<input type=\"hidden\" name=\"([^\"]*)\" value=\"([^\"]*)\">")]
    private static partial Regex HiddenInput();

    private sealed record Pkce(string Verifier, string Challenge)
    {
        public static Pkce New()
        {
            var verifier = Base64Url(RandomNumberGenerator.GetBytes(32));
            return new Pkce(verifier, Base64Url(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))));
        }

        private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }
}
