using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;
using Tenantry.Policies;

namespace Tenantry.ControlPlane.Policies;

public static class PoliciesApi
{
    public const int MaxDocuments = 20;

    public static RouteGroupBuilder MapPoliciesApi(this RouteGroupBuilder v1)
    {
        var policies = v1.MapGroup("/policies").WithTags("Policies");
        policies.MapPost("/simulate", Simulate).Accepts<SimulateRequest>("application/json")
            .WithSummary("Evaluate a request against identity, session and guardrail policies with IAM semantics: Allow, ExplicitDeny or ImplicitDeny, and the statements that decided it.");
        policies.MapPost("/validate", (Delegate)Validate).Accepts<ValidateRequest>("application/json")
            .WithSummary("Check a policy document: errors with the JSON path of each fault, and warnings for traps.");
        policies.MapGet("/templates", Templates).WithSummary("The per-tier session policy templates set by the operator (tiers without one use the default).");
        policies.MapGet("/templates/{tier}", Template).WithSummary("The session policy template of a tier (${tenant}, ${tenantId}, ${tier} are filled per tenant).");
        policies.MapPut("/templates/{tier}", PutTemplate).Accepts<JsonObject>("application/json")
            .WithSummary("Set the session policy template of a tier; the body is the policy document.");
        v1.MapGet("/guardrails", Guardrails).WithTags("Policies").WithSummary("The guardrails (SCP-like policies) that apply to every tenant principal.");
        v1.MapPut("/guardrails", PutGuardrails).WithTags("Policies").Accepts<GuardrailsRequest>("application/json")
            .WithSummary("Replace the guardrails: {items:[{name, document}]}. With none, guardrails do not restrict.");
        v1.MapGet("/tenants/{id}/policies", TenantPolicy).WithTags("Policies").WithSummary("The tenant's session policy, its tier template applied.");
        v1.MapGet("/tenants/{id}/policies/aws", TenantAwsPolicy).WithTags("Policies")
            .WithSummary("The tenant's policy as AWS IAM JSON for S3 (bucket prefix) and DynamoDB (leading keys). Query: bucket, table, region, account.");
        return v1;
    }

