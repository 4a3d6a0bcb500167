using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Identity;

/// <summary>Limits on password guessing, under <c>Tenantry:Identity:Lockout</c> (the sign-in form and the password grant alike).</summary>
public sealed class LockoutOptions
{
    public const string Section = "Tenantry:Identity:Lockout";

    /// <summary>Wrong passwords in a row that lock an account (ASP.NET Core Identity's default).</summary>
    public int MaxFailedAttempts { get; set; } = 5;

    /// <summary>How long a locked account refuses every sign-in, the right password included.</summary>
    public TimeSpan Duration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Failed sign-ins one client address may make, across all accounts, per <see cref="AddressWindow"/>; more get 429.</summary>
    public int AddressMaxFailures { get; set; } = 50;

    public TimeSpan AddressWindow { get; set; } = TimeSpan.FromMinutes(15);
}

internal sealed class LockoutOptionsValidator : IValidateOptions<LockoutOptions>
{
    public ValidateOptionsResult Validate(string? name, LockoutOptions options)
    {
        var errors = new List<string>();
        if (options.MaxFailedAttempts is < 1 or > 100)
        {
            errors.Add($"{LockoutOptions.Section}:MaxFailedAttempts must be 1-100.");
        }

        if (options.Duration < TimeSpan.FromSeconds(1) || options.Duration > TimeSpan.FromDays(1))
        {
            errors.Add($"{LockoutOptions.Section}:Duration must be 00:00:01-1.00:00:00.");
        }

        if (options.AddressMaxFailures is < 1 or > 100_000)
        {
            errors.Add($"{LockoutOptions.Section}:AddressMaxFailures must be 1-100000.");
        }

        if (options.AddressWindow < TimeSpan.FromSeconds(1) || options.AddressWindow > TimeSpan.FromDays(1))
        {
            errors.Add($"{LockoutOptions.Section}:AddressWindow must be 00:00:01-1.00:00:00.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>A sign-in attempt's result for the endpoint: the user on success, or how long the client address must wait.</summary>
internal sealed record SignInAttempt(SignInResult? Result, TimeSpan? RetryAfter)
{
    public bool Succeeded => Result?.Outcome == SignInOutcome.Succeeded;
}

/// <summary>
/// Tenant users' password sign-in, shared by the sign-in form and the password grant: the client
/// address's failure budget first (a fixed window in the store, so every replica counts alike), then
/// the account's lockout (<see cref="TenantUserStore.SignInAsync"/>); failures and lockouts go to the
/// audit log.
/// </summary>
internal sealed partial class TenantSignIn(
    TenantUserStore users, IControlPlaneDatabase db, TimeProvider time, IOptions<LockoutOptions> options, ILogger<TenantSignIn> logger)
{
    /// <summary>Failed sign-ins per client address across accounts, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Identity", """

        CREATE TABLE IF NOT EXISTS sign_in_address_failures (
            address TEXT PRIMARY KEY,
            window_start TEXT NOT NULL,
            failures INTEGER NOT NULL
        );
        """);

    private readonly LockoutOptions _options = options.Value;

    /// <param name="email">The normalized address, or null when what was typed is not one.</param>
    /// <param name="via">Where the password was typed (<c>sign-in-form</c>, <c>password-grant</c>), for the audit log.</param>
    public async Task<SignInAttempt> SignInAsync(HttpContext http, string? tenant, string? email, string password, string via)
    {
        var address = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var now = time.GetUtcNow();
        if (await RetryAfterAsync(address, now, http.RequestAborted) is { } wait)
        {
            Log.Throttled(logger, address);
            return new SignInAttempt(null, wait);
        }

        var result = email is null || password.Length is 0 or > 1024
            ? new SignInResult(SignInOutcome.Failed, null, null)
            : await users.SignInAsync(tenant, email, password, _options, http.RequestAborted);
        if (result.Outcome is SignInOutcome.Failed or SignInOutcome.LockedOut)
        {
            await RecordFailureAsync(address, email, result, via, now, http.RequestAborted);
        }

        return new SignInAttempt(result, null);
    }

    /// <summary>The wait left when the address has used up its failures in the current window.</summary>
    private async Task<TimeSpan?> RetryAfterAsync(string address, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var row = (await db.ReadAsync(
            c => c.QueryAsync(
                "SELECT window_start, failures FROM sign_in_address_failures WHERE address = @a",
                null, r => (Start: r.ReadTime(0), Failures: r.GetInt64(1)), ("@a", address)),
            cancellationToken)).SingleOrDefault();
        var ends = row.Start + _options.AddressWindow;
        return row.Failures >= _options.AddressMaxFailures && ends > now ? ends - now : null;
    }

    private Task RecordFailureAsync(string address, string? email, SignInResult result, string via, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var tenantId = result.Tenant?.Id;
        if (result.LockedNow)
        {
            Log.LockedOut(logger, tenantId!.Value, result.LockedUntil!.Value);
        }
        else
        {
            Log.Failed(logger, tenantId, address);
        }

        return db.WriteAsync(
            async (c, tx) =>
            {
                var expired = now - _options.AddressWindow;
                await c.ExecuteAsync("DELETE FROM sign_in_address_failures WHERE window_start <= @expired", tx, ("@expired", expired));
                await c.ExecuteAsync(
                    """
                    INSERT INTO sign_in_address_failures (address, window_start, failures) VALUES (@a, @now, 1)
                    ON CONFLICT (address) DO UPDATE SET failures = sign_in_address_failures.failures + 1
                    """,
                    tx, ("@a", address), ("@now", now));

                var detail = new JsonObject
                {
                    ["email"] = email,
                    ["address"] = address,
                    ["via"] = via,
                    ["reason"] = result.Outcome == SignInOutcome.LockedOut && !result.LockedNow ? "locked-out" : result.User is null ? "unknown-user" : "wrong-password",
                };
                await AuditLog.AppendAsync(c, tx, Event(tenantId, email, "tenant.user.sign-in-failed", "failed", detail, now));
                if (result.LockedNow)
                {
                    await AuditLog.AppendAsync(c, tx, Event(
                        tenantId, email, "tenant.user.locked-out", "succeeded",
                        new JsonObject
                        {
                            ["email"] = email,
                            ["lockedUntil"] = result.LockedUntil!.Value.ToString("O", CultureInfo.InvariantCulture),
                            ["failedAttempts"] = _options.MaxFailedAttempts,
                        },
                        now));
                }
            },
            cancellationToken);
    }

    private static AuditEvent Event(Guid? tenantId, string? email, string action, string outcome, JsonObject detail, DateTimeOffset now) => new()
    {
        Id = Guid.CreateVersion7(),
        Time = now,
        Actor = email ?? "anonymous",
        TenantId = tenantId,
        Action = action,
        Outcome = outcome,
        Detail = detail,
    };

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Failed sign-in of a user of tenant {TenantId} from {Address}")]
        public static partial void Failed(ILogger logger, Guid? tenantId, string address);

        [LoggerMessage(2, LogLevel.Warning, "A user of tenant {TenantId} is locked out until {LockedUntil} after repeated failed sign-ins")]
        public static partial void LockedOut(ILogger logger, Guid tenantId, DateTimeOffset lockedUntil);

        [LoggerMessage(3, LogLevel.Warning, "Sign-ins from {Address} refused: too many failures in the window")]
        public static partial void Throttled(ILogger logger, string address);
    }
}
