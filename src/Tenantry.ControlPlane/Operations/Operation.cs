namespace Tenantry.ControlPlane.Operations;

public enum OperationStatus
{
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

public enum OperationKind
{
    Onboard,
    Offboard,
    Suspend,
    Reactivate,

    /// <summary>A tier change to another isolation model: the tenant's data moves while it keeps working.</summary>
    TierChange,

    /// <summary>A move to another cell: the same steps as a tier change, the tier and isolation kept, the data moved to the cell's servers.</summary>
    Move,
}

/// <summary>A durable workflow of named steps that changes a tenant's state.</summary>
public sealed record Operation
{
    public required Guid Id { get; init; }
    public required OperationKind Kind { get; init; }
    public required Guid TenantId { get; init; }
    public required OperationStatus Status { get; init; }
    public string? Error { get; init; }
    public required string Actor { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public required IReadOnlyList<OperationStep> Steps { get; init; }
}

public sealed record OperationStep
{
    public required int Ordinal { get; init; }
    public required string Name { get; init; }
    public required OperationStatus Status { get; init; }
    public required int Attempts { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? FinishedAt { get; init; }
    public string? Error { get; init; }
}

/// <summary>
/// What each kind of operation does: its steps, and the tenant's status while and after it runs. A kind
/// that <paramref name="RollsBack"/> undoes its work when a step fails (<see cref="IOperationSteps.RollBackAsync"/>)
/// and leaves the tenant in its <paramref name="Running"/> status instead of failed.
/// </summary>
public sealed record OperationDefinition(OperationKind Kind, string[] Steps, TenantStatus Running, TenantStatus Done, bool RollsBack = false)
{
    public static readonly OperationDefinition Onboard = new(
        OperationKind.Onboard,
        [StepNames.Validate, StepNames.CreateDatabase, StepNames.ProvisionStorage, StepNames.ProvisionQueue, StepNames.ConfigureIdentity, StepNames.DeployCompute, StepNames.Notify],
        TenantStatus.Provisioning,
        TenantStatus.Active);

    public static readonly OperationDefinition Offboard = new(
        OperationKind.Offboard,
        [StepNames.ExportData, StepNames.RevokeAccess, StepNames.DeleteCompute, StepNames.DeleteQueue, StepNames.DeleteStorage, StepNames.DeleteDatabase, StepNames.Archive],
        TenantStatus.Offboarding,
        TenantStatus.Offboarded);

    public static readonly OperationDefinition Suspend = new(
        OperationKind.Suspend,
        [StepNames.RevokeAccess, StepNames.Notify],
        TenantStatus.Active,
        TenantStatus.Suspended);

    public static readonly OperationDefinition Reactivate = new(
        OperationKind.Reactivate,
        [StepNames.RestoreAccess, StepNames.Notify],
        TenantStatus.Suspended,
        TenantStatus.Active);

    public static readonly OperationDefinition TierChange = new(
        OperationKind.TierChange,
        [StepNames.ProvisionTarget, StepNames.CaptureChanges, StepNames.Copy, StepNames.CatchUp, StepNames.Freeze, StepNames.Verify, StepNames.Switch, StepNames.Drain, StepNames.RetireSource],
        TenantStatus.Active,
        TenantStatus.Active,
        RollsBack: true);

    public static readonly OperationDefinition Move = TierChange with { Kind = OperationKind.Move };

    public static OperationDefinition For(OperationKind kind) => kind switch
    {
        OperationKind.TierChange => TierChange,
        OperationKind.Move => Move,
        OperationKind.Onboard => Onboard,
        OperationKind.Offboard => Offboard,
        OperationKind.Suspend => Suspend,
        OperationKind.Reactivate => Reactivate,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}

public static class StepNames
{
    public const string Validate = "validate";
    public const string CreateDatabase = "create-database";
    public const string ProvisionStorage = "provision-storage";
    public const string ProvisionQueue = "provision-queue";
    public const string ConfigureIdentity = "configure-identity";
    public const string DeployCompute = "deploy-compute";
    public const string Notify = "notify";
    public const string ExportData = "export-data";
    public const string RevokeAccess = "revoke-access";
    public const string RestoreAccess = "restore-access";
    public const string DeleteCompute = "delete-compute";
    public const string DeleteQueue = "delete-queue";
    public const string DeleteStorage = "delete-storage";
    public const string DeleteDatabase = "delete-database";
    public const string Archive = "archive";
    public const string ProvisionTarget = "provision-target";
    public const string CaptureChanges = "capture-changes";
    public const string Copy = "copy";
    public const string CatchUp = "catch-up";
    public const string Freeze = "freeze";
    public const string Verify = "verify";
    public const string Switch = "switch";
    public const string Drain = "drain";
    public const string RetireSource = "retire-source";
}

public static class OperationNames
{
    public static string ToWire(this OperationStatus status) => status switch
    {
        OperationStatus.Pending => "pending",
        OperationStatus.Running => "running",
        OperationStatus.Succeeded => "succeeded",
        OperationStatus.Failed => "failed",
        OperationStatus.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(status)),
    };

    public static string ToWire(this OperationKind kind) => kind switch
    {
        OperationKind.Onboard => "onboarding",
        OperationKind.Offboard => "offboarding",
        OperationKind.Suspend => "suspension",
        OperationKind.Reactivate => "reactivation",
        OperationKind.TierChange => "change-tier",
        OperationKind.Move => "move",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static OperationStatus ParseStatus(string value) =>
        Enum.GetValues<OperationStatus>().First(s => s.ToWire() == value);

    /// <summary>The kind of a stored operation; <c>tier-change</c> is the name earlier versions stored for <c>change-tier</c>.</summary>
    public static OperationKind ParseKind(string value) =>
        value == "tier-change" ? OperationKind.TierChange : Enum.GetValues<OperationKind>().First(k => k.ToWire() == value);
}
