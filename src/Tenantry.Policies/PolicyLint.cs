namespace Tenantry.Policies;

/// <summary>
/// Warnings for policies that are valid but do not do what they seem to: the traps that IAM
/// Access Analyzer reports, and the one the AWS SaaS Factory template shipped
/// (<c>"dynamodb: LeadingKeys"</c>, a key that never exists, so a negated or IfExists condition
/// on it lets every tenant through).
/// </summary>
internal static class PolicyLint
{
    public static void Check(PolicyDocument document, List<PolicyIssue> issues)
    {
        if (document.Version is null)
        {
            issues.Add(new PolicyIssue(IssueSeverity.Warning, "$.Version", "missing-version",
                $"Without \"Version\": \"{PolicyDocument.CurrentVersion}\" the policy is read as {PolicyDocument.LegacyVersion}: ${{…}} policy variables are plain text."));
        }

        foreach (var statement in document.Statements)
        {
            foreach (var condition in statement.Conditions)
            {
                CheckKey(condition, issues);
                CheckSetOperator(statement, condition, issues);
                CheckNegated(statement, condition, issues);
                CheckVariables(document, condition.Values, condition.Path, issues);
            }

            for (var i = 0; i < statement.Resources.Count; i++)
            {
                CheckVariables(document, [statement.Resources[i]], $"{statement.Path}.{(statement.NotResource ? "NotResource" : "Resource")}[{i}]", issues);
            }

            if (statement.Effect == PolicyEffect.Allow && (statement.NotAction || statement.NotResource))
            {
                issues.Add(new PolicyIssue(IssueSeverity.Warning, statement.Path + (statement.NotAction ? ".NotAction" : ".NotResource"), "allow-with-not",
                    "Allow with NotAction/NotResource grants everything not listed, including actions and resources added later."));
            }
        }
    }

    private static void CheckKey(PolicyCondition condition, List<PolicyIssue> issues)
    {
        if (condition.Key.Any(char.IsWhiteSpace))
        {
            var fixedKey = string.Concat(condition.Key.Where(c => !char.IsWhiteSpace(c)));
            issues.Add(new PolicyIssue(IssueSeverity.Warning, condition.Path, "key-whitespace",
                $"The condition key '{condition.Key}' contains whitespace: no request ever has this key, so the condition never sees a value{(ConditionKeys.IsKnown(fixedKey) ? $" (did you mean '{fixedKey}'?)" : "")}."));
        }
        else if (!ConditionKeys.IsKnown(condition.Key))
        {
            issues.Add(new PolicyIssue(IssueSeverity.Warning, condition.Path, "unknown-key",
                $"The condition key '{condition.Key}' is not one the platform sets: the condition sees it as missing."));
        }
    }

    private static void CheckSetOperator(PolicyStatement statement, PolicyCondition condition, List<PolicyIssue> issues)
    {
        if (condition.Qualifier == SetQualifier.ForAllValues && statement.Effect == PolicyEffect.Allow && !condition.IfExists && !HasNullGuard(statement, condition.Key))
        {
            issues.Add(new PolicyIssue(IssueSeverity.Warning, condition.Path, "forallvalues-without-null-guard",
                $"ForAllValues is true when '{condition.Key}' is missing or empty, so this Allow also grants requests without it. Add \"Null\": {{\"{condition.Key}\": \"false\"}}."));
        }

        if (condition.Qualifier != SetQualifier.None && ConditionKeys.IsSingleValued(condition.Key))
        {
            issues.Add(new PolicyIssue(IssueSeverity.Warning, condition.Path, "set-operator-on-single-valued-key",
                $"'{condition.Key}' holds one value; {condition.Qualifier} is meant for multi-valued keys."));
        }
        else if (condition.Qualifier == SetQualifier.None && condition.BaseOperator != ConditionOperator.Null && ConditionKeys.IsMultiValued(condition.Key))
        {
            issues.Add(new PolicyIssue(IssueSeverity.Warning, condition.Path, "single-operator-on-multi-valued-key",
                $"'{condition.Key}' can hold several values: say ForAnyValue: or ForAllValues: so the intent is explicit."));
        }
    }

    private static void CheckNegated(PolicyStatement statement, PolicyCondition condition, List<PolicyIssue> issues)
    {
        if (statement.Effect == PolicyEffect.Allow && ConditionOperators.IsNegated(condition.BaseOperator) && condition.Qualifier == SetQualifier.None
            && !ConditionKeys.IsAlwaysPresent(condition.Key) && !HasNullGuard(statement, condition.Key))
        {
            issues.Add(new PolicyIssue(IssueSeverity.Warning, condition.Path, "negated-operator-on-missing-key",
                $"{condition.Operator} is true when '{condition.Key}' is missing, so this Allow also grants requests without it. Add \"Null\": {{\"{condition.Key}\": \"false\"}}."));
        }
    }

