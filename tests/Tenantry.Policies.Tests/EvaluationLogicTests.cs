using static Tenantry.Policies.Tests.Policies;

namespace Tenantry.Policies.Tests;

public sealed class EvaluationLogicTests
{
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
    // "By default, all requests are implicitly denied" / "An explicit deny in any policy overrides any allows."
    [Fact]
    public void Request_without_any_allow_is_implicitly_denied()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::amzn-s3-demo-bucket"}}""");
        var decision = set.Evaluate(new AccessRequest("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/x", new RequestContext()));
        Assert.Equal(Decision.ImplicitDeny, decision.Decision);
        Assert.Equal(PolicyKind.Identity, decision.MissingAllow);
        Assert.Null(decision.DecidedBy);
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
    [Fact]
    public void Explicit_deny_in_another_policy_overrides_an_allow_and_names_the_statement()
    {
        var set = Set(
            """{"Version":"2012-10-17","Statement":{"Sid":"AllowAll","Effect":"Allow","Action":"s3:*","Resource":"*"}}""",
            """{"Version":"2012-10-17","Statement":[{"Sid":"Other","Effect":"Allow","Action":"ec2:*","Resource":"*"},{"Sid":"DenyPayroll","Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::hr/payroll/*"}]}""");
        var request = new AccessRequest("s3:GetObject", "arn:aws:s3:::hr/payroll/2026.csv", new RequestContext());
        var decision = set.Evaluate(request);
        Assert.Equal(Decision.ExplicitDeny, decision.Decision);
        Assert.Equal(new MatchedStatement("identity[1]", PolicyKind.Identity, "DenyPayroll", PolicyEffect.Deny, "$.Statement[1]"), decision.DecidedBy);
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::hr/handbook.pdf"));
        var explanation = set.Explain(request);
        Assert.Equal("DenyPayroll", Assert.Single(explanation.Matched).Sid);
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html
    // "Action ... values are case insensitive"; "iam:*AccessKey*" wildcards.
    [Fact]
    public void Actions_match_case_insensitively_with_wildcards()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["iam:*AccessKey*","s3:Get?bject"],"Resource":"*"}}""");
        Assert.Equal(Decision.Allow, set.Decide("iam:CreateAccessKey", "*"));
        Assert.Equal(Decision.Allow, set.Decide("IAM:listaccesskeys", "*"));
        Assert.Equal(Decision.Allow, set.Decide("s3:getobject", "arn:aws:s3:::b/k"));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("iam:CreateUser", "*"));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObjectAcl", "arn:aws:s3:::b/k"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
    // Resource ARNs are case-sensitive; "*" matches any run of characters, "?" one.
    [Fact]
    public void Resources_match_case_sensitively_with_wildcards()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":["arn:aws:s3:::amzn-s3-demo-bucket/Reports/*","arn:aws:s3:::other/file?.txt"]}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/Reports/2026/q1.pdf"));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/reports/2026/q1.pdf"));
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::other/file1.txt"));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::other/file12.txt"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html
    // "Allow ... NotAction iam:* Resource *" allows everything except IAM.
    [Fact]
    public void NotAction_in_an_allow_grants_every_other_action()
    {
        var set = Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:PutObject", "arn:aws:s3:::b/k"));
        Assert.Equal(Decision.ImplicitDeny, set.Decide("iam:CreateUser", "*"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html
    // Deny NotAction iam:* unless MFA: BoolIfExists aws:MultiFactorAuthPresent false.
    [Fact]
    public void NotAction_deny_with_BoolIfExists_denies_everything_but_iam_without_mfa()
    {
        var set = Set(
            """{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}""",
            """{"Version":"2012-10-17","Statement":{"Sid":"DenyAllUsersNotUsingMFA","Effect":"Deny","NotAction":"iam:*","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}}""");
        Assert.Equal(Decision.ExplicitDeny, set.Decide("s3:ListBucket", "*", Context(("aws:MultiFactorAuthPresent", ["false"]))));
        Assert.Equal(Decision.ExplicitDeny, set.Decide("s3:ListBucket", "*")); // key missing: IfExists holds
        Assert.Equal(Decision.Allow, set.Decide("s3:ListBucket", "*", Context(("aws:MultiFactorAuthPresent", ["true"]))));
        Assert.Equal(Decision.Allow, set.Decide("iam:ListUsers", "*"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notresource.html
    // Deny s3:* on everything but the HR payroll prefix.
    [Fact]
    public void NotResource_deny_spares_only_the_listed_resources()
    {
        var set = Set(
            """{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}""",
            """{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:*","NotResource":["arn:aws:s3:::HRBucket/Payroll","arn:aws:s3:::HRBucket/Payroll/*"]}}""");
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/jan.csv"));
        Assert.Equal(Decision.ExplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::HRBucket/Other"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session
    // "The resulting session's permissions are the intersection of the entity's identity-based
    // policy and the session policies." An explicit deny in a session policy also wins.
    [Fact]
    public void Session_policy_narrows_the_identity_policy_to_the_intersection()
    {
        var set = new PolicySet(
            [Identity("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}""")],
            [Session("""{"Version":"2012-10-17","Statement":{"Sid":"ReadOnly","Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"arn:aws:s3:::tenant-bucket/acme/*"}}""")]);
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::tenant-bucket/acme/a.txt"));
        var put = set.Evaluate(new AccessRequest("s3:PutObject", "arn:aws:s3:::tenant-bucket/acme/a.txt", new RequestContext()));
        Assert.Equal(Decision.ImplicitDeny, put.Decision);
        Assert.Equal(PolicyKind.Session, put.MissingAllow);
        Assert.Equal(Decision.ImplicitDeny, set.Decide("s3:GetObject", "arn:aws:s3:::tenant-bucket/beta/a.txt"));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session
    // A session policy cannot grant more than the identity policy allows.
    [Fact]
    public void Session_policy_cannot_grant_what_the_identity_policy_does_not()
    {
        var set = new PolicySet(
            [Identity("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}""")],
            [Session("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}""")]);
        var decision = set.Evaluate(new AccessRequest("s3:DeleteObject", "arn:aws:s3:::b/k", new RequestContext()));
        Assert.Equal(Decision.ImplicitDeny, decision.Decision);
        Assert.Equal(PolicyKind.Identity, decision.MissingAllow);
    }

    // https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps_evaluation.html
    // "SCPs don't grant permissions"; a request must be allowed by an SCP and by an identity policy;
    // an explicit Deny in an SCP overrides.
    [Fact]
    public void Guardrails_limit_and_never_grant()
    {
        var identity = Identity("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["s3:*","ec2:*"],"Resource":"*"}}""");
        var allowList = Guardrail("""{"Version":"2012-10-17","Statement":{"Sid":"AllowS3Only","Effect":"Allow","Action":"s3:*","Resource":"*"}}""", "allow-s3");
        var set = new PolicySet([identity], null, [allowList]);
        Assert.Equal(Decision.Allow, set.Decide("s3:GetObject", "arn:aws:s3:::b/k"));
        var ec2 = set.Evaluate(new AccessRequest("ec2:RunInstances", "*", new RequestContext()));
        Assert.Equal(Decision.ImplicitDeny, ec2.Decision);
        Assert.Equal(PolicyKind.Guardrail, ec2.MissingAllow);

        var onlyGuardrail = new PolicySet([], null, [allowList]);
        Assert.Equal(Decision.ImplicitDeny, onlyGuardrail.Decide("s3:GetObject", "arn:aws:s3:::b/k"));
    }

    // https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps_evaluation.html
    // Deny-list strategy: FullAWSAccess plus a Deny statement.
    [Fact]
    public void Guardrail_deny_wins_over_identity_and_session_allows()
    {
        var set = new PolicySet(
            [Identity("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}""")],
            [Session("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}""")],
            [
                Guardrail("""{"Version":"2012-10-17","Statement":{"Sid":"FullAWSAccess","Effect":"Allow","Action":"*","Resource":"*"}}""", "FullAWSAccess"),
                Guardrail("""{"Version":"2012-10-17","Statement":{"Sid":"NoDeletes","Effect":"Deny","Action":"s3:Delete*","Resource":"*"}}""", "no-deletes"),
            ]);
        var decision = set.Evaluate(new AccessRequest("s3:DeleteObject", "arn:aws:s3:::b/k", new RequestContext()));
        Assert.Equal(Decision.ExplicitDeny, decision.Decision);
        Assert.Equal("no-deletes", decision.DecidedBy!.Policy);
        var allowed = set.Explain(new AccessRequest("s3:PutObject", "arn:aws:s3:::b/k", new RequestContext()));
        Assert.Equal(Decision.Allow, allowed.Decision);
        Assert.Equal([PolicyKind.Identity, PolicyKind.Session, PolicyKind.Guardrail], allowed.Matched.Select(m => m.Kind));
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_statement.html
    // Statement is "a single statement or an array of individual statements".
    [Fact]
    public void Statement_may_be_a_single_object_or_an_array()
    {
        Assert.Equal(Decision.Allow, Set("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}""").Decide("s3:GetObject", "x"));
        Assert.Equal(Decision.Allow, Set("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}""").Decide("s3:GetObject", "x"));
    }
}
