using static Tenantry.Policies.Tests.Policies;

namespace Tenantry.Policies.Tests;

/// <summary>A set bound to a context decides exactly as the set does with that context.</summary>
public sealed class BoundPolicySetTests
{
    private static readonly PolicySet Mixed = new(
        [
            Identity(
                """
                {"Version":"2012-10-17","Statement":[
                  {"Sid":"Own","Effect":"Allow","Action":"storage:*","Resource":"trn:tenantry:storage::${aws:PrincipalTag/Tenant}:tenants/${aws:PrincipalTag/Tenant}/*"},
                  {"Sid":"AdminOnly","Effect":"Deny","Action":"storage:DeleteObject","Resource":"*","Condition":{"StringNotEquals":{"tenantry:Role":"admin"}}}]}
                """),
        ],
        [
            Session(
                """
                {"Version":"2012-10-17","Statement":[
                  {"Sid":"Prefixes","Effect":"Allow","Action":["storage:GetObject","storage:PutObject","storage:DeleteObject"],"Resource":"trn:tenantry:storage::*:tenants/*/*","Condition":{"ForAllValues:StringLike":{"tenantry:Groups":["team-*"]}}},
                  {"Sid":"NoLegacy","Effect":"Deny","Action":"storage:*","Resource":"*","Condition":{"StringEqualsIfExists":{"tenantry:Tier":"legacy"}}}]}
                """),
        ],
        [
            Guardrail(
                """
                {"Version":"2012-10-17","Statement":[
                  {"Sid":"All","Effect":"Allow","Action":"*","Resource":"*"},
                  {"Sid":"Suspended","Effect":"Deny","Action":"storage:*","Resource":"*","Condition":{"Bool":{"tenantry:Suspended":"true"}}},
                  {"Sid":"NoSourceIp","Effect":"Deny","Action":"storage:PutObject","Resource":"*","Condition":{"Null":{"aws:SourceIp":"false"},"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
                  {"Sid":"Archive","Effect":"Deny","Action":"storage:DeleteObject","Resource":"trn:tenantry:storage::*:tenants/*/archive/*"}]}
                """),
        ]);

    public static TheoryData<string> Contexts() =>
    [
        "member",
        "admin",
        "suspended",
        "legacy",
        "outside-network",
        "inside-network",
        "no-groups",
        "other-group",
        "no-tier",
    ];

    private static RequestContext ContextFor(string name)
    {
        var context = Context(("aws:PrincipalTag/Tenant", ["acme"]), ("tenantry:Role", [name == "admin" ? "admin" : "member"]), ("tenantry:Groups", ["team-a", "team-b"]));
        if (name != "no-tier")
        {
            context.Set("tenantry:Tier", "basic");
        }

        return name switch
        {
            "suspended" => context.Set("tenantry:Suspended", "true"),
            "legacy" => context.Set("tenantry:Tier", "legacy"),
            "outside-network" => context.Set("aws:SourceIp", "192.0.2.7"),
            "inside-network" => context.Set("aws:SourceIp", "10.1.2.3"),
            "no-groups" => context.Set("tenantry:Groups"),
            "other-group" => context.Set("tenantry:Groups", "team-a", "ops"),
            _ => context,
        };
    }

    [Theory]
    [MemberData(nameof(Contexts))]
    public void Bound_set_decides_as_the_set_for_every_action_and_resource(string name)
    {
        var context = ContextFor(name);
        var bound = Mixed.Bind(context);
        var decisions = new HashSet<Decision>();
        foreach (var action in new[] { "storage:GetObject", "storage:PutObject", "STORAGE:deleteobject", "storage:ListObjects", "billing:GetInvoice" })
        {
            foreach (var resource in new[] { "trn:tenantry:storage::acme:tenants/acme/a.txt", "trn:tenantry:storage::acme:tenants/acme/archive/x", "trn:tenantry:storage::beta:tenants/beta/a.txt", "*" })
            {
                var expected = Mixed.Evaluate(new AccessRequest(action, resource, context));
                Assert.Equal(expected, bound.Evaluate(action, resource));
                Assert.Equal(expected, bound.Evaluate(action, resource));
                decisions.Add(expected.Decision);
            }
        }

        Assert.Contains(Decision.ExplicitDeny, decisions);
    }

