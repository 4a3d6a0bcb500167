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

public sealed record TenantUser(Guid TenantId, string Email, string Role, string Status, bool Disabled, DateTimeOffset CreatedAt);

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
                    "SELECT tenant_id, email, role, status, disabled, created_at FROM tenant_users WHERE tenant_id = @t AND email = @e",
                    tx, Read, ("@t", tenant.Id), ("@e", email))).Single();
                return (InviteResult.Invited, (TenantUser?)user, (string?)password);
            },
            cancellationToken);

    public Task<List<TenantUser>> ListAsync(Guid tenantId, CancellationToken cancellationToken) => db.ReadAsync(
        c => c.QueryAsync(
            "SELECT tenant_id, email, role, status, disabled, created_at FROM tenant_users WHERE tenant_id = @t ORDER BY email",
            null, Read, ("@t", tenantId)),
        cancellationToken);

    /// <summary>
    /// The user whose password matches, with its tenant; null for an unknown user, a wrong
    /// password, a disabled user or a tenant that is not active. <paramref name="tenant"/> (id or
    /// slug) may be omitted when the address belongs to one tenant only.
    /// </summary>
    public async Task<(TenantUser User, Tenant Tenant)?> VerifyAsync(string? tenant, string email, string password, CancellationToken cancellationToken)
    {
        var rows = await db.ReadAsync(
            async c =>
            {
                var found = new List<(TenantUser, Tenant, string)>();
                var candidates = await c.QueryAsync(
                    """
                    SELECT u.tenant_id, u.email, u.role, u.status, u.disabled, u.created_at, k.password_hash
                    FROM tenant_users u JOIN tenant_user_credentials k ON k.tenant_id = u.tenant_id AND k.email = u.email
                    WHERE u.email = @e
                    """,
                    null, r => (Read(r), r.GetString(6)), ("@e", email));
                foreach (var (user, hash) in candidates)
                {
                    if (await tenants.GetAsync(c, null, user.TenantId) is { } t
                        && (tenant is null || t.Slug == tenant || t.Id.ToString() == tenant))
                    {
                        found.Add((user, t, hash));
                    }
                }

                return found;
            },
            cancellationToken);
        if (rows.Count != 1)
        {
            // Still spend the hashing time, so the response time does not tell which addresses exist.
            Hasher.VerifyHashedPassword(email, DummyHash, password);
            return null;
        }

        var (u, owner, stored) = rows[0];
        var verdict = Hasher.VerifyHashedPassword(email, stored, password);
        if (verdict == PasswordVerificationResult.Failed || u.Disabled || owner.Status != TenantStatus.Active)
        {
            return null;
        }

        if (verdict == PasswordVerificationResult.SuccessRehashNeeded || u.Status != "active")
        {
            await db.WriteAsync(
                async (c, tx) =>
                {
                    if (verdict == PasswordVerificationResult.SuccessRehashNeeded)
                    {
                        await c.ExecuteAsync(
                            "UPDATE tenant_user_credentials SET password_hash = @h, updated_at = @now WHERE tenant_id = @t AND email = @e",
                            tx, ("@h", Hasher.HashPassword(email, password)), ("@now", time.GetUtcNow()), ("@t", u.TenantId), ("@e", email));
                    }

                    await c.ExecuteAsync("UPDATE tenant_users SET status = 'active' WHERE tenant_id = @t AND email = @e", tx, ("@t", u.TenantId), ("@e", email));
                },
                cancellationToken);
        }

        return (u with { Status = "active" }, owner);
    }

    /// <summary>The user and its tenant when the user is enabled and the tenant active (a code issued earlier is being redeemed).</summary>
    public async Task<(TenantUser User, Tenant Tenant)?> FindActiveAsync(Guid tenantId, string email, CancellationToken cancellationToken)
    {
        var found = await db.ReadAsync(
            async c =>
            {
                var user = (await c.QueryAsync(
                    "SELECT tenant_id, email, role, status, disabled, created_at FROM tenant_users WHERE tenant_id = @t AND email = @e",
                    null, Read, ("@t", tenantId), ("@e", email))).SingleOrDefault();
                return user is null ? default : (user, await tenants.GetAsync(c, null, tenantId));
            },
            cancellationToken);
        return found is ({ Disabled: false } u, { Status: TenantStatus.Active } t) ? (u, t) : null;
    }

    private static readonly string DummyHash = Hasher.HashPassword("nobody", "not-a-password");

    private static TenantUser Read(System.Data.Common.DbDataReader r) =>
        new(r.ReadGuid(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4) != 0, r.ReadTime(5));
}
