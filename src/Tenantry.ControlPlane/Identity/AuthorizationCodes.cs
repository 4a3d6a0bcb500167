using System.Security.Cryptography;
using System.Text;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Identity;

/// <summary>
/// Single use of authorization codes. OpenIddict runs in degraded mode (no token store), so a code
/// that is still valid would otherwise be redeemable again: its SHA-256 is recorded at redemption, in
/// the control-plane store so that every control-plane replica sees it, until the code has expired.
/// </summary>
internal static class AuthorizationCodes
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Identity", """

        CREATE TABLE IF NOT EXISTS redeemed_authorization_codes (
            code_hash TEXT PRIMARY KEY,
            expires_at TEXT NOT NULL
        );
        """);

    /// <summary>Longer than any code lifetime, so a hash is kept as long as its code could be presented.</summary>
    private static readonly TimeSpan Retention = TimeSpan.FromMinutes(15);

    /// <summary>True the first time a code is presented; false for every later attempt.</summary>
    public static Task<bool> TryRedeemAsync(IControlPlaneDatabase db, TimeProvider time, string code, CancellationToken cancellationToken)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(code)));
        var now = time.GetUtcNow();
        return db.WriteAsync(
            async (c, tx) =>
            {
                await c.ExecuteAsync("DELETE FROM redeemed_authorization_codes WHERE expires_at < @now", tx, ("@now", now));
                var inserted = await c.ExecuteAsync(
                    "INSERT INTO redeemed_authorization_codes (code_hash, expires_at) VALUES (@h, @exp) ON CONFLICT (code_hash) DO NOTHING",
                    tx, ("@h", hash), ("@exp", now + Retention));
                return inserted == 1;
            },
            cancellationToken);
    }
}
