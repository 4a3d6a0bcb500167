using System.Security.Cryptography;
using Microsoft.AspNetCore.Identity;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Identity;

public sealed record ClientRecord(string ClientId, string SecretHash, string DisplayName, Guid? TenantId, string[] Scopes, bool Disabled);

/// <summary>OAuth2 clients. Secrets are stored as PBKDF2 hashes (ASP.NET Core Identity's format), never in clear.</summary>
internal sealed class ClientStore(IControlPlaneDatabase db, TimeProvider time)
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Identity", """

        CREATE TABLE IF NOT EXISTS clients (
            client_id TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            display_name TEXT NOT NULL,
            tenant_id TEXT NULL,
            scopes TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        """);

    private static readonly PasswordHasher<string> Hasher = new();

    public async Task<ClientRecord?> FindAsync(string clientId, CancellationToken cancellationToken) =>
        (await db.ReadAsync(
            c => c.QueryAsync(
                "SELECT client_id, secret_hash, display_name, tenant_id, scopes, disabled FROM clients WHERE client_id = @id",
                null,
                r => new ClientRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.ReadGuidOrNull(3),
                    r.GetString(4).Split(' ', StringSplitOptions.RemoveEmptyEntries), r.GetInt64(5) != 0),
                ("@id", clientId)),
            cancellationToken)).SingleOrDefault();

    public static bool Verify(ClientRecord client, string secret) =>
        Hasher.VerifyHashedPassword(client.ClientId, client.SecretHash, secret) != PasswordVerificationResult.Failed;

    /// <summary>Creates the client, or sets its secret and scopes when they changed.</summary>
    public async Task UpsertAsync(string clientId, string secret, string displayName, Guid? tenantId, string[] scopes, CancellationToken cancellationToken)
    {
        var existing = await FindAsync(clientId, cancellationToken);
        if (existing is not null && Verify(existing, secret) && existing.Scopes.SequenceEqual(scopes))
        {
            return;
        }

        await db.WriteAsync(
            (c, tx) => c.ExecuteAsync(
                """
                INSERT INTO clients (client_id, secret_hash, display_name, tenant_id, scopes, disabled, created_at)
                VALUES (@id, @hash, @name, @tenant, @scopes, 0, @now)
                ON CONFLICT (client_id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes, display_name = excluded.display_name
                """,
                tx,
                ("@id", clientId), ("@hash", Hasher.HashPassword(clientId, secret)), ("@name", displayName), ("@tenant", tenantId),
                ("@scopes", string.Join(' ', scopes)), ("@now", time.GetUtcNow())),
            cancellationToken);
    }

    public Task DisableAsync(string clientId, CancellationToken cancellationToken) =>
        db.WriteAsync((c, tx) => c.ExecuteAsync("UPDATE clients SET disabled = 1 WHERE client_id = @id", tx, ("@id", clientId)), cancellationToken);

    public static string NewSecret() => Base64UrlEncode(RandomNumberGenerator.GetBytes(32));

    private static string Base64UrlEncode(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
