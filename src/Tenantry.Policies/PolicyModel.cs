namespace Tenantry.Policies;

public enum PolicyEffect
{
    Allow,
    Deny,
}

/// <summary>A parsed IAM policy document, as written (before compilation).</summary>
public sealed record PolicyDocument
{
    public const string CurrentVersion = "2012-10-17";
    public const string LegacyVersion = "2008-10-17";

    /// <summary>The <c>Version</c> element; without one AWS reads the document as 2008-10-17 (no policy variables).</summary>
    public string? Version { get; init; }

    public string? Id { get; init; }

    public required IReadOnlyList<PolicyStatement> Statements { get; init; }

    /// <summary>Policy variables (<c>${…}</c>) are only substituted from version 2012-10-17 on.</summary>
    public bool SupportsVariables => Version == CurrentVersion;
}

public sealed record PolicyStatement
{
    public string? Sid { get; init; }

    public required PolicyEffect Effect { get; init; }

    /// <summary>The patterns of <c>Action</c>, or of <c>NotAction</c> when <see cref="NotAction"/> is set.</summary>
    public required IReadOnlyList<string> Actions { get; init; }

    public bool NotAction { get; init; }

    /// <summary>The patterns of <c>Resource</c>, or of <c>NotResource</c> when <see cref="NotResource"/> is set.</summary>
    public required IReadOnlyList<string> Resources { get; init; }

    public bool NotResource { get; init; }

    public IReadOnlyList<PolicyCondition> Conditions { get; init; } = [];

    /// <summary>Where the statement sits in its document (<c>$.Statement[1]</c>).</summary>
    public required string Path { get; init; }
}

/// <summary>One operator/key pair of a <c>Condition</c> block, e.g. <c>ForAllValues:StringLikeIfExists</c> on <c>aws:TagKeys</c>.</summary>
public sealed record PolicyCondition
{
    /// <summary>The operator as written, with its qualifier and <c>IfExists</c>.</summary>
    public required string Operator { get; init; }

    public required ConditionOperator BaseOperator { get; init; }

    public SetQualifier Qualifier { get; init; }

    public bool IfExists { get; init; }

    public required string Key { get; init; }

    public required IReadOnlyList<string> Values { get; init; }

    public required string Path { get; init; }
}

public enum SetQualifier
{
    None,
    ForAnyValue,
    ForAllValues,
}

public enum ConditionOperator
{
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

public static class ConditionOperators
{
    /// <summary>Operators that hold when the context value does not match (and so when the key is missing).</summary>
    public static bool IsNegated(ConditionOperator op) => op is ConditionOperator.StringNotEquals or ConditionOperator.StringNotEqualsIgnoreCase
        or ConditionOperator.StringNotLike or ConditionOperator.NumericNotEquals or ConditionOperator.DateNotEquals
        or ConditionOperator.NotIpAddress or ConditionOperator.ArnNotEquals or ConditionOperator.ArnNotLike;

    public static bool TryParse(string text, out ConditionOperator op, out SetQualifier qualifier, out bool ifExists)
    {
        ArgumentNullException.ThrowIfNull(text);
        qualifier = SetQualifier.None;
        var name = text.AsSpan();
        if (name.StartsWith("ForAnyValue:", StringComparison.Ordinal))
        {
            qualifier = SetQualifier.ForAnyValue;
            name = name["ForAnyValue:".Length..];
        }
        else if (name.StartsWith("ForAllValues:", StringComparison.Ordinal))
        {
            qualifier = SetQualifier.ForAllValues;
            name = name["ForAllValues:".Length..];
        }

        ifExists = name.EndsWith("IfExists", StringComparison.Ordinal);
        if (ifExists)
        {
            name = name[..^"IfExists".Length];
        }

        // Enum.TryParse would accept numbers and any case; IAM operator names are exact.
        foreach (var candidate in Enum.GetValues<ConditionOperator>())
        {
            if (name.SequenceEqual(candidate.ToString()))
            {
                op = candidate;
                return !(op == ConditionOperator.Null && (ifExists || qualifier != SetQualifier.None));
            }
        }

        op = default;
        return false;
    }
}
