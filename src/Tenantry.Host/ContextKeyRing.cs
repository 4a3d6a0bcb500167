using System.Security.Cryptography;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.Keys;
using Tenantry.Gateway;

namespace Tenantry.Host;

/// <summary>
/// Where the gateway's tenant-context signing key comes from. On the embedded store: the PEM file in the data dir
/// (<c>Tenantry:Gateway:ContextSigningKeyFile</c>). On a shared PostgreSQL store: the key ring, sealed with the master
/// key, so every control-plane replica and every gateway replica signs with one key and every app instance is
/// given one JWKS, whichever replica started it.
/// </summary>
internal static class ContextKeyRing
{
    /// <summary>The key's name in the key ring.</summary>
    public const string Name = "tenant-context";

    /// <summary>How long a gateway replica waits for a control-plane replica to make the key on a new store.</summary>
    private static readonly TimeSpan WaitForKey = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The key for a control-plane host, from the key ring (the data dir's file, or the shared store's ring): it signs
    /// with the ring's current key and publishes the next and retiring ones to app instances, and follows every rotation.
    /// </summary>
    public static TenantContextSigningKey ForControlPlane(IServiceProvider services)
    {
        var ring = services.GetRequiredService<IKeyRing>();
        var key = TenantContextSigningKey.FromPem(ring.ContextSigningKeyPem);
        key.Use(ring.ContextSigningKeyPem, ring.ContextPublishedPems);
        ring.Changed += (_, _) => key.Use(ring.ContextSigningKeyPem, ring.ContextPublishedPems);
        return key;
    }

    /// <summary>
    /// The key for a gateway replica started with <c>Tenantry:Store</c>: read from the ring (never made here), waiting
    /// a while for a control-plane replica to make it on a new store. Null without <c>Tenantry:Store</c>.
    /// </summary>
    public static TenantContextSigningKey? ForGatewayReplica(IConfiguration configuration)
    {
        var store = configuration["Tenantry:Store"];
        if (string.IsNullOrWhiteSpace(store))
        {
            return null;
        }

        var master = MasterKeyOf(configuration);
        var deadline = DateTimeOffset.UtcNow + WaitForKey;
        while (true)
        {
            var pem = ReadAsync(store, master, CancellationToken.None).GetAwaiter().GetResult();
            if (pem is not null)
            {
                return TenantContextSigningKey.FromPem(pem);
            }

            if (DateTimeOffset.UtcNow >= deadline)
            {
                throw new TenantryStartupException(
                    StartupProblem.Store,
                    "Tenantry:Store: the store's key ring has no tenant-context signing key; start a control-plane replica on this store first.");
            }

            Thread.Sleep(TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>The ring's current tenant-context key, read from the store; null while no control-plane replica has made it.</summary>
    public static async Task<string?> ReadAsync(string store, string master, CancellationToken cancellationToken)
    {
        try
        {
            return await KeyRingReader.ReadAsync(store, master, Name, cancellationToken);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or ArgumentException or System.Net.Sockets.SocketException)
        {
            throw new TenantryStartupException(StartupProblem.Store, $"Tenantry:Store: the gateway cannot read the key ring ({ex.Message}).", ex);
        }
    }

    /// <summary>The master key a gateway replica was given, checked.</summary>
    public static string MasterKeyOf(IConfiguration configuration)
    {
        var master = configuration["Tenantry:MasterKey"] is { Length: > 0 } configured ? configured : configuration["TENANTRY_MASTER_KEY"];
        if (string.IsNullOrEmpty(master))
        {
            throw new TenantryStartupException(
                StartupProblem.Setting,
                "Tenantry:MasterKey (TENANTRY_MASTER_KEY) is required with Tenantry:Store: the gateway reads its tenant-context signing key from the store's key ring.");
        }

        if (master.Length < KeyRingReader.MasterKeyMinimumLength)
        {
            throw new TenantryStartupException(
                StartupProblem.Setting,
                $"Tenantry:MasterKey (TENANTRY_MASTER_KEY) must be at least {KeyRingReader.MasterKeyMinimumLength} characters, e.g. the output of openssl rand -base64 32.");
        }

        return master;
    }
}

/// <summary>
/// Opens the tenant-context signing key at start (on a shared store, making it in the key ring if no replica has),
/// so gateway replicas find it and a wrong master key stops start-up rather than the first request.
/// </summary>
internal sealed partial class ContextKeyStartup(TenantContextSigningKey key, IKeyRingSecrets ring, ILogger<ContextKeyStartup> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Log.Ready(logger, key.KeyId, ring.Shared ? "the key ring in Tenantry:Store" : "the data dir");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Tenant-context signing key {KeyId} from {Source}")]
        public static partial void Ready(ILogger logger, string keyId, string source);
    }
}

/// <summary>A gateway replica's log line naming the key ring's tenant-context key it signs with.</summary>
internal static partial class ContextKeyLog
{
    [LoggerMessage(2, LogLevel.Information, "Tenant-context signing key {KeyId} from the key ring in Tenantry:Store")]
    public static partial void FromRing(ILogger logger, string keyId);
}
