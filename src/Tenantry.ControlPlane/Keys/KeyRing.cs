using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Keys;

/// <summary>The token issuer's RSA keys, wherever they are kept (the data dir, or a shared store).</summary>
public interface ITokenKeys
{
    RsaSecurityKey Signing { get; }

    RsaSecurityKey Encryption { get; }
}

/// <summary>Loads (or makes) a token key kept as a file in the data dir: the embedded store's keys.</summary>
internal delegate RsaSecurityKey FileKeyLoader(string dataPath, string name);

/// <summary>
/// The token issuer's RSA keys (signing and encryption). On the embedded SQLite store they are 0600 PEM
/// files in the data dir; on a shared PostgreSQL store they live in the store, sealed with the master key,
/// so every replica signs and validates with the same keys.
/// </summary>
internal sealed class KeyRing(IServiceProvider services, IOptions<TenantryOptions> options, TimeProvider time, FileKeyLoader files) : ITokenKeys
{
    public const string SigningKeyName = "signing";
    public const string EncryptionKeyName = "encryption";

    private readonly Lazy<Task<(RsaSecurityKey Signing, RsaSecurityKey Encryption)>> _keys = new(() => LoadAsync(services, options.Value, time, files));

    /// <summary>True once both keys are loaded (and, on a shared store, opened with the master key).</summary>
    public bool IsLoaded => _keys.IsValueCreated && _keys.Value.IsCompletedSuccessfully;

    public RsaSecurityKey Signing => Keys().Signing;

    public RsaSecurityKey Encryption => Keys().Encryption;

    public Task LoadAsync() => _keys.Value;

    /// <summary>True when keys live in the shared store rather than in the data dir.</summary>
    public static bool InStore(TenantryOptions options) => !string.IsNullOrWhiteSpace(options.Store);

    // OpenIddict reads its keys while configuring its options, which is synchronous; the start-up
    // service has loaded them by then.
    private (RsaSecurityKey Signing, RsaSecurityKey Encryption) Keys() => _keys.Value.GetAwaiter().GetResult();

    private static async Task<(RsaSecurityKey, RsaSecurityKey)> LoadAsync(IServiceProvider services, TenantryOptions options, TimeProvider time, FileKeyLoader files)
    {
        if (!InStore(options))
        {
            return (files(options.DataPath, SigningKeyName), files(options.DataPath, EncryptionKeyName));
        }

        var db = services.GetRequiredService<IControlPlaneDatabase>();
        var master = new MasterKey(options.MasterKey!);
        return (await FromStoreAsync(db, master, SigningKeyName, time), await FromStoreAsync(db, master, EncryptionKeyName, time));
    }

    private static async Task<RsaSecurityKey> FromStoreAsync(IControlPlaneDatabase db, MasterKey master, string name, TimeProvider time)
    {
        var sealedKey = await KeyStore.GetOrCreateAsync(
            db,
            name,
            () =>
            {
                using var fresh = RSA.Create(2048);
                return master.Seal(name, fresh.ExportPkcs8PrivateKey());
            },
            time.GetUtcNow(),
            CancellationToken.None);
        byte[] pkcs8;
        try
        {
            pkcs8 = master.Open(name, sealedKey);
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            throw new TenantryStartupException(
                StartupProblem.Setting,
                "Tenantry:MasterKey: the keys in Tenantry:Store do not open with this master key (TENANTRY_MASTER_KEY); start every replica with the master key the store's keys were sealed with.",
                ex);
        }

        var rsa = RSA.Create();
        rsa.ImportPkcs8PrivateKey(pkcs8, out _);
        return WithKeyId(rsa);
    }

    /// <summary>The key with its id: the first 16 characters of its public key's SHA-256, base64url.</summary>
    public static RsaSecurityKey WithKeyId(RSA rsa)
    {
        var kid = Base64UrlEncoder.Encode(SHA256.HashData(rsa.ExportSubjectPublicKeyInfo()))[..16];
        return new RsaSecurityKey(rsa) { KeyId = kid };
    }
}

/// <summary>
/// Loads the key ring before the host serves: a wrong master key stops start-up with one line instead of
/// failing each request. On a shared store it also opens the Data Protection key ring once (creating its
/// first key if there is none), so tenant database passwords other replicas stored can be read.
/// </summary>
internal sealed partial class KeyRingStartup(KeyRing keys, IServiceProvider services, IOptions<TenantryOptions> options, ILogger<KeyRingStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await keys.LoadAsync();
        if (!KeyRing.InStore(options.Value))
        {
            return;
        }

        var probe = services.GetRequiredService<IDataProtectionProvider>().CreateProtector("Tenantry.KeyRing.Probe");
        try
        {
            _ = probe.Unprotect(probe.Protect(Encoding.UTF8.GetBytes("ready")));
        }
        catch (CryptographicException ex)
        {
            throw new TenantryStartupException(
                StartupProblem.Setting,
                "Tenantry:MasterKey: the Data Protection keys in Tenantry:Store do not open with this master key (TENANTRY_MASTER_KEY).",
                ex);
        }

        Log.Loaded(logger);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Key ring loaded from the store, opened with the master key")]
        public static partial void Loaded(ILogger logger);
    }
}

/// <summary>Part of <c>/readyz</c>: the key ring is loaded.</summary>
internal sealed class KeyRingHealthCheck(KeyRing keys) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(keys.IsLoaded ? HealthCheckResult.Healthy("key ring loaded") : HealthCheckResult.Unhealthy("key ring not loaded"));
}
