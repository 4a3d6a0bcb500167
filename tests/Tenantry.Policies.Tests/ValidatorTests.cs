namespace Tenantry.Policies.Tests;

public sealed class ValidatorTests
{
    private static PolicyIssue Only(string json, IssueSeverity severity, string code)
    {
        var result = PolicyParser.Parse(json);
        return Assert.Single(result.Issues, i => i.Severity == severity && i.Code == code);
    }

    [Theory]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},{"Effect":"allow","Action":"s3:GetObject","Resource":"*"}]}""", "$.Statement[1].Effect", "effect")]
    [InlineData("""{"Version":"2012-10-17","Statement":{"Action":"s3:GetObject","Resource":"*"}}""", "$.Statement.Effect", "required")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject",7],"Resource":"*"}]}""", "$.Statement[0].Action[1]", "type")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"GetObject","Resource":"*"}]}""", "$.Statement[0].Action", "value")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject"}]}""", "$.Statement[0].Resource", "required")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","NotAction":"s3:PutObject","Resource":"*"}]}""", "$.Statement[0].Action", "exclusive")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEqualz":{"aws:username":"a"}}}]}""", "$.Statement[0].Condition.StringEqualz", "operator")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}]}""", "$.Statement[0].Condition.NumericLessThan['s3:max-keys']", "value")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","10.0.0.0/99"]}}}]}""", "$.Statement[0].Condition.IpAddress['aws:SourceIp'][1]", "value")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"yesterday"}}}]}""", "$.Statement[0].Condition.DateLessThan['aws:CurrentTime']", "value")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Principal":"*"}]}""", "$.Statement[0].Principal", "principal")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Effekt":"Allow"}]}""", "$.Statement[0].Effekt", "unknown-element")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"s3:GetObject","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"s3:GetObject","Resource":"*"}]}""", "$.Statement[1].Sid", "duplicate-sid")]
    [InlineData("""{"Version":"2012-10-18","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}""", "$.Version", "version")]
    [InlineData("""{"Version":"2012-10-17","Statement":[]}""", "$.Statement", "empty")]
    [InlineData("""{"Version":"2012-10-17"}""", "$.Statement", "required")]
    [InlineData("""[1,2]""", "$", "type")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"bucket/key"}]}""", "$.Statement[0].Resource", "value")]
    [InlineData("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NullIfExists":{"aws:username":"true"}}}]}""", "$.Statement[0].Condition.NullIfExists", "operator")]
    public void Malformed_documents_are_rejected_with_the_path_of_the_fault(string json, string path, string code)
    {
        var result = PolicyParser.Parse(json);
        Assert.False(result.IsValid);
        Assert.Null(result.Document);
        var error = Assert.Single(result.Errors);
        Assert.Equal(path, error.Path);
        Assert.Equal(code, error.Code);
    }

    [Fact]
    public void Invalid_json_is_an_error_with_its_position()
    {
        var result = PolicyParser.Parse("""{"Version":"2012-10-17", "Statement": [}""");
        Assert.False(result.IsValid);
        Assert.Equal("json", Assert.Single(result.Errors).Code);
    }

    // The AWS SaaS Factory template shipped "dynamodb: LeadingKeys" (with a space): a key no request
    // has, so the condition never sees the tenant's partition key.
    [Fact]
    public void Condition_key_with_a_space_is_a_warning_that_names_the_intended_key()
    {
        var warning = Only("""
            {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"dynamodb:*","Resource":"*",
             "Condition":{"ForAllValues:StringEquals":{"dynamodb: LeadingKeys":["${aws:PrincipalTag/TenantId}"]}}}]}
            """, IssueSeverity.Warning, "key-whitespace");
        Assert.Equal("$.Statement[0].Condition.ForAllValues:StringEquals['dynamodb: LeadingKeys']", warning.Path);
        Assert.Contains("dynamodb:LeadingKeys", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_condition_key_is_a_warning()
    {
        var warning = Only("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"tenantry:TenantIdd":"x"}}}}""", IssueSeverity.Warning, "unknown-key");
        Assert.Equal("$.Statement.Condition.StringEquals['tenantry:TenantIdd']", warning.Path);
    }

    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
    // "ForAllValues ... with an Allow effect ... use the Null condition operator" (IAM Access Analyzer check).
    [Fact]
    public void ForAllValues_in_an_allow_without_null_guard_is_a_warning_and_the_guard_silences_it()
    {
        Only("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:CreateTags","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}}}""", IssueSeverity.Warning, "forallvalues-without-null-guard");
        var guarded = PolicyParser.Parse("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:CreateTags","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]},"Null":{"aws:TagKeys":"false"}}}}""");
        Assert.True(guarded.IsValid);
        Assert.Empty(guarded.Warnings);
        var deny = PolicyParser.Parse("""{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"ec2:CreateTags","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}}}""");
        Assert.DoesNotContain(deny.Warnings, w => w.Code == "forallvalues-without-null-guard");
    }

    [Fact]
    public void Negated_operator_on_a_key_that_may_be_missing_is_a_warning()
    {
        var warning = Only("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/dept":"hr"}}}}""", IssueSeverity.Warning, "negated-operator-on-missing-key");
        Assert.Equal("$.Statement.Condition.StringNotEquals['aws:PrincipalTag/dept']", warning.Path);
        var alwaysThere = PolicyParser.Parse("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"StringNotEquals":{"tenantry:Tier":"basic"}}}}""");
        Assert.Empty(alwaysThere.Warnings);
    }

    [Fact]
    public void Missing_version_and_variables_in_the_legacy_version_are_warnings()
    {
        var result = PolicyParser.Parse("""{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}""");
        Assert.True(result.IsValid);
        Assert.Contains(result.Warnings, w => w.Code == "missing-version" && w.Path == "$.Version");
        Assert.Contains(result.Warnings, w => w.Code == "variable-in-legacy-version" && w.Path == "$.Statement.Resource[0]");
    }

    [Fact]
    public void Clean_tenant_policy_has_no_issue()
    {
        var result = PolicyParser.Parse("""
            {"Version":"2012-10-17","Statement":[
              {"Sid":"TenantObjects","Effect":"Allow","Action":["storage:GetObject","storage:PutObject"],"Resource":"trn:tenantry:storage::${tenantry:TenantSlug}:tenants/${tenantry:TenantSlug}/*"},
              {"Sid":"TenantList","Effect":"Allow","Action":"storage:ListObjects","Resource":"trn:tenantry:storage::${tenantry:TenantSlug}:tenants/${tenantry:TenantSlug}/","Condition":{"StringLike":{"storage:prefix":"tenants/${tenantry:TenantSlug}/*"}}}]}
            """);
        Assert.True(result.IsValid);
        Assert.Empty(result.Issues);
    }
}
