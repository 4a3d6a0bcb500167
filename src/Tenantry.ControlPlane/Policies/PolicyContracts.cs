using System.Text.Json;

namespace Tenantry.ControlPlane.Policies;

public sealed record SimulateRequest
{
    public SimulatePolicies? Policies { get; init; }
    public SimulateAccess? Request { get; init; }
}

/// <summary>Each document is a policy object (or its JSON text, as AWS APIs take it).</summary>
public sealed record SimulatePolicies
{
    public List<JsonElement>? Identity { get; init; }
    public List<JsonElement>? Session { get; init; }
    public List<JsonElement>? Guardrail { get; init; }
}

public sealed record SimulateAccess
{
    public string? Action { get; init; }
    public string? Resource { get; init; }

    /// <summary>Condition keys: a string or an array of strings each.</summary>
    public Dictionary<string, JsonElement>? Context { get; init; }
}

public sealed record MatchedResponse(string Policy, string? Sid, string Effect);

public sealed record SimulateResponse(string Decision, IReadOnlyList<MatchedResponse> Matched, string? MissingAllow);

public sealed record ValidateRequest
{
    public JsonElement? Document { get; init; }
}

public sealed record IssueResponse(string Path, string Code, string Message);

public sealed record ValidateResponse(bool Valid, IReadOnlyList<IssueResponse> Errors, IReadOnlyList<IssueResponse> Warnings);

public sealed record GuardrailInput
{
    public string? Name { get; init; }
    public JsonElement? Document { get; init; }
}

public sealed record GuardrailsRequest
{
    public List<GuardrailInput>? Items { get; init; }
}

public sealed record GuardrailResponse(string Name, JsonElement Document, DateTimeOffset UpdatedAt);

public sealed record GuardrailsResponse(IReadOnlyList<GuardrailResponse> Items, IReadOnlyList<IssueResponse> Warnings);

public sealed record TemplateResponse(string Tier, JsonElement Document, bool IsDefault, IReadOnlyList<IssueResponse> Warnings);
