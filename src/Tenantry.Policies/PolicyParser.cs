using System.Text.Json;
using System.Text.RegularExpressions;

namespace Tenantry.Policies;

public enum IssueSeverity
{
    Error,
    Warning,
}

/// <summary>A fault (error) or a trap (warning) in a policy, at a JSON path such as <c>$.Statement[1].Effect</c>.</summary>
public sealed record PolicyIssue(IssueSeverity Severity, string Path, string Code, string Message);

/// <summary>The outcome of parsing: a document when there is no error, and every issue found.</summary>
public sealed record PolicyParseResult(PolicyDocument? Document, IReadOnlyList<PolicyIssue> Issues)
{
    public bool IsValid => Document is not null;

    public IEnumerable<PolicyIssue> Errors => Issues.Where(i => i.Severity == IssueSeverity.Error);

    public IEnumerable<PolicyIssue> Warnings => Issues.Where(i => i.Severity == IssueSeverity.Warning);
}

/// <summary>
/// Reads IAM JSON policies strictly, as IAM does when a policy is saved: unknown elements, wrong
/// types, bad effects, unknown operators and unparseable values are errors, each with its path.
/// </summary>
public static partial class PolicyParser
{
    public const int MaxDocumentChars = 64 * 1024;

    private static readonly string[] TopLevel = ["Version", "Id", "Statement"];
    private static readonly string[] StatementElements = ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];

    public static PolicyParseResult Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        if (json.Length > MaxDocumentChars)
        {
            return new PolicyParseResult(null, [new PolicyIssue(IssueSeverity.Error, "$", "too-large", $"A policy is at most {MaxDocumentChars} characters.")]);
        }

        try
        {
            // A repeated key (two "Effect"s) is refused: which one wins would be up to each reader.
            using var document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false });
            return Parse(document.RootElement);
        }
        catch (JsonException ex)
        {
            return new PolicyParseResult(null, [new PolicyIssue(IssueSeverity.Error, ex.Path is { Length: > 0 } p ? p : "$", "json", $"Not valid JSON (line {ex.LineNumber + 1}, position {ex.BytePositionInLine + 1}).")]);
        }
    }

    public static PolicyParseResult Parse(JsonElement root)
    {
        var issues = new List<PolicyIssue>();
        var document = Read(root, issues);
        if (document is not null)
        {
            PolicyLint.Check(document, issues);
        }

        return new PolicyParseResult(issues.Any(i => i.Severity == IssueSeverity.Error) ? null : document, issues);
    }

    /// <summary>Parses and throws when the document has errors; for policies written in code.</summary>
    public static PolicyDocument ParseOrThrow(string json)
    {
        var result = Parse(json);
        return result.Document ?? throw new FormatException(string.Join("; ", result.Errors.Select(e => $"{e.Path}: {e.Message}")));
    }

    private static PolicyDocument? Read(JsonElement root, List<PolicyIssue> issues)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            Error(issues, "$", "type", "A policy is a JSON object.");
            return null;
        }

        string? version = null, id = null;
        JsonElement? statementElement = null;
        foreach (var property in root.EnumerateObject())
        {
            var path = "$." + property.Name;
            switch (property.Name)
            {
                case "Version":
                    version = ReadString(property.Value, path, issues);
                    if (version is not null and not PolicyDocument.CurrentVersion and not PolicyDocument.LegacyVersion)
                    {
                        Error(issues, path, "version", $"Version is \"{PolicyDocument.CurrentVersion}\" (or the legacy \"{PolicyDocument.LegacyVersion}\").");
                    }

                    break;
                case "Id":
                    id = ReadString(property.Value, path, issues);
                    break;
                case "Statement":
                    statementElement = property.Value;
                    break;
                default:
                    Error(issues, path, "unknown-element", $"'{property.Name}' is not a policy element ({string.Join(", ", TopLevel)}).");
                    break;
            }
        }

        if (statementElement is null)
        {
            Error(issues, "$.Statement", "required", "Statement is required.");
            return null;
        }

        var variables = version == PolicyDocument.CurrentVersion;
        var statements = new List<PolicyStatement>();
        var sids = new HashSet<string>(StringComparer.Ordinal);
        var element = statementElement.Value;
        if (element.ValueKind == JsonValueKind.Object)
        {
            AddStatement(element, "$.Statement");
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            if (element.GetArrayLength() == 0)
            {
                Error(issues, "$.Statement", "empty", "Statement needs at least one statement.");
            }

            var i = 0;
            foreach (var item in element.EnumerateArray())
            {
                AddStatement(item, $"$.Statement[{i++}]");
            }
        }
        else
        {
            Error(issues, "$.Statement", "type", "Statement is an object or an array of objects.");
        }

        return new PolicyDocument { Version = version, Id = id, Statements = statements };

        void AddStatement(JsonElement item, string path)
        {
            var statement = ReadStatement(item, path, variables, issues);
            if (statement is null)
            {
                return;
            }

            if (statement.Sid is { } sid && !sids.Add(sid))
            {
                Error(issues, path + ".Sid", "duplicate-sid", $"Sid '{sid}' is used by another statement of this policy.");
            }

            statements.Add(statement);
        }
    }

    private static PolicyStatement? ReadStatement(JsonElement element, string path, bool variables, List<PolicyIssue> issues)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            Error(issues, path, "type", "A statement is a JSON object.");
            return null;
        }

        var before = issues.Count;
        string? sid = null;
        PolicyEffect? effect = null;
        List<string>? actions = null, notActions = null, resources = null, notResources = null;
        var conditions = new List<PolicyCondition>();
        foreach (var property in element.EnumerateObject())
        {
            var at = path + "." + property.Name;
            switch (property.Name)
            {
                case "Sid":
                    sid = ReadString(property.Value, at, issues);
                    if (sid is not null && !SidPattern().IsMatch(sid))
                    {
                        Error(issues, at, "sid", "A Sid is letters and digits only.");
                    }

                    break;
                case "Effect":
                    var text = ReadString(property.Value, at, issues);
                    if (text == "Allow")
                    {
                        effect = PolicyEffect.Allow;
                    }
                    else if (text == "Deny")
                    {
                        effect = PolicyEffect.Deny;
                    }
                    else if (text is not null)
                    {
                        Error(issues, at, "effect", $"Effect is \"Allow\" or \"Deny\" (case-sensitive), not \"{text}\".");
                    }

                    break;
                case "Action":
                    actions = ReadStrings(property.Value, at, issues, CheckAction);
                    break;
                case "NotAction":
                    notActions = ReadStrings(property.Value, at, issues, CheckAction);
                    break;
                case "Resource":
                    resources = ReadStrings(property.Value, at, issues, CheckResource);
                    break;
                case "NotResource":
                    notResources = ReadStrings(property.Value, at, issues, CheckResource);
                    break;
                case "Condition":
                    ReadConditions(property.Value, at, issues, conditions);
                    break;
                case "Principal" or "NotPrincipal":
                    Error(issues, at, "principal", $"{property.Name} belongs in resource-based policies; identity, session and guardrail policies apply to their principal already.");
                    break;
                default:
                    Error(issues, at, "unknown-element", $"'{property.Name}' is not a statement element ({string.Join(", ", StatementElements)}).");
                    break;
            }
        }

        if (effect is null && !issues.Skip(before).Any(i => i.Path == path + ".Effect"))
        {
            Error(issues, path + ".Effect", "required", "Effect is required.");
        }

        if ((actions is null) == (notActions is null) && !issues.Skip(before).Any(i => i.Path.StartsWith(path + ".Action", StringComparison.Ordinal) || i.Path.StartsWith(path + ".NotAction", StringComparison.Ordinal)))
        {
            Error(issues, path + ".Action", actions is null ? "required" : "exclusive", actions is null ? "Action or NotAction is required." : "Use Action or NotAction, not both.");
        }

        if ((resources is null) == (notResources is null) && !issues.Skip(before).Any(i => i.Path.StartsWith(path + ".Resource", StringComparison.Ordinal) || i.Path.StartsWith(path + ".NotResource", StringComparison.Ordinal)))
        {
            Error(issues, path + ".Resource", resources is null ? "required" : "exclusive", resources is null ? "Resource or NotResource is required." : "Use Resource or NotResource, not both.");
        }

        if (issues.Skip(before).Any(i => i.Severity == IssueSeverity.Error))
        {
            return null;
        }

        return new PolicyStatement
        {
            Sid = sid,
            Effect = effect!.Value,
            Actions = actions ?? notActions!,
            NotAction = notActions is not null,
            Resources = resources ?? notResources!,
            NotResource = notResources is not null,
            Conditions = conditions,
            Path = path,
        };
    }

    private static string? CheckAction(string action) =>
        action == "*" || ActionPattern().IsMatch(action) ? null : $"'{action}' is not an action: write service:Action (wildcards * and ? allowed), e.g. storage:GetObject.";

    private static string? CheckResource(string resource) =>
        resource.Length == 0 ? "A resource is not empty."
        : resource == "*" || resource.StartsWith("trn:", StringComparison.Ordinal) || resource.StartsWith("arn:", StringComparison.Ordinal) ? null
        : $"'{resource}' is not a resource: write * or a trn:/arn: name, e.g. trn:tenantry:storage::acme:tenants/acme/*.";

    private static void ReadConditions(JsonElement element, string path, List<PolicyIssue> issues, List<PolicyCondition> conditions)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            Error(issues, path, "type", "Condition is an object of operators.");
            return;
        }

        foreach (var block in element.EnumerateObject())
        {
            var opPath = path + "." + block.Name;
            if (!ConditionOperators.TryParse(block.Name, out var op, out var qualifier, out var ifExists))
            {
                Error(issues, opPath, "operator", $"'{block.Name}' is not a condition operator.");
                continue;
            }

            if (block.Value.ValueKind != JsonValueKind.Object || !block.Value.EnumerateObject().Any())
            {
                Error(issues, opPath, "type", "A condition operator takes an object of condition keys and their values.");
                continue;
            }

            foreach (var key in block.Value.EnumerateObject())
            {
                var keyPath = $"{opPath}['{key.Name}']";
                var values = ReadValues(key.Value, keyPath, issues);
                if (values is null)
                {
                    continue;
                }

                if (key.Name.Length == 0)
                {
                    Error(issues, keyPath, "key", "A condition key is not empty.");
                    continue;
                }

                for (var i = 0; i < values.Count; i++)
                {
                    if (CheckValue(op, values[i]) is { } problem)
                    {
                        Error(issues, values.Count == 1 && key.Value.ValueKind != JsonValueKind.Array ? keyPath : $"{keyPath}[{i}]", "value", problem);
                    }
                }

                conditions.Add(new PolicyCondition
                {
                    Operator = block.Name,
                    BaseOperator = op,
                    Qualifier = qualifier,
                    IfExists = ifExists,
                    Key = key.Name,
                    Values = values,
                    Path = keyPath,
                });
            }
        }
    }

    private static string? CheckValue(ConditionOperator op, string value) => op switch
    {
        >= ConditionOperator.NumericEquals and <= ConditionOperator.NumericGreaterThanEquals when !ConditionValues.TryNumber(value, out _) => $"'{value}' is not a number.",
        >= ConditionOperator.DateEquals and <= ConditionOperator.DateGreaterThanEquals when !ConditionValues.TryDate(value, out _) => $"'{value}' is not a date (ISO 8601 or epoch seconds).",
        ConditionOperator.Bool or ConditionOperator.Null when !ConditionValues.TryBool(value, out _) => $"'{value}' is not true or false.",
        ConditionOperator.IpAddress or ConditionOperator.NotIpAddress when !ConditionValues.TryNetwork(value, out _) => $"'{value}' is not an IP address or CIDR block.",
        ConditionOperator.BinaryEquals when !IsBase64(value) => $"'{value}' is not base64.",
        >= ConditionOperator.ArnEquals and <= ConditionOperator.ArnNotLike when value.Split(':', 6).Length != 6 => $"'{value}' is not an ARN (six parts separated by ':').",
        _ => null,
    };

    private static bool IsBase64(string value)
    {
        Span<byte> buffer = stackalloc byte[256];
        return value.Length <= 340 && Convert.TryFromBase64String(value, buffer, out _);
    }

    private static List<string>? ReadValues(JsonElement element, string path, List<PolicyIssue> issues)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            var values = new List<string>();
            var i = 0;
            foreach (var item in element.EnumerateArray())
            {
                if (Scalar(item) is { } value)
                {
                    values.Add(value);
                }
                else
                {
                    Error(issues, $"{path}[{i}]", "type", "A condition value is a string, a number or a boolean.");
                    return null;
                }

                i++;
            }

            if (values.Count == 0)
            {
                Error(issues, path, "empty", "A condition key needs at least one value.");
                return null;
            }

            return values;
        }

        if (Scalar(element) is { } single)
        {
            return [single];
        }

        Error(issues, path, "type", "A condition value is a string, a number, a boolean or an array of them.");
        return null;
    }

    private static string? Scalar(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Number => element.GetRawText(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        _ => null,
    };

    private static List<string>? ReadStrings(JsonElement element, string path, List<PolicyIssue> issues, Func<string, string?> check)
    {
        var values = new List<string>();
        if (element.ValueKind == JsonValueKind.String)
        {
            Add(element.GetString()!, path);
        }
        else if (element.ValueKind == JsonValueKind.Array && element.GetArrayLength() > 0)
        {
            var i = 0;
            foreach (var item in element.EnumerateArray())
            {
                var at = $"{path}[{i++}]";
                if (item.ValueKind == JsonValueKind.String)
                {
                    Add(item.GetString()!, at);
                }
                else
                {
                    Error(issues, at, "type", "Each entry is a string.");
                }
            }
        }
        else
        {
            Error(issues, path, "type", "A string or a non-empty array of strings is expected.");
            return null;
        }

        return values;

        void Add(string value, string at)
        {
            if (check(value) is { } problem)
            {
                Error(issues, at, "value", problem);
            }

            values.Add(value);
        }
    }

    private static string? ReadString(JsonElement element, string path, List<PolicyIssue> issues)
    {
        if (element.ValueKind == JsonValueKind.String)
        {
            return element.GetString();
        }

        Error(issues, path, "type", "A string is expected.");
        return null;
    }

    private static void Error(List<PolicyIssue> issues, string path, string code, string message) =>
        issues.Add(new PolicyIssue(IssueSeverity.Error, path, code, message));

    [GeneratedRegex("^[A-Za-z0-9]*$")]
    private static partial Regex SidPattern();

    [GeneratedRegex(@"^[A-Za-z0-9*?-]+:[A-Za-z0-9*?\-_.]+$")]
    private static partial Regex ActionPattern();
}
