using static Tenantry.Policies.Tests.Policies;

namespace Tenantry.Policies.Tests;

public sealed class ConditionTests
{
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String
    // StringEquals on aws:PrincipalTag/job-category "iamuser-admin"; case-sensitive.
    [Fact]
    public void StringEquals_is_exact_and_case_sensitive()
    {
        var set = AllowWhen("""{"StringEquals":{"aws:PrincipalTag/job-category":"iamuser-admin"}}""", "iam:*");
        Assert.Equal(Decision.Allow, set.Decide("iam:CreateUser", "*", Context(("aws:PrincipalTag/job-category", ["iamuser-admin"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("iam:CreateUser", "*", Context(("aws:PrincipalTag/job-category", ["IAMUSER-admin"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("iam:CreateUser", "*"));
    }

    // Same page: condition key names are case-insensitive (aws:principaltag/Job-Category).
    [Fact]
    public void Condition_key_names_are_case_insensitive()
    {
        var set = AllowWhen("""{"StringEquals":{"aws:PrincipalTag/job-category":"iamuser-admin"}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("AWS:principaltag/JOB-CATEGORY", ["iamuser-admin"]))));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String
    // StringEqualsIgnoreCase / StringNotEquals.
    [Fact]
    public void StringEqualsIgnoreCase_and_StringNotEquals()
    {
        var ignoreCase = AllowWhen("""{"StringEqualsIgnoreCase":{"aws:PrincipalTag/dept":"Sales"}}""");
        Assert.Equal(Decision.Allow, ignoreCase.Decide("s3:GetObject", "x", Context(("aws:PrincipalTag/dept", ["SALES"]))));
        var notEquals = AllowWhen("""{"StringNotEquals":{"aws:PrincipalTag/dept":["hr","legal"]}}""");
        Assert.Equal(Decision.Allow, notEquals.Decide("s3:GetObject", "x", Context(("aws:PrincipalTag/dept", ["sales"]))));
        Assert.Equal(Decision.ImplicitDeny, notEquals.Decide("s3:GetObject", "x", Context(("aws:PrincipalTag/dept", ["legal"]))));
        // A negated operator on a missing key evaluates true (hence the validator's warning).
        Assert.Equal(Decision.Allow, notEquals.Decide("s3:GetObject", "x"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_String
    // StringLike s3:prefix ["", "home/", "home/${aws:username}/"], several values are OR-ed.
    [Fact]
    public void StringLike_with_several_values_is_an_or_and_resolves_variables()
    {
        var set = AllowWhen("""{"StringLike":{"s3:prefix":["","home/","home/${aws:username}/*"]}}""", "s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket");
        RequestContext As(string prefix) => Context(("s3:prefix", [prefix]), ("aws:username", ["johndoe"]));
        Assert.Equal(Decision.Allow, set.Decide("s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", As("")));
        Assert.Equal(Decision.Allow, set.Decide("s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", As("home/")));
        Assert.Equal(Decision.Allow, set.Decide("s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", As("home/johndoe/photos/")));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", As("home/janedoe/")));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Numeric
    // NumericLessThanEquals s3:max-keys 10.
    [Fact]
    public void Numeric_operators_compare_numbers_not_text()
    {
        var set = AllowWhen("""{"NumericLessThanEquals":{"s3:max-keys":"10"}}""", "s3:ListBucket");
        Assert.Equal(Decision.Allow, set.Decide("s3:ListBucket", "x", Context(("s3:max-keys", ["9"]))));
        Assert.Equal(Decision.Allow, set.Decide("s3:ListBucket", "x", Context(("s3:max-keys", ["10.0"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:ListBucket", "x", Context(("s3:max-keys", ["100"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:ListBucket", "x", Context(("s3:max-keys", ["many"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:ListBucket", "x"));
        Assert.Equal(Decision.Allow, AllowWhen("""{"NumericNotEquals":{"s3:max-keys":10}}""").Decide("s3:GetObject", "x", Context(("s3:max-keys", ["11"]))));
        Assert.Equal(Decision.Allow, AllowWhen("""{"NumericGreaterThan":{"s3:max-keys":10}}""").Decide("s3:GetObject", "x", Context(("s3:max-keys", ["11"]))));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Date
    // DateGreaterThan aws:TokenIssueTime "2020-01-01T00:00:01Z"; epoch values are accepted too.
    [Fact]
    public void Date_operators_accept_iso_8601_and_epoch_seconds()
    {
        var set = AllowWhen("""{"DateGreaterThan":{"aws:TokenIssueTime":"2020-01-01T00:00:01Z"}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("aws:TokenIssueTime", ["2021-06-01T12:00:00Z"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:TokenIssueTime", ["2019-12-31T23:59:59Z"]))));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("aws:TokenIssueTime", ["1700000000"]))));
        var before = AllowWhen("""{"DateLessThan":{"aws:CurrentTime":"1577836800"}}""");
        Assert.Equal(Decision.Allow, before.Decide("s3:GetObject", "x", Context(("aws:CurrentTime", ["2019-06-01T00:00:00Z"]))));
        Assert.Equal(Decision.ImplicitDeny, before.Decide("s3:GetObject", "x", Context(("aws:CurrentTime", ["2020-06-01T00:00:00Z"]))));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Boolean
    // Deny when aws:SecureTransport is false.
    [Fact]
    public void Bool_deny_on_insecure_transport()
    {
        var set = Set(
            """{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}""",
            """{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}}""");
        Assert.Equal(Decision.ExplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:SecureTransport", ["false"]))));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("aws:SecureTransport", ["true"]))));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IPAddress
    // IpAddress aws:SourceIp "203.0.113.0/24" / "2001:DB8:1234:5678::/64"; NotIpAddress.
    [Fact]
    public void IpAddress_matches_cidr_blocks_in_both_families()
    {
        var set = AllowWhen("""{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("aws:SourceIp", ["203.0.113.77"]))));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("aws:SourceIp", ["2001:db8:1234:5678::1"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:SourceIp", ["198.51.100.1"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:SourceIp", ["not-an-ip"]))));
        var outside = AllowWhen("""{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}""");
        Assert.Equal(Decision.Allow, outside.Decide("s3:GetObject", "x", Context(("aws:SourceIp", ["198.51.100.1"]))));
        Assert.Equal(Decision.ImplicitDeny, outside.Decide("s3:GetObject", "x", Context(("aws:SourceIp", ["203.0.113.1"]))));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_ARN
    // ArnLike aws:SourceArn "arn:aws:cloudtrail:*:111122223333:trail/*"; each of the six parts compared on its own.
    [Fact]
    public void Arn_operators_compare_part_by_part()
    {
        var set = AllowWhen("""{"ArnLike":{"aws:SourceArn":"arn:aws:cloudtrail:*:111122223333:trail/*"}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("aws:SourceArn", ["arn:aws:cloudtrail:us-east-1:111122223333:trail/main"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:SourceArn", ["arn:aws:cloudtrail:us-east-1:444455556666:trail/main"]))));
        // The region wildcard stays inside its part: it cannot swallow the account.
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:SourceArn", ["arn:aws:cloudtrail:a:b:111122223333:trail/x"]))));
        var notEquals = AllowWhen("""{"ArnNotEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:111122223333:topic"}}""");
        Assert.Equal(Decision.ImplicitDeny, notEquals.Decide("s3:GetObject", "x", Context(("aws:SourceArn", ["arn:aws:sns:us-east-1:111122223333:topic"]))));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists
    // StringLikeIfExists ec2:InstanceType ["t1.*","t2.*","m3.*"]: true when the key is absent.
    [Fact]
    public void IfExists_holds_when_the_key_is_missing_and_checks_it_when_present()
    {
        var set = AllowWhen("""{"StringLikeIfExists":{"ec2:InstanceType":["t1.*","t2.*","m3.*"]}}""", "ec2:*");
        Assert.Equal(Decision.Allow, set.Decide("ec2:RunInstances", "*", Context(("ec2:InstanceType", ["t2.micro"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("ec2:RunInstances", "*", Context(("ec2:InstanceType", ["c5.large"]))));
        Assert.Equal(Decision.Allow, set.Decide("ec2:RunInstances", "*"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Null
    // Null aws:TokenIssueTime "true": the key is absent (long-term credentials).
    [Fact]
    public void Null_checks_presence()
    {
        var absent = AllowWhen("""{"Null":{"aws:TokenIssueTime":"true"}}""");
        Assert.Equal(Decision.Allow, absent.Decide("s3:GetObject", "x"));
        Assert.Equal(Decision.ImplicitDeny, absent.Decide("s3:GetObject", "x", Context(("aws:TokenIssueTime", ["2026-01-01T00:00:00Z"]))));
        var present = AllowWhen("""{"Null":{"aws:TokenIssueTime":false}}""");
        Assert.Equal(Decision.Allow, present.Decide("s3:GetObject", "x", Context(("aws:TokenIssueTime", ["2026-01-01T00:00:00Z"]))));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html
    // Several operators and several keys are AND-ed; several values of one key are OR-ed.
    [Fact]
    public void Several_keys_and_operators_are_anded()
    {
        var set = AllowWhen("""{"StringEquals":{"aws:PrincipalTag/team":["blue","green"],"aws:PrincipalTag/env":"prod"},"Bool":{"aws:SecureTransport":"true"}}""");
        RequestContext With(string team, string env, string tls) => Context(("aws:PrincipalTag/team", [team]), ("aws:PrincipalTag/env", [env]), ("aws:SecureTransport", [tls]));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", With("green", "prod", "true")));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", With("green", "dev", "true")));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", With("green", "prod", "false")));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", With("red", "prod", "true")));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_BinaryEquals
    [Fact]
    public void BinaryEquals_compares_decoded_bytes()
    {
        var set = AllowWhen("""{"BinaryEquals":{"aws:PrincipalTag/key":"QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("aws:PrincipalTag/key", ["QmluYXJ5VmFsdWVJbkJhc2U2NA=="]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:PrincipalTag/key", ["QQ=="]))));
    }
}

public sealed class MultiValuedKeyTests
{
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
    // ForAllValues:StringEquals aws:TagKeys ["environment","cost-center"]: every request tag key must be listed.
    [Fact]
    public void ForAllValues_requires_every_request_value_in_the_policy_set()
    {
        var set = AllowWhen("""{"ForAllValues:StringEquals":{"aws:TagKeys":["environment","cost-center"]}}""", "ec2:CreateTags");
        Assert.Equal(Decision.Allow, set.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["environment"]))));
        Assert.Equal(Decision.Allow, set.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["environment", "cost-center"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["environment", "owner"]))));
        // Same page: "ForAllValues ... also returns true if there are no context keys in the request" — the trap.
        Assert.Equal(Decision.Allow, set.Decide("ec2:CreateTags", "*"));
        Assert.Equal(Decision.Allow, set.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", []))));
    }

    // Same page: ForAnyValue:StringEquals aws:TagKeys: at least one request value must be listed; a missing key is false.
    [Fact]
    public void ForAnyValue_requires_one_request_value_in_the_policy_set()
    {
        var set = AllowWhen("""{"ForAnyValue:StringEquals":{"aws:TagKeys":["environment","cost-center"]}}""", "ec2:CreateTags");
        Assert.Equal(Decision.Allow, set.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["owner", "cost-center"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["owner"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("ec2:CreateTags", "*"));
    }

    // Same page: a Null guard closes the ForAllValues hole for Allow statements.
    [Fact]
    public void Null_guard_makes_ForAllValues_refuse_requests_without_the_key()
    {
        var set = AllowWhen("""{"ForAllValues:StringEquals":{"aws:TagKeys":["environment"]},"Null":{"aws:TagKeys":"false"}}""", "ec2:CreateTags");
        Assert.Equal(Decision.ImplicitDeny, set.Decide("ec2:CreateTags", "*"));
        Assert.Equal(Decision.Allow, set.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["environment"]))));
    }

    // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html
    // ForAllValues:StringEquals dynamodb:LeadingKeys ["${www.amazon.com:user_id}"]: tenants limited to their own partition keys.
    [Fact]
    public void LeadingKeys_limit_items_to_the_principal_own_partition()
    {
        var set = AllowWhen("""{"ForAllValues:StringEquals":{"dynamodb:LeadingKeys":["${aws:PrincipalTag/TenantId}"]},"Null":{"dynamodb:LeadingKeys":"false"}}""", "dynamodb:GetItem");
        var acme = Context(("aws:PrincipalTag/TenantId", ["acme"]), ("dynamodb:LeadingKeys", ["acme"]));
        var spoof = Context(("aws:PrincipalTag/TenantId", ["acme"]), ("dynamodb:LeadingKeys", ["acme", "beta"]));
        Assert.Equal(Decision.Allow, set.Decide("dynamodb:GetItem", "*", acme));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("dynamodb:GetItem", "*", spoof));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("dynamodb:GetItem", "*", Context(("dynamodb:LeadingKeys", ["acme"]))));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
    // ForAllValues:StringNotLike / ForAnyValue:StringNotEquals apply the negation to each request value.
    [Fact]
    public void Negated_set_operators_apply_per_value()
    {
        var noneInternal = AllowWhen("""{"ForAllValues:StringNotLike":{"aws:TagKeys":"internal-*"},"Null":{"aws:TagKeys":"false"}}""", "ec2:CreateTags");
        Assert.Equal(Decision.Allow, noneInternal.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["owner", "env"]))));
        Assert.Equal(Decision.ImplicitDeny, noneInternal.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["owner", "internal-x"]))));
        var someOther = AllowWhen("""{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"owner"}}""", "ec2:CreateTags");
        Assert.Equal(Decision.Allow, someOther.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["owner", "env"]))));
        Assert.Equal(Decision.ImplicitDeny, someOther.Decide("ec2:CreateTags", "*", Context(("aws:TagKeys", ["owner"]))));
    }
}

public sealed class PolicyVariableTests
{
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
    // "arn:aws:s3:::amzn-s3-demo-bucket/${aws:username}/*": each user reaches only their own folder.
    [Fact]
    public void Username_variable_scopes_the_resource_to_the_caller()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/${aws:username}/*"}}""");
        var john = Context(("aws:username", ["johndoe"]));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/johndoe/a.txt", john));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/janedoe/a.txt", john));
    }

    // Same page: "If the variable ... is not present ... the policy element that contains it does not match."
    [Fact]
    public void Variable_without_value_makes_its_element_match_nothing()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::tenants/${aws:PrincipalTag/TenantId}/*","arn:aws:s3:::public/*"]}}""");
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::tenants//x"));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::tenants/${aws:PrincipalTag/TenantId}/x"));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::public/x"));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::tenants/acme/x", Context(("aws:PrincipalTag/TenantId", ["acme"]))));
        // A multi-valued key is not a variable value.
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::tenants/acme/x", Context(("aws:PrincipalTag/TenantId", ["acme", "beta"]))));
    }

    // Same page, "Special characters": ${*}, ${?}, ${$} stand for the literal characters.
    [Fact]
    public void Special_character_variables_are_literal()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${*}${?}${$}/*"}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::b/*?$/file"));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::b/abc/file"));
    }

    // Same page, "Specifying default values": ${aws:PrincipalTag/team, 'company-wide'}.
    [Fact]
    public void Default_value_is_used_when_the_key_is_missing()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::amzn-s3-demo-bucket/${aws:PrincipalTag/team, 'company-wide'}/*"}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/company-wide/a"));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/red/a", Context(("aws:PrincipalTag/team", ["red"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/company-wide/a", Context(("aws:PrincipalTag/team", ["red"]))));
    }

    // Same page: variables work only with "Version": "2012-10-17"; in 2008-10-17 they are literal text.
    [Fact]
    public void Variables_are_plain_text_in_the_legacy_version()
    {
        var set = Set("""{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}""");
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::b/johndoe/a", Context(("aws:username", ["johndoe"]))));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::b/${aws:username}/a", Context(("aws:username", ["johndoe"]))));
    }

    // Same page: a variable value is substituted as text; a '*' in it is not a wildcard.
    [Fact]
    public void Wildcard_in_a_variable_value_is_not_a_wildcard()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:PrincipalTag/TenantId}/*"}}""");
        var star = Context(("aws:PrincipalTag/TenantId", ["*"]));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::b/beta/secret", star));
    }

    // Same page: variables in condition values (StringEquals aws:PrincipalTag vs aws:ResourceTag).
    [Fact]
    public void Variables_in_condition_values()
    {
        var set = AllowWhen("""{"StringEquals":{"aws:ResourceTag/TenantId":"${aws:PrincipalTag/TenantId}"}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "x", Context(("aws:ResourceTag/TenantId", ["acme"]), ("aws:PrincipalTag/TenantId", ["acme"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:ResourceTag/TenantId", ["beta"]), ("aws:PrincipalTag/TenantId", ["acme"]))));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "x", Context(("aws:ResourceTag/TenantId", ["${aws:PrincipalTag/TenantId}"]))));
    }
}
