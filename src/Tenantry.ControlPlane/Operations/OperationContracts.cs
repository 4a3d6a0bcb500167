namespace Tenantry.ControlPlane.Operations;

public sealed record OperationStepResponse(string Name, string Status, int Attempts, DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, string? Error);

public sealed record OperationResponse(
    string Id,
    string Kind,
    string TenantId,
    string Status,
    IReadOnlyList<OperationStepResponse> Steps,
    string? Error,
    string Actor,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt)
{
    public static OperationResponse From(Operation op) => new(
        op.Id.ToString(),
        op.Kind.ToWire(),
        op.TenantId.ToString(),
        op.Status.ToWire(),
        [.. op.Steps.Select(s => new OperationStepResponse(s.Name, s.Status.ToWire(), s.Attempts, s.StartedAt, s.FinishedAt, s.Error))],
        op.Error,
        op.Actor,
        op.CreatedAt,
        op.StartedAt,
        op.FinishedAt);
}
