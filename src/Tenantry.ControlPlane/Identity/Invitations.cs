using System.Buffers.Text;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Identity;

/// <summary>A new invitation: the token goes into the link of one mail and is kept only as its hash.</summary>
public sealed record IssuedInvitation(string Token, Uri Link, DateTimeOffset ExpiresAt);

/// <summary>An invitation a link names, while it can still be used.</summary>
internal sealed record OpenInvitation(Guid TenantId, string TenantSlug, string TenantName, string Email, string Role, DateTimeOffset ExpiresAt);

/// <summary>How redeeming an invitation ended.</summary>
internal enum RedeemOutcome
{
    PasswordSet,

    /// <summary>Unknown, used, superseded or expired token, or a tenant that is gone: one answer for all, so a guess learns nothing.</summary>
    Invalid,
}

/// <summary>
/// One-time invitation links to <c>/invite/{token}</c>, where an invited tenant user chooses a password.
/// A token is 256 random bits, stored only as its SHA-256, valid until it expires
/// (<c>Tenantry:Identity:InvitationLifetime</c>) and used at most once: redeeming it is a single
/// conditional update, so two concurrent uses cannot both succeed. A newer invitation of the same
/// user supersedes the older ones.
/// </summary>
internal sealed class InvitationStore(IControlPlaneDatabase db, ITenantRegistry tenants, IOptions<TenantLoginOptions> login, IOptions<TenantryOptions> tenantry, TimeProvider time)
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Identity", """

        CREATE TABLE IF NOT EXISTS invitations (
            token_hash TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            email TEXT NOT NULL,
            role TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT NULL
        );
        CREATE INDEX IF NOT EXISTS invitations_user ON invitations(tenant_id, email);
        """);

    private static readonly PasswordHasher<string> Hasher = new();

    public const int MinPasswordLength = 12;
    public const int MaxPasswordLength = 128;

    /// <summary>
    /// Invites <paramref name="email"/> to the tenant in <paramref name="tx"/>: the user exists as
    /// <c>invited</c> (an existing user keeps its status, and gets <paramref name="role"/>), earlier open
    /// invitations of the user end, and a new one is issued.
    /// </summary>
    public async Task<IssuedInvitation> IssueAsync(DbConnection c, DbTransaction tx, Tenant tenant, string email, string role, string createdBy, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await c.ExecuteAsync(
            """
            INSERT INTO tenant_users (tenant_id, email, role, status, disabled, created_at)
            VALUES (@t, @e, @role, 'invited', @off, @now)
            ON CONFLICT (tenant_id, email) DO UPDATE SET role = excluded.role
            """,
            tx, ("@t", tenant.Id), ("@e", email), ("@role", role), ("@off", tenant.Status == TenantStatus.Suspended), ("@now", now));
        await c.ExecuteAsync(
            "UPDATE invitations SET used_at = @now WHERE tenant_id = @t AND email = @e AND used_at IS NULL", tx, ("@t", tenant.Id), ("@e", email), ("@now", now));
        var token = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var expires = now + login.Value.InvitationLifetime;
        await c.ExecuteAsync(
            """
            INSERT INTO invitations (token_hash, tenant_id, email, role, created_by, created_at, expires_at)
            VALUES (@hash, @t, @e, @role, @by, @now, @expires)
            """,
            tx, ("@hash", Hash(token)), ("@t", tenant.Id), ("@e", email), ("@role", role), ("@by", createdBy), ("@now", now), ("@expires", expires));
        return new IssuedInvitation(token, Link(token), expires);
    }

    /// <summary>True when the user already has a password (an invitation would not be needed).</summary>
    public static async Task<bool> HasPasswordAsync(DbConnection c, DbTransaction? tx, Guid tenantId, string email) =>
        await c.ScalarAsync("SELECT 1 FROM tenant_user_credentials WHERE tenant_id = @t AND email = @e", tx, ("@t", tenantId), ("@e", email)) is not null;

    /// <summary>The invitation <paramref name="token"/> names, while it can be used; null otherwise.</summary>
    public Task<OpenInvitation?> FindOpenAsync(string token, CancellationToken cancellationToken) =>
        db.ReadAsync(c => FindOpenAsync(c, null, token, time.GetUtcNow()), cancellationToken);

    /// <summary>Uses the invitation once: sets the user's password and makes the user active.</summary>
    public async Task<(RedeemOutcome Outcome, OpenInvitation? Invitation)> RedeemAsync(string token, string password, CancellationToken cancellationToken)
    {
        // Hashed before the write, so the store's one writer is not held for PBKDF2's work.
        var open = await FindOpenAsync(token, cancellationToken);
        if (open is null)
        {
            return (RedeemOutcome.Invalid, null);
        }

        var hash = Hasher.HashPassword(open.Email, password);
        return await db.WriteAsync<(RedeemOutcome, OpenInvitation?)>(
            async (c, tx) =>
            {
                var now = time.GetUtcNow();
                var invitation = await FindOpenAsync(c, tx, token, now);
                if (invitation is null || await c.ExecuteAsync(
                        "UPDATE invitations SET used_at = @now WHERE token_hash = @hash AND used_at IS NULL", tx, ("@now", now), ("@hash", Hash(token))) != 1)
                {
                    return (RedeemOutcome.Invalid, null);
                }

                await c.ExecuteAsync(
                    """
                    INSERT INTO tenant_user_credentials (tenant_id, email, password_hash, updated_at) VALUES (@t, @e, @hash, @now)
                    ON CONFLICT (tenant_id, email) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at
                    """,
                    tx, ("@t", invitation.TenantId), ("@e", invitation.Email), ("@hash", hash), ("@now", now));
                await c.ExecuteAsync(
                    "UPDATE tenant_users SET status = 'active' WHERE tenant_id = @t AND email = @e", tx, ("@t", invitation.TenantId), ("@e", invitation.Email));
                await c.ExecuteAsync(
                    "DELETE FROM tenant_user_lockouts WHERE tenant_id = @t AND email = @e", tx, ("@t", invitation.TenantId), ("@e", invitation.Email));
                await AuditLog.AppendAsync(c, tx, AuditLog.By(
                    $"{invitation.TenantId}:{invitation.Email}", invitation.TenantId, "tenant.user.invitation-accepted", "succeeded",
                    new JsonObject { ["email"] = invitation.Email, ["role"] = invitation.Role }, now));
                return (RedeemOutcome.PasswordSet, invitation);
            },
            cancellationToken);
    }

    /// <summary>What is wrong with a chosen password, or null.</summary>
    public static string? CheckPassword(string password, string confirmation)
    {
        if (password.Length < MinPasswordLength || password.Length > MaxPasswordLength)
        {
            return $"Choose a password of {MinPasswordLength} to {MaxPasswordLength} characters.";
        }

        if (password.Trim().Length == 0 || password.Any(char.IsControl))
        {
            return "The password may not be blank or hold control characters.";
        }

        return password == confirmation ? null : "The two passwords differ.";
    }

    /// <summary>The page of a token, on the control plane's public address (its issuer).</summary>
    private Uri Link(string token)
    {
        var o = tenantry.Value;
        var root = o.Issuer ?? new Uri($"http://127.0.0.1:{o.Ports.ControlPlane}/");
        return new Uri(root, "invite/" + token);
    }

    private async Task<OpenInvitation?> FindOpenAsync(DbConnection c, DbTransaction? tx, string token, DateTimeOffset now)
    {
        if (token.Length is < 20 or > 100)
        {
            return null;
        }

        var row = (await c.QueryAsync(
            "SELECT tenant_id, email, role, expires_at FROM invitations WHERE token_hash = @hash AND used_at IS NULL",
            tx, r => (Tenant: r.ReadGuid(0), Email: r.GetString(1), Role: r.GetString(2), Expires: r.ReadTime(3)), ("@hash", Hash(token)))).SingleOrDefault();
        if (row == default || row.Expires <= now)
        {
            return null;
        }

        var tenant = await tenants.GetAsync(c, tx, row.Tenant);
        return tenant is null || tenant.Status is TenantStatus.Offboarding or TenantStatus.Offboarded
            ? null
            : new OpenInvitation(tenant.Id, tenant.Slug, tenant.Name, row.Email, row.Role, row.Expires);
    }

    private static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
