namespace Tenantry.ControlPlane;

/// <summary>The typed lifecycle of ARCHITECTURE.md. Every other transition is refused.</summary>
public static class TenantLifecycle
{
    private static readonly Dictionary<TenantStatus, TenantStatus[]> Allowed = new()
    {
        [TenantStatus.Provisioning] = [TenantStatus.Active, TenantStatus.Failed],
        [TenantStatus.Active] = [TenantStatus.Suspended, TenantStatus.Offboarding, TenantStatus.Failed],
        [TenantStatus.Suspended] = [TenantStatus.Active, TenantStatus.Offboarding, TenantStatus.Failed],
        // A failed tenant is retried (back to the status of its failed operation) or offboarded,
        // so a half-made tenant can always be cleaned away.
        [TenantStatus.Failed] = [TenantStatus.Provisioning, TenantStatus.Offboarding, TenantStatus.Active, TenantStatus.Suspended],
        [TenantStatus.Offboarding] = [TenantStatus.Offboarded, TenantStatus.Failed],
        [TenantStatus.Offboarded] = [],
    };

    public static bool CanMove(TenantStatus from, TenantStatus to) => Allowed[from].Contains(to);
}
