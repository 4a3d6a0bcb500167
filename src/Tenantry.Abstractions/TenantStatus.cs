namespace Tenantry;

/// <summary>The lifecycle state of a tenant. Changed only by operations, never as free text.</summary>
public enum TenantStatus
{
    Provisioning,
    Active,
    Suspended,
    Failed,
    Offboarding,
    Offboarded,
}

/// <summary>How a tenant's data and compute are kept apart from other tenants'.</summary>
public enum IsolationModel
{
    /// <summary>Shared database and app instance; rows carry the tenant id.</summary>
    Pool,

    /// <summary>Schema per tenant in a shared database; shared app instance.</summary>
    Bridge,

    /// <summary>Dedicated database and app instance.</summary>
    Silo,
}

/// <summary>Wire names of the enums: lowercase, as in the public API.</summary>
public static class WireNames
{
    public static string ToWire(this TenantStatus status) => status switch
    {
        TenantStatus.Provisioning => "provisioning",
        TenantStatus.Active => "active",
        TenantStatus.Suspended => "suspended",
        TenantStatus.Failed => "failed",
        TenantStatus.Offboarding => "offboarding",
        TenantStatus.Offboarded => "offboarded",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };

    public static string ToWire(this IsolationModel model) => model switch
    {
        IsolationModel.Pool => "pool",
        IsolationModel.Bridge => "bridge",
        IsolationModel.Silo => "silo",
        _ => throw new ArgumentOutOfRangeException(nameof(model)),
    };

    public static TenantStatus ParseStatus(string value) =>
        TryParseStatus(value, out var status) ? status : throw new FormatException($"Unknown tenant status '{value}'.");

    public static IsolationModel ParseIsolation(string value) =>
        TryParseIsolation(value, out var model) ? model : throw new FormatException($"Unknown isolation model '{value}'.");

    public static bool TryParseStatus(string? value, out TenantStatus status)
    {
        foreach (var candidate in Enum.GetValues<TenantStatus>())
        {
            if (string.Equals(candidate.ToWire(), value, StringComparison.Ordinal))
            {
                status = candidate;
                return true;
            }
        }

        status = default;
        return false;
    }

    public static bool TryParseIsolation(string? value, out IsolationModel model)
    {
        foreach (var candidate in Enum.GetValues<IsolationModel>())
        {
            if (string.Equals(candidate.ToWire(), value, StringComparison.OrdinalIgnoreCase))
            {
                model = candidate;
                return true;
            }
        }

        model = default;
        return false;
    }
}
