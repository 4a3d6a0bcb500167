using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Tenantry.Policies;

namespace Tenantry.ControlPlane.Policies;

/// <summary>Where the exported AWS policy points: the S3 bucket holding <c>tenants/{tenant}/</c> and the pooled DynamoDB table.</summary>
public sealed partial record AwsTarget(string Bucket, string Table, string Region, string Account)
{
    public const string DefaultBucket = "tenantry-objects";
    public const string DefaultTable = "tenantry";

    public (string Field, string Message)? Check() =>
        !BucketPattern().IsMatch(Bucket) ? ("bucket", "An S3 bucket name is 3-63 lowercase letters, digits, '.' and '-'.")
        : !TablePattern().IsMatch(Table) ? ("table", "A DynamoDB table name is 3-255 letters, digits, '_', '-' and '.'.")
        : Region != "*" && !RegionPattern().IsMatch(Region) ? ("region", "A region looks like eu-west-1 (or * for any).")
        : Account != "*" && !AccountPattern().IsMatch(Account) ? ("account", "An AWS account id is 12 digits (or * for any).")
        : null;

    [GeneratedRegex(@"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\z")]
    private static partial Regex BucketPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_.-]{3,255}\z")]
    private static partial Regex TablePattern();

    [GeneratedRegex(@"^[a-z]{2}(-[a-z]+)+-[0-9]\z")]
    private static partial Regex RegionPattern();

    [GeneratedRegex(@"^[0-9]{12}\z")]
    private static partial Regex AccountPattern();
}

/// <summary>
/// Translates a tenant's session policy to AWS IAM: <c>storage:*</c> actions on
/// <c>trn:tenantry:storage::{t}:tenants/{t}/…</c> become S3 actions on the bucket's same prefix
/// (listing becomes <c>s3:ListBucket</c> with an <c>s3:prefix</c> condition), and a DynamoDB
/// statement limits items to the tenant's leading key.
/// </summary>
internal static class AwsExport
{
    private static readonly Dictionary<string, string> S3Actions = new(StringComparer.OrdinalIgnoreCase)
    {
        [PlatformPolicies.GetObject] = "s3:GetObject",
        [PlatformPolicies.PutObject] = "s3:PutObject",
        [PlatformPolicies.DeleteObject] = "s3:DeleteObject",
    };

    private static readonly Dictionary<string, string> Keys = new(StringComparer.OrdinalIgnoreCase)
    {
        ["storage:prefix"] = "s3:prefix",
        ["storage:delimiter"] = "s3:delimiter",
        ["tenantry:TenantId"] = "aws:PrincipalTag/TenantId",
        ["tenantry:TenantSlug"] = "aws:PrincipalTag/TenantSlug",
        ["tenantry:Tier"] = "aws:PrincipalTag/Tier",
        ["tenantry:Role"] = "aws:PrincipalTag/Role",
    };

    private static readonly string[] DynamoActions =
        ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"];

    public static JsonObject Export(PolicyDocument session, Guid tenantId, string slug, AwsTarget target)
    {
        var statements = new JsonArray();
        foreach (var statement in session.Statements)
        {
            var actions = PlatformPolicies.StorageActions
                .Where(a => statement.Actions.Any(p => Wildcards.IsMatch(p, a, ignoreCase: true)) != statement.NotAction)
                .ToList();
            var sid = statement.Sid ?? "Tenant";
            var objectActions = actions.Where(S3Actions.ContainsKey).Select(a => S3Actions[a]).ToList();
            if (objectActions.Count > 0)
            {
                var s = Statement(sid + "S3", statement, objectActions);
                s[statement.NotResource ? "NotResource" : "Resource"] = Values(statement.Resources.Select(r => ObjectArn(r, target)));
                AddConditions(s, statement, null);
                statements.Add(s);
            }

            if (actions.Contains(PlatformPolicies.ListObjects) && !statement.NotResource)
            {
                var s = Statement(sid + "S3List", statement, ["s3:ListBucket"]);
                s["Resource"] = $"arn:aws:s3:::{target.Bucket}";
                var prefixes = statement.Resources.Select(Path).ToList();
                AddConditions(s, statement, prefixes.Contains(null) ? null : [.. prefixes.OfType<string>()]);
                statements.Add(s);
            }
        }

        statements.Add(new JsonObject
        {
            ["Sid"] = "TenantItems",
            ["Effect"] = "Allow",
            ["Action"] = Values(DynamoActions),
            ["Resource"] = $"arn:aws:dynamodb:{target.Region}:{target.Account}:table/{target.Table}",
            ["Condition"] = new JsonObject
            {
                ["ForAllValues:StringEquals"] = new JsonObject { ["dynamodb:LeadingKeys"] = Values([tenantId.ToString()]) },
                ["Null"] = new JsonObject { ["dynamodb:LeadingKeys"] = "false" },
            },
        });

        return new JsonObject
        {
            ["Version"] = PolicyDocument.CurrentVersion,
            ["Id"] = $"tenantry-tenant-{slug}",
            ["Statement"] = statements,
        };
    }

    private static JsonObject Statement(string sid, PolicyStatement statement, IEnumerable<string> actions) => new()
    {
        ["Sid"] = new string([.. sid.Where(char.IsAsciiLetterOrDigit)]),
        ["Effect"] = statement.Effect.ToString(),
        ["Action"] = Values(actions),
    };

    private static void AddConditions(JsonObject target, PolicyStatement statement, List<string>? prefixes)
    {
        var condition = new JsonObject();
        foreach (var c in statement.Conditions)
        {
            if (condition[c.Operator] is not JsonObject block)
            {
                block = new JsonObject();
                condition[c.Operator] = block;
            }

            block[Keys.TryGetValue(c.Key, out var key) ? key : c.Key] = Values(c.Values);
        }

        if (prefixes is { Count: > 0 })
        {
            if (condition["StringLike"] is not JsonObject like)
            {
                like = new JsonObject();
                condition["StringLike"] = like;
            }

            like["s3:prefix"] ??= Values(prefixes);
        }

        if (condition.Count > 0)
        {
            target["Condition"] = condition;
        }
    }

    /// <summary>The path inside the bucket of a platform resource; null for <c>*</c> (any).</summary>
    private static string? Path(string resource)
    {
        if (resource == "*")
        {
            return null;
        }

        var parts = resource.Split(':', 6);
        return parts.Length == 6 && parts[0] == "trn" && parts[2] == "storage" ? parts[5] : null;
    }

    private static string ObjectArn(string resource, AwsTarget target) =>
        Path(resource) is { } path ? $"arn:aws:s3:::{target.Bucket}/{path}" : resource == "*" ? "*" : resource;

    private static JsonArray Values(IEnumerable<string> values) => new([.. values.Select(v => (JsonNode)JsonValue.Create(v))]);
}
