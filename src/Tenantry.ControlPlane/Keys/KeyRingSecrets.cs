using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Keys;

/// <summary>
/// Secrets every replica must share (the gateway's tenant-context signing key, the bootstrap clients'
/// secrets), kept in the key ring of a shared PostgreSQL store, sealed with the master key, so that
/// every control-plane and gateway replica reads the same value instead of making one of its own.
/// </summary>
public interface IKeyRingSecrets
{
    /// <summary>True when the host runs on a shared store; false on the embedded store, whose secrets stay files in the data dir.</summary>
    bool Shared { get; }

    /// <summary>
    /// The secret named <paramref name="name"/>: the stored one, or <paramref name="create"/>'s stored if there is
    /// none yet (replicas asking at once all end with the same value). Only with <see cref="Shared"/>.
    /// </summary>
    Task<string> GetOrCreateAsync(string name, Func<string> create, CancellationToken cancellationToken);
}

internal sealed class KeyRingSecrets(IServiceProvider services, IOptions<TenantryOptions> options, TimeProvider time) : IKeyRingSecrets
{
    public bool Shared => KeyRing.InStore(options.Value);

    public async Task<string> GetOrCreateAsync(string name, Func<string> create, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(create);
        if (!Shared)
        {
            throw new InvalidOperationException("The key ring keeps secrets only on a shared Tenantry:Store.");
        }

        var master = new MasterKey(options.Value.MasterKey!);
        var db = services.GetRequiredService<IControlPlaneDatabase>();
        var sealedValue = await KeyStore.GetOrCreateAsync(db, name, () => master.Seal(name, Encoding.UTF8.GetBytes(create())), time.GetUtcNow(), cancellationToken);
        return KeyRingReader.Open(master, name, sealedValue);
    }
}

/// <summary>
/// Reads a secret of the key ring straight from a PostgreSQL store, for processes that do not run the control
/// plane (gateway replicas): they read what the control plane made, and never make a key of their own.
/// </summary>
public static class KeyRingReader
{
    /// <summary>Shortest master key accepted.</summary>
    public const int MasterKeyMinimumLength = MasterKey.MinimumLength;

    /// <summary>The secret named <paramref name="name"/>, or null while no control-plane replica has made it.</summary>
    public static async Task<string?> ReadAsync(string store, string masterKey, string name, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(store);
        ArgumentException.ThrowIfNullOrEmpty(masterKey);
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand("SELECT sealed_key FROM key_ring WHERE name = $1", connection);
        command.Parameters.AddWithValue(name);
        object? value;
        try
        {
            value = await command.ExecuteScalarAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return null;
        }

        return value is string sealedValue ? Open(new MasterKey(masterKey), name, sealedValue) : null;
    }

    internal static string Open(MasterKey master, string name, string sealedValue)
    {
        try
        {
            return Encoding.UTF8.GetString(master.Open(name, sealedValue));
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException)
        {
            throw new TenantryStartupException(
                StartupProblem.Setting,
                "Tenantry:MasterKey: the keys in Tenantry:Store do not open with this master key (TENANTRY_MASTER_KEY); start every replica with the master key the store's keys were sealed with.",
                ex);
        }
    }
}
