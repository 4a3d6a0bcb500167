using System.ComponentModel.DataAnnotations;

namespace Tenantry.ControlPlane;

/// <summary>Settings under the <c>Tenantry</c> configuration section.</summary>
public sealed class TenantryOptions
{
    public const string Section = "Tenantry";

    /// <summary>Where the embedded store, tenant files and keys live.</summary>
    [Required]
    public string DataDir { get; set; } = ".tenantry";

    public PortOptions Ports { get; set; } = new();

    /// <summary>
    /// The address the control plane and gateway listen on: loopback by default; <c>0.0.0.0</c> in a container,
    /// where the pod's address is the one a Service reaches.
    /// </summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>The parsed <see cref="ListenAddress"/>.</summary>
    public System.Net.IPAddress ListenIp => System.Net.IPAddress.TryParse(ListenAddress, out var ip) ? ip : System.Net.IPAddress.Loopback;

    /// <summary>Secret of the bootstrap <c>operator</c> client; generated into the data dir when unset.</summary>
    public string? OperatorSecret { get; set; }

    /// <summary>
    /// This host's name among the replicas sharing a store; it owns the leases of the operations it runs.
    /// Empty: a name generated once and kept in the data dir (<c>node-id</c>). Unique per running host.
    /// </summary>
    [MaxLength(100)]
    public string? NodeName { get; set; }

    /// <summary>Control-plane store; empty means SQLite in the data dir.</summary>
    public string? Store { get; set; }

    /// <summary>
    /// Seals every key kept in a shared PostgreSQL store (token keys, Data Protection keys): at least 32
    /// characters, e.g. <c>openssl rand -base64 32</c>. Also env <c>TENANTRY_MASTER_KEY</c>. Required with a
    /// PostgreSQL <see cref="Store"/>; unused with the embedded store, whose keys stay files in the data dir.
    /// </summary>
    public string? MasterKey { get; set; }

    /// <summary>Token issuer URI; defaults to the control plane's loopback address.</summary>
    public Uri? Issuer { get; set; }

    [Range(typeof(TimeSpan), "00:01:00", "1.00:00:00")]
    public TimeSpan AccessTokenLifetime { get; set; } = TimeSpan.FromHours(1);

    public OperationOptions Operations { get; set; } = new();

    /// <summary>PostgreSQL servers for tenant databases; none means the embedded SQLite default.</summary>
    public Providers.Postgres.PostgresProviderOptions Postgres { get; set; } = new();

    /// <summary>Tier name → isolation model. The full plan catalog with prices comes with metering.</summary>
    public Dictionary<string, string> Tiers { get; set; } = new(StringComparer.Ordinal)
    {
        ["basic"] = "pool",
        ["standard"] = "bridge",
        ["premium"] = "silo",
    };

    public string DataPath => Path.GetFullPath(DataDir);
}

public sealed class PortOptions
{
    [Range(0, 65535)]
    public int ControlPlane { get; set; } = 5080;

    [Range(0, 65535)]
    public int Gateway { get; set; } = 5081;

    /// <summary>The shared app instance of the application plane.</summary>
    [Range(0, 65535)]
    public int SharedApp { get; set; } = 5082;
}

public sealed class OperationOptions
{
    /// <summary>Operations run at the same time (steps of one operation always run in order).</summary>
    [Range(1, 64)]
    public int MaxParallel { get; set; } = 4;

    /// <summary>Attempts of one step before the operation fails (transient errors only).</summary>
    [Range(1, 20)]
    public int MaxAttempts { get; set; } = 4;

    /// <summary>First retry delay; doubles with each attempt, with jitter.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How often the worker looks for due work it was not told about.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a host's hold on a running operation lasts without renewal. A host that dies holding
    /// one is taken over by another replica once it ends (its own node reclaims it at once on restart).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often a running operation's lease is renewed; well under <see cref="Lease"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:20:00")]
    public TimeSpan LeaseRenewal { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class TenantryOptionsValidator : Microsoft.Extensions.Options.IValidateOptions<TenantryOptions>
{
    public Microsoft.Extensions.Options.ValidateOptionsResult Validate(string? name, TenantryOptions options)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.DataDir))
        {
            errors.Add("Tenantry:DataDir must name a directory.");
        }

        if (options.OperatorSecret is { Length: > 0 and < 16 })
        {
            errors.Add("Tenantry:OperatorSecret (TENANTRY_OPERATOR_SECRET) must be at least 16 characters.");
        }

