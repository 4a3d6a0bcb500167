using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Identity;

/// <summary>Password guessing: per-account lockout and a per-address failure budget, on the password grant.</summary>
public sealed class SignInLockoutTests
{
    private const string WrongAnswer = "The user name or password is not valid, or the tenant is not active.";

    [Fact]
    public async Task Five_wrong_passwords_in_a_row_lock_the_account_against_the_right_password_until_the_lockout_ends()
    {
        var time = new ShiftedTime();
        using var factory = new TenantryFactory { Time = time };
        using var op = await factory.OperatorAsync();
        var (id, password) = await UserAsync(op, "lock-one", "user@lock-one.test");
        using var anonymous = factory.CreateClient();

        // Four failures, then a success: the success resets the count.
        for (var i = 0; i < 4; i++)
        {
            await AssertRefusedAsync(anonymous, "user@lock-one.test", "guess-" + i, "lock-one");
        }

        Assert.Equal(HttpStatusCode.OK, (await GrantAsync(anonymous, "user@lock-one.test", password, "lock-one")).StatusCode);
        for (var i = 0; i < 5; i++)
        {
            await AssertRefusedAsync(anonymous, "user@lock-one.test", "guess-" + i, "lock-one");
        }

        // Locked: the right password gets exactly the answer of a wrong one.
        await AssertRefusedAsync(anonymous, "user@lock-one.test", password, "lock-one");
        var user = await FindUserAsync(op, id, "user@lock-one.test");
        var lockedUntil = user.GetProperty("lockedUntil").GetDateTimeOffset();
        Assert.InRange(lockedUntil - time.GetUtcNow(), TimeSpan.FromMinutes(4), TimeSpan.FromMinutes(5));

        var audit = (await op.GetJsonAsync($"/v1/audit?tenantId={id}&limit=200")).GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(10, audit.Count(e => e.GetProperty("action").GetString() == "tenant.user.sign-in-failed" && e.GetProperty("outcome").GetString() == "failed"));
        var locked = Assert.Single(audit, e => e.GetProperty("action").GetString() == "tenant.user.locked-out");
        Assert.Equal("user@lock-one.test", locked.GetProperty("detail").GetProperty("email").GetString());
        Assert.DoesNotContain(audit, e => e.ToString().Contains(password, StringComparison.Ordinal) || e.ToString().Contains("guess-", StringComparison.Ordinal));

        time.Offset = TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1);
        Assert.Equal(HttpStatusCode.OK, (await GrantAsync(anonymous, "user@lock-one.test", password, "lock-one")).StatusCode);
        user = await FindUserAsync(op, id, "user@lock-one.test");
        Assert.Equal(JsonValueKind.Null, user.GetProperty("lockedUntil").ValueKind);
    }

    [Fact]
    public async Task An_operator_unlocks_a_locked_user_and_the_unlock_is_audited()
    {
        using var factory = new TenantryFactory();
        factory.Settings["Tenantry:Identity:Lockout:MaxFailedAttempts"] = "2";
        using var op = await factory.OperatorAsync();
        var (id, password) = await UserAsync(op, "lock-two", "user@lock-two.test");
        using var anonymous = factory.CreateClient();
        await AssertRefusedAsync(anonymous, "user@lock-two.test", "wrong-1", null);
        await AssertRefusedAsync(anonymous, "user@lock-two.test", "wrong-2", null);
        await AssertRefusedAsync(anonymous, "user@lock-two.test", password, null);

        using var unlocked = await op.PostAsync(new Uri($"/v1/tenants/lock-two/users/{Uri.EscapeDataString("user@lock-two.test")}/unlock", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.OK, unlocked.StatusCode);
        Assert.Equal(JsonValueKind.Null, (await unlocked.JsonAsync()).GetProperty("lockedUntil").ValueKind);
        Assert.Equal(HttpStatusCode.OK, (await GrantAsync(anonymous, "user@lock-two.test", password, null)).StatusCode);
        var audit = await op.GetJsonAsync($"/v1/audit?tenantId={id}&limit=200");
        Assert.Contains(audit.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "tenant.user.unlocked" && e.GetProperty("actor").GetString() == "operator");

        using var unknownUser = await op.PostAsync(new Uri("/v1/tenants/lock-two/users/nobody@lock-two.test/unlock", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.NotFound, unknownUser.StatusCode);
        using var unknownTenant = await op.PostAsync(new Uri("/v1/tenants/no-such-tenant/users/user@lock-two.test/unlock", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.NotFound, unknownTenant.StatusCode);
    }

    [Fact]
    public async Task The_failure_count_is_kept_in_the_store_across_a_restart()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-tests", Guid.NewGuid().ToString("N"));
        try
        {
            string password;
            using (var first = Factory(dataDir))
            {
                using var op = await first.OperatorAsync();
                (_, password) = await UserAsync(op, "lock-three", "user@lock-three.test");
                using var anonymous = first.CreateClient();
                for (var i = 0; i < 3; i++)
                {
                    await AssertRefusedAsync(anonymous, "user@lock-three.test", "guess-" + i, "lock-three");
                }
            }

            using var second = Factory(dataDir);
            using var again = second.CreateClient();
            for (var i = 0; i < 2; i++)
            {
                await AssertRefusedAsync(again, "user@lock-three.test", "guess-" + i, "lock-three");
            }

            await AssertRefusedAsync(again, "user@lock-three.test", password, "lock-three");
        }
        finally
        {
            Directory.Delete(dataDir, recursive: true);
        }

        static TenantryFactory Factory(string dataDir)
        {
            var factory = new TenantryFactory();
            factory.Settings["Tenantry:DataDir"] = dataDir;
            return factory;
        }
    }

    [Fact]
    public async Task An_address_that_uses_up_its_failures_across_accounts_gets_429_with_retry_after()
    {
        var time = new ShiftedTime();
        using var factory = new TenantryFactory { Time = time };
        factory.Settings["Tenantry:Identity:Lockout:AddressMaxFailures"] = "3";
        factory.Settings["Tenantry:Identity:Lockout:AddressWindow"] = "00:10:00";
        using var op = await factory.OperatorAsync();
        var (_, password) = await UserAsync(op, "lock-four", "user@lock-four.test");
        using var anonymous = factory.CreateClient();
        foreach (var email in new[] { "a@lock-four.test", "b@lock-four.test", "c@lock-four.test" })
        {
            await AssertRefusedAsync(anonymous, email, "guess", null);
        }

        // Any account, even with the right password, until the window ends.
        using var throttled = await GrantAsync(anonymous, "user@lock-four.test", password, "lock-four");
        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.Equal("application/problem+json", throttled.Content.Headers.ContentType?.MediaType);
        Assert.Equal("https://tenantry.dev/problems/sign-in-throttled", (await throttled.JsonAsync()).GetProperty("type").GetString());
        Assert.InRange(throttled.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));

        time.Offset = TimeSpan.FromMinutes(10) + TimeSpan.FromSeconds(1);
        Assert.Equal(HttpStatusCode.OK, (await GrantAsync(anonymous, "user@lock-four.test", password, "lock-four")).StatusCode);
    }

    [Theory]
    [InlineData("MaxFailedAttempts", "0")]
    [InlineData("Duration", "00:00:00")]
    [InlineData("AddressMaxFailures", "0")]
    [InlineData("AddressWindow", "2.00:00:00")]
    public void Lockout_options_out_of_range_stop_the_host_at_start(string key, string value)
    {
        using var factory = new TenantryFactory();
        factory.Settings["Tenantry:Identity:Lockout:" + key] = value;
        // The host prints the failures and exits (Program.cs), so the factory never gets a server.
        Assert.ThrowsAny<Exception>(() => factory.CreateClient());

        var options = new Microsoft.Extensions.Configuration.ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [key] = value }).Build()
            .Get<Tenantry.ControlPlane.Identity.LockoutOptions>()!;
        var result = new Tenantry.ControlPlane.Identity.LockoutOptionsValidator().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains("Tenantry:Identity:Lockout:" + key, result.FailureMessage, StringComparison.Ordinal);
    }

    private static async Task<(string Id, string Password)> UserAsync(HttpClient op, string slug, string email)
    {
        var id = await op.CreateActiveTenantAsync(slug);
        using var invite = await op.PostAsJsonAsync($"/v1/tenants/{id}/users", new { email, role = "member" });
        Assert.Equal(HttpStatusCode.Created, invite.StatusCode);
        return (id, (await invite.JsonAsync()).GetProperty("initialPassword").GetString()!);
    }

    private static async Task<JsonElement> FindUserAsync(HttpClient op, string tenantId, string email) =>
        (await op.GetJsonAsync($"/v1/tenants/{tenantId}/users")).GetProperty("items").EnumerateArray().Single(u => u.GetProperty("email").GetString() == email);

    private static async Task AssertRefusedAsync(HttpClient client, string email, string password, string? tenant)
    {
        using var response = await GrantAsync(client, email, password, tenant);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {body}");
        var error = JsonDocument.Parse(body).RootElement;
        Assert.Equal("invalid_grant", error.GetProperty("error").GetString());
        Assert.Equal(WrongAnswer, error.GetProperty("error_description").GetString());
        Assert.DoesNotContain("access_token", body, StringComparison.Ordinal);
    }

    private static Task<HttpResponseMessage> GrantAsync(HttpClient client, string email, string password, string? tenant)
    {
        var form = new Dictionary<string, string> { ["grant_type"] = "password", ["username"] = email, ["password"] = password };
        if (tenant is not null)
        {
            form["tenant"] = tenant;
        }

        return client.PostAsync(new Uri("/connect/token", UriKind.Relative), new FormUrlEncodedContent(form));
    }
}
