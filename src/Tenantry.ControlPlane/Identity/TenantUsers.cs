using System.Net.Mail;
using Microsoft.AspNetCore.Identity;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Identity;

/// <summary>Roles a tenant user can hold.</summary>
public static class TenantRoles
{
    public const string Admin = "admin";
    public const string Member = "member";

    /// <summary>Carried by tokens of a tenant's machine clients.</summary>
    public const string Machine = "machine";

    public static bool IsUserRole(string? role) => role is Admin or Member;
}

/// <param name="LockedUntil">Set while too many failed sign-ins keep the user out (see <see cref="LockoutOptions"/>).</param>
public sealed record TenantUser(Guid TenantId, string Email, string Role, string Status, bool Disabled, DateTimeOffset CreatedAt, DateTimeOffset? LockedUntil = null);

/// <summary>How a sign-in ended. Every outcome but <see cref="Succeeded"/> is shown to the caller as the same generic refusal.</summary>
internal enum SignInOutcome
{
    Succeeded,

    /// <summary>Unknown or ambiguous user, or a wrong password (counted towards the account's lockout).</summary>
    Failed,

    /// <summary>The account is locked out (by this attempt or an earlier one); the password was not taken.</summary>
    LockedOut,

    /// <summary>The right password of a disabled user or of a tenant that is not active.</summary>
    Inactive,
}

/// <param name="User">The user the address and tenant name, when exactly one matches (also on failure).</param>
/// <param name="LockedNow">True when this attempt's failure locked the account.</param>
internal sealed record SignInResult(SignInOutcome Outcome, TenantUser? User, Tenant? Tenant, DateTimeOffset? LockedUntil = null, bool LockedNow = false);