        if (!string.IsNullOrWhiteSpace(options.Store) && StoreProblem(options.Store) is { } storeProblem)
        {
            errors.Add($"Tenantry:Store: {storeProblem}");
        }

        if (!string.IsNullOrWhiteSpace(options.Store) && string.IsNullOrEmpty(options.MasterKey))
        {
            errors.Add("Tenantry:MasterKey (TENANTRY_MASTER_KEY) is required with a PostgreSQL Tenantry:Store: the store keeps every key, sealed with it.");
        }
        else if (options.MasterKey is { Length: > 0 } master && master.Length < Keys.MasterKey.MinimumLength)
        {
            errors.Add($"Tenantry:MasterKey (TENANTRY_MASTER_KEY) must be at least {Keys.MasterKey.MinimumLength} characters, e.g. the output of openssl rand -base64 32.");
        }

        if (options.Tiers.Count == 0)
        {
            errors.Add("Tenantry:Tiers must name at least one tier.");
        }

        foreach (var (tier, isolation) in options.Tiers)
        {
            if (!TenantRules.IsValidTierName(tier))
            {
                errors.Add($"Tenantry:Tiers:{tier}: a tier name is 1-40 lowercase letters, digits or '-'.");
            }

            if (!WireNames.TryParseIsolation(isolation, out _))
            {
                errors.Add($"Tenantry:Tiers:{tier} = '{isolation}': isolation must be pool, bridge or silo.");
            }
        }

        if (!System.Net.IPAddress.TryParse(options.ListenAddress, out _))
        {
            errors.Add($"Tenantry:ListenAddress: '{options.ListenAddress}' is not an IP address (127.0.0.1, or 0.0.0.0 in a container).");
        }

        if (options.Ports.ControlPlane != 0 && options.Ports.ControlPlane == options.Ports.Gateway)
        {
            errors.Add("Tenantry:Ports:ControlPlane and Tenantry:Ports:Gateway must differ.");
        }

        if (options.Operations.LeaseRenewal * 2 > options.Operations.Lease)
        {
            errors.Add($"Tenantry:Operations:LeaseRenewal: {options.Operations.LeaseRenewal:c} must be at most half of Tenantry:Operations:Lease ({options.Operations.Lease:c}), so a lease is renewed before it ends.");
        }

        if (options.NodeName is { Length: > 0 } node && (string.IsNullOrWhiteSpace(node) || node.Any(char.IsControl)))
        {
            errors.Add("Tenantry:NodeName: a node name is printable text.");
        }

        errors.AddRange(PostgresProblems(options.Postgres));

        return errors.Count == 0
            ? Microsoft.Extensions.Options.ValidateOptionsResult.Success
            : Microsoft.Extensions.Options.ValidateOptionsResult.Fail(errors);
    }

    private static IEnumerable<string> PostgresProblems(Providers.Postgres.PostgresProviderOptions postgres)
    {
        // Data annotations (required values, ranges) are checked with every other setting: SettingValidation.
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < postgres.Servers.Count; i++)
        {
            var server = postgres.Servers[i];
            if (string.IsNullOrWhiteSpace(server.ConnectionString))
            {
                continue;
            }

            if (StoreProblem(server.ConnectionString) is { } problem)
            {
                yield return $"Tenantry:Postgres:Servers:{i}:ConnectionString: {problem}";
                continue;
            }

            if (!names.Add(Providers.Postgres.PostgresServers.NameOf(server)))
            {
                yield return $"Tenantry:Postgres:Servers:{i}: the name '{Providers.Postgres.PostgresServers.NameOf(server)}' is used twice.";
            }
        }

        if (postgres.PoolServer is { Length: > 0 } pool && !names.Contains(pool))
        {
            yield return $"Tenantry:Postgres:PoolServer '{pool}' names no server in Tenantry:Postgres:Servers.";
        }
    }

    private static string? StoreProblem(string store)
    {
        try
        {
            var builder = new Npgsql.NpgsqlConnectionStringBuilder(store);
            return string.IsNullOrEmpty(builder.Host)
                ? "a PostgreSQL connection string needs Host=…; leave the key empty for the embedded SQLite store."
                : null;
        }
        catch (ArgumentException ex)
        {
            return $"not a PostgreSQL connection string ({ex.Message}); e.g. Host=db;Database=tenantry;Username=tenantry;Password=…";
        }
    }
}
