using Microsoft.AspNetCore.DataProtection;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// Secrets the platform generates for tenants (database role passwords), kept in the control-plane
/// store encrypted with ASP.NET Data Protection. Each secret is bound to its name, so a ciphertext
/// copied onto another row does not decrypt.
/// </summary>
internal sealed class TenantCredentials(IControlPlaneDatabase db, IDataProtectionProvider protection, TimeProvider time)
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Providers", """

        CREATE TABLE IF NOT EXISTS tenant_credentials (
            secret_name TEXT PRIMARY KEY,
            tenant_id TEXT NULL,
            protected_secret TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """);

    private readonly IDataProtector _protector = protection.CreateProtector("Tenantry.TenantCredentials.v1");

    /// <summary>
    /// The stored secret, or a new one from <paramref name="generate"/> stored first, so a step that
    /// crashes after using it finds the same secret when it runs again.
    /// </summary>
    public async Task<string> GetOrCreateAsync(string name, Guid? tenantId, Func<string> generate, CancellationToken cancellationToken)
    {
        if (await FindAsync(name, cancellationToken) is { } existing)
        {
            return existing;
        }

        var secret = generate();
        var protectedSecret = _protector.CreateProtector(name).Protect(secret);
        await db.WriteAsync(
            (c, tx) => c.ExecuteAsync(
                "INSERT INTO tenant_credentials (secret_name, tenant_id, protected_secret, created_at) VALUES (@name, @tenant, @secret, @now) ON CONFLICT (secret_name) DO NOTHING",
                tx, ("@name", name), ("@tenant", tenantId), ("@secret", protectedSecret), ("@now", time.GetUtcNow())),
            cancellationToken);
        return await FindAsync(name, cancellationToken) ?? throw new InvalidOperationException($"The credential '{name}' vanished as it was stored.");
    }

    public async Task<string?> FindAsync(string name, CancellationToken cancellationToken)
    {
        var stored = await db.ReadAsync(c => c.ScalarAsync("SELECT protected_secret FROM tenant_credentials WHERE secret_name = @name", null, ("@name", name)), cancellationToken);
        return stored is string text ? _protector.CreateProtector(name).Unprotect(text) : null;
    }

    public Task DeleteAsync(string name, CancellationToken cancellationToken) =>
        db.WriteAsync((c, tx) => c.ExecuteAsync("DELETE FROM tenant_credentials WHERE secret_name = @name", tx, ("@name", name)), cancellationToken);
}
