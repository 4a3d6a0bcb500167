namespace Tenantry;

/// <summary>The lifecycle state of a tenant. Changed only by operations, never as free text.</summary>
public enum TenantStatus
{
    /// <summary>Being onboarded: its resources are being made; not serving yet.</summary>
    Provisioning,
    /// <summary>Serving requests.</summary>
    Active,
    /// <summary>Kept but refused at the gateway until it is resumed.</summary>
    Suspended,
    /// <summary>An operation on it failed; an operator retries or offboards it.</summary>
    Failed,
    /// <summary>Its resources are being removed.</summary>
    Offboarding,
    /// <summary>Gone: its resources are removed and only the registry entry remains.</summary>
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
    /// <summary>The status's name in the API (<c>active</c>, <c>suspended</c>, …).</summary>
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

    /// <summary>The model's name in the API: <c>pool</c>, <c>bridge</c> or <c>silo</c>.</summary>
    public static string ToWire(this IsolationModel model) => model switch
    {
        IsolationModel.Pool => "pool",
        IsolationModel.Bridge => "bridge",
        IsolationModel.Silo => "silo",
        _ => throw new ArgumentOutOfRangeException(nameof(model)),
    };

    /// <summary>The status of an API name; <see cref="FormatException"/> for an unknown one.</summary>
    public static TenantStatus ParseStatus(string value) =>
        TryParseStatus(value, out var status) ? status : throw new FormatException($"Unknown tenant status '{value}'.");

    /// <summary>The model of an API name (any case); <see cref="FormatException"/> for an unknown one.</summary>
    public static IsolationModel ParseIsolation(string value) =>
        TryParseIsolation(value, out var model) ? model : throw new FormatException($"Unknown isolation model '{value}'.");

    /// <summary>The status of an API name (exact case); false for an unknown one.</summary>
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

    /// <summary>The model of an API name (any case); false for an unknown one.</summary>
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