/// <summary>
/// Tenant users and their passwords. Passwords are stored as PBKDF2 hashes in ASP.NET Core
/// Identity's format (salted, versioned, rehashed when the parameters grow), never in clear.
/// </summary>
internal sealed class TenantUserStore(IControlPlaneDatabase db, ITenantRegistry tenants, TimeProvider time)
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Identity", """

        CREATE TABLE IF NOT EXISTS tenant_users (
            tenant_id TEXT NOT NULL,
            email TEXT NOT NULL,
            role TEXT NOT NULL,
            status TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            PRIMARY KEY (tenant_id, email)
        );
        CREATE TABLE IF NOT EXISTS tenant_user_credentials (
            tenant_id TEXT NOT NULL,
            email TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (tenant_id, email)
        );

        -- Failed sign-ins per account (see TenantSignIn for the per-address count).
        CREATE TABLE IF NOT EXISTS tenant_user_lockouts (
            tenant_id TEXT NOT NULL,
            email TEXT NOT NULL,
            failed_count INTEGER NOT NULL,
            locked_until TEXT NULL,
            PRIMARY KEY (tenant_id, email)
        );
        """);

    private static readonly PasswordHasher<string> Hasher = new();

    /// <summary>Lowercased address, or null when it is not a plain e-mail address.</summary>
    public static string? NormalizeEmail(string? email)
    {
        if (string.IsNullOrWhiteSpace(email) || email.Length > 254 || email.Any(char.IsWhiteSpace) || !MailAddress.TryCreate(email, out var parsed))
        {
            return null;
        }

        return parsed.Address == email ? email.ToLowerInvariant() : null;
    }

    public enum InviteResult
    {
        Invited,
        AlreadyActive,
    }

    /// <summary>
    /// Invites the user (or completes the invitation of the admin that onboarding created) and sets
    /// a generated initial password, returned to the caller once. A user who already has a password
    /// is left alone.
    /// </summary>
    public Task<(InviteResult Result, TenantUser? User, string? Password)> InviteAsync(Tenant tenant, string email, string role, CancellationToken cancellationToken) =>
        db.WriteAsync(
            async (c, tx) =>
            {
                var hasPassword = await c.ScalarAsync(
                    "SELECT 1 FROM tenant_user_credentials WHERE tenant_id = @t AND email = @e", tx, ("@t", tenant.Id), ("@e", email));
                if (hasPassword is not null)
                {
                    return (InviteResult.AlreadyActive, (TenantUser?)null, (string?)null);
                }

                var now = time.GetUtcNow();
                var password = ClientStore.NewSecret();
                await c.ExecuteAsync(
                    """
                    INSERT INTO tenant_users (tenant_id, email, role, status, disabled, created_at)
                    VALUES (@t, @e, @role, 'invited', @off, @now)
                    ON CONFLICT (tenant_id, email) DO UPDATE SET role = excluded.role
                    """,
                    tx, ("@t", tenant.Id), ("@e", email), ("@role", role), ("@off", tenant.Status == TenantStatus.Suspended), ("@now", now));
                await c.ExecuteAsync(
                    "INSERT INTO tenant_user_credentials (tenant_id, email, password_hash, updated_at) VALUES (@t, @e, @hash, @now)",
                    tx, ("@t", tenant.Id), ("@e", email), ("@hash", Hasher.HashPassword(email, password)), ("@now", now));
                var user = (await c.QueryAsync(
                    "SELECT tenant_id, email, role, status, disabled, created_at, NULL FROM tenant_users WHERE tenant_id = @t AND email = @e",
                    tx, Read, ("@t", tenant.Id), ("@e", email))).Single();
                return (InviteResult.Invited, (TenantUser?)user, (string?)password);
            },
            cancellationToken);

    public Task<List<TenantUser>> ListAsync(Guid tenantId, CancellationToken cancellationToken) => db.ReadAsync(
        c => c.QueryAsync(
            """
            SELECT u.tenant_id, u.email, u.role, u.status, u.disabled, u.created_at, l.locked_until
            FROM tenant_users u LEFT JOIN tenant_user_lockouts l ON l.tenant_id = u.tenant_id AND l.email = u.email
            WHERE u.tenant_id = @t ORDER BY u.email
            """,
            null, Read, ("@t", tenantId)),
        cancellationToken);

    /// <summary>
    /// Checks a password, in the manner of ASP.NET Core Identity's lockout: a wrong password counts
    /// against the account (in the store, so restarts and replicas share the count), the
    /// <see cref="LockoutOptions.MaxFailedAttempts"/>th in a row locks it for
    /// <see cref="LockoutOptions.Duration"/>, a locked account is refused even with the right password,
    /// and a success resets the count. <paramref name="tenant"/> (id or slug) may be omitted when the
    /// address belongs to one tenant only. The password is hashed on every path, so the time taken does
    /// not tell which addresses exist or are locked.
    /// </summary>
    public async Task<SignInResult> SignInAsync(string? tenant, string email, string password, LockoutOptions lockout, CancellationToken cancellationToken)
    {
        var rows = await db.ReadAsync(
            async c =>
            {
                var found = new List<(TenantUser, Tenant, string, int)>();
                var candidates = await c.QueryAsync(
                    """
                    SELECT u.tenant_id, u.email, u.role, u.status, u.disabled, u.created_at, l.locked_until, k.password_hash, l.failed_count
                    FROM tenant_users u JOIN tenant_user_credentials k ON k.tenant_id = u.tenant_id AND k.email = u.email
                    LEFT JOIN tenant_user_lockouts l ON l.tenant_id = u.tenant_id AND l.email = u.email
                    WHERE u.email = @e
                    """,
                    null, r => (Read(r), r.GetString(7), r.IsDBNull(8) ? 0 : (int)r.GetInt64(8)), ("@e", email));
                foreach (var (user, hash, failed) in candidates)
                {
                    if (await tenants.GetAsync(c, null, user.TenantId) is { } t
                        && (tenant is null || t.Slug == tenant || t.Id.ToString() == tenant))
                    {
                        found.Add((user, t, hash, failed));
                    }
                }

                return found;
            },
            cancellationToken);
        if (rows.Count != 1)
        {
            Hasher.VerifyHashedPassword(email, DummyHash, password);
            return new SignInResult(SignInOutcome.Failed, null, null);
        }

        var (u, owner, stored, failedBefore) = rows[0];
        var verdict = Hasher.VerifyHashedPassword(email, stored, password);
        var now = time.GetUtcNow();
        if (u.LockedUntil > now)
        {
            return new SignInResult(SignInOutcome.LockedOut, u, owner, u.LockedUntil);
        }

        if (verdict == PasswordVerificationResult.Failed)
        {
            var lockedUntil = await db.WriteAsync((c, tx) => CountFailureAsync(c, tx, u, lockout, now), cancellationToken);
            return lockedUntil is { } until
                ? new SignInResult(SignInOutcome.LockedOut, u, owner, until, LockedNow: true)
                : new SignInResult(SignInOutcome.Failed, u, owner);
        }

        if (u.Disabled || owner.Status != TenantStatus.Active)
        {
            return new SignInResult(SignInOutcome.Inactive, u, owner);
        }

        if (verdict == PasswordVerificationResult.SuccessRehashNeeded || u.Status != "active" || failedBefore > 0 || u.LockedUntil is not null)
        {
            await db.WriteAsync(
                async (c, tx) =>
                {
                    if (verdict == PasswordVerificationResult.SuccessRehashNeeded)
                    {
                        await c.ExecuteAsync(
                            "UPDATE tenant_user_credentials SET password_hash = @h, updated_at = @now WHERE tenant_id = @t AND email = @e",
                            tx, ("@h", Hasher.HashPassword(email, password)), ("@now", now), ("@t", u.TenantId), ("@e", email));
                    }

                    await c.ExecuteAsync("UPDATE tenant_users SET status = 'active' WHERE tenant_id = @t AND email = @e", tx, ("@t", u.TenantId), ("@e", email));
                    await c.ExecuteAsync("DELETE FROM tenant_user_lockouts WHERE tenant_id = @t AND email = @e", tx, ("@t", u.TenantId), ("@e", email));
                },
                cancellationToken);
        }

        return new SignInResult(SignInOutcome.Succeeded, u with { Status = "active", LockedUntil = null }, owner);
    }

    /// <summary>One more failure, counted atomically (concurrent guesses cannot slip past the limit); the time the account is locked until when this one reaches it.</summary>
    private static async Task<DateTimeOffset?> CountFailureAsync(System.Data.Common.DbConnection c, System.Data.Common.DbTransaction tx, TenantUser u, LockoutOptions lockout, DateTimeOffset now)
    {
        var failed = Convert.ToInt64(
            await c.ScalarAsync(
                """
                INSERT INTO tenant_user_lockouts (tenant_id, email, failed_count, locked_until) VALUES (@t, @e, 1, NULL)
                ON CONFLICT (tenant_id, email) DO UPDATE SET failed_count = tenant_user_lockouts.failed_count + 1
                RETURNING failed_count
                """,
                tx, ("@t", u.TenantId), ("@e", u.Email)),
            System.Globalization.CultureInfo.InvariantCulture);
        if (failed < lockout.MaxFailedAttempts)
        {
            return null;
        }

        // As Identity does: the count starts again once the lockout is set, so an expired lockout gives a full set of attempts.
        var until = now + lockout.Duration;
        await c.ExecuteAsync(
            "UPDATE tenant_user_lockouts SET failed_count = 0, locked_until = @until WHERE tenant_id = @t AND email = @e",
            tx, ("@until", until), ("@t", u.TenantId), ("@e", u.Email));
        return until;
    }

    /// <summary>Ends the user's lockout and failure count; null when the tenant has no such user.</summary>
    public Task<TenantUser?> UnlockAsync(Guid tenantId, string email, CancellationToken cancellationToken) => db.WriteAsync(
        async (c, tx) =>
        {
            await c.ExecuteAsync("DELETE FROM tenant_user_lockouts WHERE tenant_id = @t AND email = @e", tx, ("@t", tenantId), ("@e", email));
            return (await c.QueryAsync(
                "SELECT tenant_id, email, role, status, disabled, created_at, NULL FROM tenant_users WHERE tenant_id = @t AND email = @e",
                tx, Read, ("@t", tenantId), ("@e", email))).SingleOrDefault();
        },
        cancellationToken);

    /// <summary>The user and its tenant when the user is enabled and the tenant active (a code issued earlier is being redeemed).</summary>
    public async Task<(TenantUser User, Tenant Tenant)?> FindActiveAsync(Guid tenantId, string email, CancellationToken cancellationToken)
    {
        var found = await db.ReadAsync(
            async c =>
            {
                var user = (await c.QueryAsync(
                    "SELECT tenant_id, email, role, status, disabled, created_at, NULL FROM tenant_users WHERE tenant_id = @t AND email = @e",
                    null, Read, ("@t", tenantId), ("@e", email))).SingleOrDefault();
                return user is null ? default : (user, await tenants.GetAsync(c, null, tenantId));
            },
            cancellationToken);
        return found is ({ Disabled: false } u, { Status: TenantStatus.Active } t) ? (u, t) : null;
    }

    private static readonly string DummyHash = Hasher.HashPassword("nobody", "not-a-password");

    private static TenantUser Read(System.Data.Common.DbDataReader r) =>
        new(r.ReadGuid(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4) != 0, r.ReadTime(5), r.ReadTimeOrNull(6));
}