    private static void CheckVariables(PolicyDocument document, IReadOnlyList<string> values, string path, List<PolicyIssue> issues)
    {
        foreach (var value in values)
        {
            var at = value.IndexOf("${", StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }

            if (!document.SupportsVariables)
            {
                issues.Add(new PolicyIssue(IssueSeverity.Warning, path, "variable-in-legacy-version", $"'{value}' uses a policy variable, but only version {PolicyDocument.CurrentVersion} substitutes them."));
                return;
            }

            for (; at >= 0; at = value.IndexOf("${", at + 2, StringComparison.Ordinal))
            {
                if (!PolicyVariable.TryRead(value, at, out var variable, out _))
                {
                    issues.Add(new PolicyIssue(IssueSeverity.Warning, path, "variable-syntax", $"'{value}' has a '${{' that is not a variable (${{key}} or ${{key, 'default'}}): it is matched as text."));
                }
                else if (variable.Key is not ("*" or "?" or "$") && !ConditionKeys.IsKnown(variable.Key))
                {
                    issues.Add(new PolicyIssue(IssueSeverity.Warning, path, "unknown-variable", $"The variable '{variable.Key}' is not a key the platform sets: without a default the element matches nothing."));
                }
            }
        }
    }

    private static bool HasNullGuard(PolicyStatement statement, string key) => statement.Conditions.Any(c =>
        c.BaseOperator == ConditionOperator.Null && string.Equals(c.Key, key, StringComparison.OrdinalIgnoreCase) && c.Values.Contains("false", StringComparer.OrdinalIgnoreCase));
}

/// <summary>The condition keys the platform knows: AWS global keys, S3/DynamoDB keys used in exports, and Tenantry's own.</summary>
public static class ConditionKeys
{
    /// <summary>Keys Tenantry sets on every platform request.</summary>
    public static readonly IReadOnlyList<string> Platform =
    [
        "tenantry:TenantId", "tenantry:TenantSlug", "tenantry:Tier", "tenantry:PrincipalType", "tenantry:Role",
        "aws:username", "aws:userid", "aws:PrincipalType", "aws:CurrentTime", "aws:EpochTime",
        "aws:PrincipalTag/TenantId", "aws:PrincipalTag/Tier",
    ];

    private static readonly HashSet<string> Exact = new(StringComparer.OrdinalIgnoreCase)
    {
        "tenantry:TenantId", "tenantry:TenantSlug", "tenantry:Tier", "tenantry:PrincipalType", "tenantry:Role", "tenantry:Groups",
        "storage:prefix", "storage:delimiter",
        "aws:username", "aws:userid", "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalOrgID", "aws:PrincipalOrgPaths",
        "aws:PrincipalType", "aws:PrincipalIsAWSService", "aws:PrincipalServiceName", "aws:CurrentTime", "aws:EpochTime",
        "aws:SourceIp", "aws:SecureTransport", "aws:RequestedRegion", "aws:MultiFactorAuthPresent", "aws:MultiFactorAuthAge",
        "aws:TokenIssueTime", "aws:SourceVpc", "aws:SourceVpce", "aws:VpcSourceIp", "aws:SourceArn", "aws:SourceAccount",
        "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:ViaAWSService", "aws:TagKeys", "aws:UserAgent", "aws:Referer",
        "aws:FederatedProvider", "aws:SourceIdentity", "aws:ResourceAccount", "aws:ResourceOrgID",
        "s3:prefix", "s3:delimiter", "s3:max-keys", "s3:x-amz-acl", "s3:x-amz-server-side-encryption", "s3:signatureversion",
        "dynamodb:LeadingKeys", "dynamodb:Attributes", "dynamodb:Select", "dynamodb:ReturnValues", "dynamodb:ReturnConsumedCapacity",
    };

    private static readonly string[] Prefixes = ["aws:PrincipalTag/", "aws:RequestTag/", "aws:ResourceTag/", "s3:ExistingObjectTag/", "s3:RequestObjectTag/"];

    private static readonly HashSet<string> MultiValued = new(StringComparer.OrdinalIgnoreCase)
    {
        "aws:TagKeys", "aws:CalledVia", "aws:PrincipalOrgPaths", "dynamodb:LeadingKeys", "dynamodb:Attributes", "tenantry:Groups",
    };

    /// <summary>Keys present on every request the platform evaluates (negated operators on them are safe).</summary>
    private static readonly HashSet<string> AlwaysPresent = new(StringComparer.OrdinalIgnoreCase)
    {
        "tenantry:TenantId", "tenantry:TenantSlug", "tenantry:Tier", "tenantry:PrincipalType",
        "aws:CurrentTime", "aws:EpochTime", "aws:SecureTransport", "aws:PrincipalType", "aws:RequestedRegion", "aws:PrincipalArn", "aws:userid", "aws:SourceIp",
    };

    public static bool IsKnown(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (Exact.Contains(key))
        {
            return true;
        }

        foreach (var prefix in Prefixes)
        {
            if (key.Length > prefix.Length && key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && !key.Any(char.IsWhiteSpace))
            {
                return true;
            }
        }

        return false;
    }

    public static bool IsMultiValued(string key) => MultiValued.Contains(key);

    public static bool IsSingleValued(string key) => IsKnown(key) && !IsMultiValued(key);

    public static bool IsAlwaysPresent(string key) => AlwaysPresent.Contains(key);
}