    // Policy variables in resources are replaced by their values when a set is bound: every kind
    // of variable element (default, missing, literal ${*}, NotResource, a value holding a wildcard
    // character, an empty value) must decide as the set does, reading the context each time.
    private static readonly PolicySet Variables = new(
        [
            Identity(
                """
                {"Version":"2012-10-17","Statement":[
                  {"Sid":"Own","Effect":"Allow","Action":"storage:*","Resource":["trn:tenantry:storage::${aws:PrincipalTag/Tenant}:tenants/${aws:PrincipalTag/Tenant}/*","trn:tenantry:storage::*:shared/${aws:username}/?-${tenantry:Team, 'none'}*"]},
                  {"Sid":"Elsewhere","Effect":"Deny","Action":"storage:*","NotResource":"trn:tenantry:storage::${aws:PrincipalTag/Tenant}:*"},
                  {"Sid":"Missing","Effect":"Allow","Action":"storage:GetObject","Resource":"trn:tenantry:storage::*:${tenantry:NoSuchKey}/*"},
                  {"Sid":"Literal","Effect":"Allow","Action":"storage:GetObject","Resource":"trn:tenantry:storage::*:odd/${*}/${aws:username}"},
                  {"Sid":"Whole","Effect":"Allow","Action":"storage:ListObjects","Resource":"trn:tenantry:storage::*${tenantry:Team}*"}]}
                """),
        ]);

    public static TheoryData<string> VariableContexts() => ["alice", "starry", "no-tenant", "team", "empty-team", "empty-name"];

    [Theory]
    [MemberData(nameof(VariableContexts))]
    public void Bound_set_with_variables_in_resources_decides_as_the_set(string name)
    {
        var context = Context(("aws:username", [name switch { "starry" => "a*b", "empty-name" => "", _ => "alice" }]));
        if (name != "no-tenant")
        {
            context.Set("aws:PrincipalTag/Tenant", "acme");
        }

        if (name is "team" or "empty-team")
        {
            context.Set("tenantry:Team", name == "team" ? "red" : "");
        }

        var bound = Variables.Bind(context);
        var decisions = new HashSet<Decision>();
        foreach (var action in new[] { "storage:GetObject", "storage:PutObject", "storage:ListObjects" })
        {
            foreach (var resource in new[]
            {
                "trn:tenantry:storage::acme:tenants/acme/a.txt", "trn:tenantry:storage::beta:tenants/beta/a.txt", "trn:tenantry:storage::acme:tenants/beta/a.txt",
                "trn:tenantry:storage::acme:shared/alice/x-none", "trn:tenantry:storage::acme:shared/alice/x-red-1", "trn:tenantry:storage::acme:shared/a*b/x-none",
                "trn:tenantry:storage::acme:shared/aXb/x-none", "trn:tenantry:storage::acme:shared//x-", "trn:tenantry:storage::acme:shared/alice/x-",
                "trn:tenantry:storage::acme:odd/*/alice", "trn:tenantry:storage::acme:odd/x/alice", "trn:tenantry:storage::acme:odd/*/a*b", "trn:tenantry:storage::acme:odd/*/",
                "trn:tenantry:storage::acme:/x", "trn:tenantry:storage::red", "trn:tenantry:storage::", "", "*",
            })
            {
                var expected = Variables.Evaluate(new AccessRequest(action, resource, context));
                Assert.True(expected == bound.Evaluate(action, resource), $"{action} on '{resource}': set {expected.Decision}, bound {bound.Evaluate(action, resource).Decision}");
                decisions.Add(expected.Decision);
            }
        }

        if (name == "no-tenant")
        {
            // A NotResource whose variable has no value matches nothing, so it excludes nothing: all denied.
            Assert.Equal([Decision.ExplicitDeny], decisions);
        }
        else
        {
            Assert.Contains(Decision.Allow, decisions);
            Assert.Contains(Decision.ImplicitDeny, decisions);
        }
    }

    [Fact]
    public void Later_changes_to_the_context_do_not_reach_a_bound_set()
    {
        var context = ContextFor("member");
        var bound = Mixed.Bind(context);
        context.Set("tenantry:Suspended", "true");
        Assert.Equal(Decision.Allow, bound.Evaluate("storage:GetObject", "trn:tenantry:storage::acme:tenants/acme/a.txt").Decision);
        Assert.Equal(Decision.ExplicitDeny, Mixed.Decide("storage:GetObject", "trn:tenantry:storage::acme:tenants/acme/a.txt", context));
    }
}
