namespace Tenantry.Data;

/// <summary>
/// What a write of a tenant's rows fails with while a tier change freezes them: the control plane's freeze
/// triggers raise it, and the app SDK recognises it to answer 503 <c>tenant-frozen</c> as the gateway does.
/// </summary>
public static class TenantDataFrozen
{
    /// <summary>The message text, in the database error of the refused write.</summary>
    public const string Message = "The tenant's data is frozen for a tier change; retry shortly.";
}