    private static async Task<Results<Ok<SimulateResponse>, ProblemHttpResult>> Simulate(HttpContext http, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<SimulateRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        if (body!.Policies is null)
        {
            errors["policies"] = ["policies is required: {identity:[…], session:[…]|null, guardrail:[…]|null}."];
        }

        if (body.Policies is { Identity: null })
        {
            errors["policies.identity"] = ["policies.identity is required (an array of policy documents; it may be empty)."];
        }

        var identity = Compile(body.Policies?.Identity, "identity", PolicyKind.Identity, errors);
        var session = Compile(body.Policies?.Session, "session", PolicyKind.Session, errors);
        var guardrail = Compile(body.Policies?.Guardrail, "guardrail", PolicyKind.Guardrail, errors);
        var request = body.Request;
        if (request is null)
        {
            errors["request"] = ["request is required: {action, resource, context}."];
        }
        else
        {
            if (string.IsNullOrEmpty(request.Action) || request.Action.Length > 256)
            {
                errors["request.action"] = ["request.action is required (service:Action, at most 256 characters)."];
            }

            if (string.IsNullOrEmpty(request.Resource) || request.Resource.Length > 2048)
            {
                errors["request.resource"] = ["request.resource is required (at most 2048 characters)."];
            }
        }

        var context = new RequestContext();
        foreach (var (key, value) in request?.Context ?? [])
        {
            if (ReadContextValue(value) is { } values && key.Length is > 0 and <= 256)
            {
                context.Set(key, values);
            }
            else
            {
                errors[$"request.context['{key}']"] = ["A context value is a string or an array of strings."];
            }
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        // IAM sets the time keys on every request; so does the simulator unless the caller set them.
        var now = time.GetUtcNow();
        if (!context.TryGetValues("aws:CurrentTime", out _))
        {
            context.Set("aws:CurrentTime", now.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture));
        }

        if (!context.TryGetValues("aws:EpochTime", out _))
        {
            context.Set("aws:EpochTime", now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var set = new PolicySet(identity!, session, guardrail);
        var explanation = set.Explain(new AccessRequest(request!.Action!, request.Resource!, context));
        return TypedResults.Ok(new SimulateResponse(
            explanation.Decision.ToString(),
            [.. explanation.Matched.Select(m => new MatchedResponse(m.Policy, m.Sid, m.Effect.ToString()))],
            explanation.MissingAllow?.ToString().ToLowerInvariant()));
    }

    private static async Task<Results<Ok<ValidateResponse>, ProblemHttpResult>> Validate(HttpContext http)
    {
        var (body, error) = await JsonBody.ReadAsync<ValidateRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (body!.Document is not { } document || document.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            return ApiError.Validation("document", "document is required: the policy (an object, or its JSON text).").ToResult();
        }

        var result = ParseDocument(document);
        return TypedResults.Ok(new ValidateResponse(result.IsValid, Issues(result.Errors), Issues(result.Warnings)));
    }

    private static async Task<Ok<GuardrailsResponse>> Guardrails(PolicyCatalog catalog, CancellationToken ct) =>
        TypedResults.Ok(new GuardrailsResponse([.. (await catalog.GuardrailsAsync(ct)).Select(ToResponse)], []));

    private static async Task<Results<Ok<GuardrailsResponse>, ProblemHttpResult>> PutGuardrails(
        HttpContext http, IControlPlaneDatabase db, PolicyCatalog catalog, TimeProvider time)
    {
        var (body, error) = await JsonBody.ReadAsync<GuardrailsRequest>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        if (body!.Items is not { } items)
        {
            return ApiError.Validation("items", "items is required: [{name, document}] (an empty array removes every guardrail).").ToResult();
        }

        var errors = new Dictionary<string, string[]>();
        var warnings = new List<IssueResponse>();
        var accepted = new List<(string Name, string Document)>();
        if (items.Count > MaxDocuments)
        {
            errors["items"] = [$"At most {MaxDocuments} guardrails."];
        }

        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            if (!PlatformPolicies.IsValidPolicyName(item.Name))
            {
                errors[$"items[{i}].name"] = ["A guardrail name is 1-64 lowercase letters, digits and '-'."];
            }
            else if (accepted.Any(a => a.Name == item.Name))
            {
                errors[$"items[{i}].name"] = [$"'{item.Name}' is used by another guardrail."];
            }

            if (item.Document is not { ValueKind: not (JsonValueKind.Null or JsonValueKind.Undefined) } document)
            {
                errors[$"items[{i}].document"] = ["document is required."];
                continue;
            }

            var result = ParseDocument(document);
            Collect(result, $"$.items[{i}].document", errors, warnings);
            if (result.IsValid && item.Name is not null)
            {
                accepted.Add((item.Name, Canonical(document)));
            }
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var now = time.GetUtcNow();
        await db.WriteAsync(async (c, tx) =>
        {
            await PolicyStore.ReplaceGuardrailsAsync(c, tx, accepted, now);
            await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(
                http, null, "guardrails.replace", new JsonObject { ["names"] = new JsonArray([.. accepted.Select(a => JsonValue.Create(a.Name))]) }, now));
        }, http.RequestAborted);
        catalog.Invalidate();
        return TypedResults.Ok(new GuardrailsResponse([.. (await catalog.GuardrailsAsync(http.RequestAborted)).Select(ToResponse)], warnings));
    }

    private static async Task<Ok<IReadOnlyList<TemplateResponse>>> Templates(PolicyCatalog catalog, CancellationToken ct) =>
        TypedResults.Ok<IReadOnlyList<TemplateResponse>>([.. (await catalog.TemplatesAsync(ct)).Select(t => new TemplateResponse(t.Name, JsonDocument.Parse(t.Document).RootElement, false, []))]);

    private static async Task<Results<Ok<TemplateResponse>, ProblemHttpResult>> Template(string tier, PolicyCatalog catalog, CancellationToken ct)
    {
        if (!TenantRules.IsValidTierName(tier))
        {
            return ApiError.Validation("tier", "A tier name is lowercase letters, digits and '-'.").ToResult();
        }

        var (document, isDefault) = await catalog.TemplateAsync(tier, ct);
        return TypedResults.Ok(new TemplateResponse(tier, JsonDocument.Parse(document).RootElement, isDefault, []));
    }

    private static async Task<Results<Ok<TemplateResponse>, ProblemHttpResult>> PutTemplate(
        string tier, HttpContext http, IControlPlaneDatabase db, PolicyCatalog catalog, TimeProvider time)
    {
        if (!TenantRules.IsValidTierName(tier))
        {
            return ApiError.Validation("tier", "A tier name is lowercase letters, digits and '-'.").ToResult();
        }

        var (body, error) = await JsonBody.ReadAsync<JsonObject>(http.Request);
        if (error is not null)
        {
            return error.ToResult();
        }

        var text = body!.ToJsonString();
        // Checked as it will be used: applied to a tenant of that tier.
        var result = PolicyParser.Parse(PlatformPolicies.Render(text, "example-tenant", Guid.Empty, tier));
        var errors = new Dictionary<string, string[]>();
        var warnings = new List<IssueResponse>();
        Collect(result, "$", errors, warnings);
        if (!text.Contains("${tenant}", StringComparison.Ordinal) && !text.Contains("${tenantId}", StringComparison.Ordinal))
        {
            warnings.Add(new IssueResponse("$", "template-not-tenant-scoped", "The template uses neither ${tenant} nor ${tenantId}: every tenant of the tier gets the same permissions."));
        }

        if (errors.Count > 0)
        {
            return ApiError.Validation(errors).ToResult();
        }

        var now = time.GetUtcNow();
        await db.WriteAsync(async (c, tx) =>
        {
            await PolicyStore.PutTemplateAsync(c, tx, tier, text, now);
            await AuditLog.AppendAsync(c, tx, AuditLog.ByCaller(http, null, "policy-template.put", new JsonObject { ["tier"] = tier }, now));
        }, http.RequestAborted);
        catalog.Invalidate();
        return TypedResults.Ok(new TemplateResponse(tier, JsonDocument.Parse(text).RootElement, false, warnings));
    }

    private static async Task<Results<Ok<JsonElement>, ProblemHttpResult>> TenantPolicy(string id, IControlPlaneDatabase db, ITenantRegistry tenants, PolicyCatalog catalog, CancellationToken ct)
    {
        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), ct);
        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        var document = await catalog.SessionDocumentAsync(tenant.Id, tenant.Slug, tenant.Tier, ct);
        return TypedResults.Ok(JsonDocument.Parse(document).RootElement);
    }

    private static async Task<Results<Ok<JsonObject>, ProblemHttpResult>> TenantAwsPolicy(
        string id, string? bucket, string? table, string? region, string? account, IControlPlaneDatabase db, ITenantRegistry tenants, PolicyCatalog catalog, CancellationToken ct)
    {
        var target = new AwsTarget(bucket ?? AwsTarget.DefaultBucket, table ?? AwsTarget.DefaultTable, region ?? "*", account ?? "*");
        if (target.Check() is { } problem)
        {
            return ApiError.Validation(problem.Field, problem.Message).ToResult();
        }

        var tenant = await db.ReadAsync(c => tenants.FindAsync(c, null, id), ct);
        if (tenant is null)
        {
            return ApiError.NotFound($"Tenant '{id}'").ToResult();
        }

        var session = PolicyParser.ParseOrThrow(await catalog.SessionDocumentAsync(tenant.Id, tenant.Slug, tenant.Tier, ct));
        return TypedResults.Ok(AwsExport.Export(session, tenant.Id, tenant.Slug, target));
    }

    private static CompiledPolicy[]? Compile(List<JsonElement>? documents, string kind, PolicyKind policyKind, Dictionary<string, string[]> errors)
    {
        if (documents is null)
        {
            return null;
        }

        if (documents.Count > MaxDocuments)
        {
            errors[$"policies.{kind}"] = [$"At most {MaxDocuments} documents."];
            return null;
        }

        var compiled = new List<CompiledPolicy>();
        for (var i = 0; i < documents.Count; i++)
        {
            var result = ParseDocument(documents[i]);
            Collect(result, $"$.policies.{kind}[{i}]", errors, null);
            if (result.Document is { } document)
            {
                compiled.Add(CompiledPolicy.Compile($"{kind}[{i}]", policyKind, document));
            }
        }

        return [.. compiled];
    }

    private static PolicyParseResult ParseDocument(JsonElement document) => document.ValueKind == JsonValueKind.String
        ? PolicyParser.Parse(document.GetString()!)
        : PolicyParser.Parse(document);

    private static string Canonical(JsonElement document) => document.ValueKind == JsonValueKind.String
        ? JsonNode.Parse(document.GetString()!)!.ToJsonString()
        : document.GetRawText();

    /// <summary>Adds a document's errors under the full JSON path of the request body.</summary>
    private static void Collect(PolicyParseResult result, string at, Dictionary<string, string[]> errors, List<IssueResponse>? warnings)
    {
        foreach (var issue in result.Issues)
        {
            var path = at + issue.Path[1..];
            if (issue.Severity == IssueSeverity.Error)
            {
                errors[path] = errors.TryGetValue(path, out var existing) ? [.. existing, issue.Message] : [issue.Message];
            }
            else
            {
                warnings?.Add(new IssueResponse(path, issue.Code, issue.Message));
            }
        }
    }

    private static IssueResponse[] Issues(IEnumerable<PolicyIssue> issues) => [.. issues.Select(i => new IssueResponse(i.Path, i.Code, i.Message))];

    private static string[]? ReadContextValue(JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            return [value.GetString()!];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var values = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                return null;
            }

            values.Add(item.GetString()!);
        }

        return [.. values];
    }

    private static GuardrailResponse ToResponse(StoredPolicy p) => new(p.Name, JsonDocument.Parse(p.Document).RootElement, p.UpdatedAt);
}
