using System.Text.Json.Nodes;

namespace Tenantry.ControlPlane.Operations;

/// <summary>
/// The steps of one kind of operation that a feature of its own runs (a tier change's data move), so the
/// operations feature knows of the kind only its name and step names. Registered as many as there are kinds.
/// </summary>
public interface IOperationSteps
{
    OperationKind Kind { get; }

    /// <summary>Runs one step; idempotent, as every step is. Returns the change to the tenant's resources, or null.</summary>
    Task<JsonObject?> ExecuteAsync(Operation operation, Tenant tenant, string step, CancellationToken cancellationToken);

    /// <summary>
    /// Undoes what the operation's steps did after <paramref name="failedStep"/> failed (for a kind whose definition
    /// <see cref="OperationDefinition.RollsBack"/>); idempotent, and run again after a crash.
    /// </summary>
    Task RollBackAsync(Operation operation, Tenant tenant, string failedStep, CancellationToken cancellationToken);
}
