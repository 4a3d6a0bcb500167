using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.FunctionalTests.Objects;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Policies;

public sealed class PolicyApiTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    private const string AllowAllStorage = """{"Version":"2012-10-17","Statement":{"Sid":"All","Effect":"Allow","Action":"storage:*","Resource":"*"}}""";

    private static JsonElement Doc(string json) => JsonDocument.Parse(json).RootElement;

    [Fact]
    public async Task Simulate_answers_allow_with_the_matching_statements_of_each_policy()
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.PostAsJsonAsync("/v1/policies/simulate", new
        {
            policies = new
            {
                identity = new[] { Doc(AllowAllStorage) },
                session = new[] { Doc("""{"Version":"2012-10-17","Statement":{"Sid":"Acme","Effect":"Allow","Action":"storage:GetObject","Resource":"trn:tenantry:storage::acme:tenants/${tenantry:TenantSlug}/*"}}""") },
                guardrail = (object[]?)null,
            },
            request = new { action = "storage:GetObject", resource = "trn:tenantry:storage::acme:tenants/acme/a.txt", context = new Dictionary<string, object> { ["tenantry:TenantSlug"] = "acme" } },
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.JsonAsync();
        Assert.Equal("Allow", body.GetProperty("decision").GetString());
        Assert.Equal(
            ["identity[0]/All/Allow", "session[0]/Acme/Allow"],
            body.GetProperty("matched").EnumerateArray().Select(m => $"{m.GetProperty("policy").GetString()}/{m.GetProperty("sid").GetString()}/{m.GetProperty("effect").GetString()}"));
    }

    [Fact]
    public async Task Simulate_reports_explicit_and_implicit_denies()
    {
        using var client = await factory.OperatorAsync();
        var guardrail = Doc("""{"Version":"2012-10-17","Statement":[{"Sid":"All","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"NoDelete","Effect":"Deny","Action":"storage:DeleteObject","Resource":"*"}]}""");
        using var deny = await client.PostAsJsonAsync("/v1/policies/simulate", new
        {
            policies = new { identity = new[] { Doc(AllowAllStorage) }, guardrail = new[] { guardrail } },
            request = new { action = "storage:DeleteObject", resource = "trn:tenantry:storage::acme:tenants/acme/a.txt" },
        });
        var denied = await deny.JsonAsync();
        Assert.Equal("ExplicitDeny", denied.GetProperty("decision").GetString());
        var matched = Assert.Single(denied.GetProperty("matched").EnumerateArray());
        Assert.Equal("guardrail[0]", matched.GetProperty("policy").GetString());
        Assert.Equal("NoDelete", matched.GetProperty("sid").GetString());
        Assert.Equal("Deny", matched.GetProperty("effect").GetString());

        // Multi-valued context and a session policy that allows nothing asked for.
        using var implicitDeny = await client.PostAsJsonAsync("/v1/policies/simulate", new
        {
            policies = new
            {
                identity = new[] { Doc(AllowAllStorage) },
                session = new[] { Doc("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"storage:GetObject","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"tenantry:Groups":["ops"]}}}}""") },
            },
            request = new { action = "storage:GetObject", resource = "trn:tenantry:storage::acme:tenants/acme/a.txt", context = new Dictionary<string, object> { ["tenantry:Groups"] = new[] { "dev", "qa" } } },
        });
        var body = await implicitDeny.JsonAsync();
        Assert.Equal("ImplicitDeny", body.GetProperty("decision").GetString());
        Assert.Equal("session", body.GetProperty("missingAllow").GetString());
    }

    [Fact]
    public async Task Simulate_time_conditions_use_the_current_time()
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.PostAsJsonAsync("/v1/policies/simulate", new
        {
            policies = new { identity = new[] { Doc("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"storage:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}}}""") } },
            request = new { action = "storage:GetObject", resource = "trn:tenantry:storage::a:tenants/a/x" },
        });
        Assert.Equal("Allow", (await response.JsonAsync()).GetProperty("decision").GetString());
    }

    [Fact]
    public async Task Simulate_rejects_a_malformed_policy_with_the_path_of_the_fault()
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.PostAsJsonAsync("/v1/policies/simulate", new
        {
            policies = new { identity = new[] { Doc(AllowAllStorage), Doc("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"storage:*","Resource":"*"},{"Effect":"Permit","Action":"storage:*","Resource":"*"}]}""") } },
            request = new { action = "storage:GetObject", resource = "x" },
        });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.JsonAsync();
        Assert.Equal("https://tenantry.dev/problems/validation", problem.GetProperty("type").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty("$.policies.identity[1].Statement[1].Effect", out _), problem.ToString());
    }

    [Theory]
    [InlineData("""{"policies":{"identity":[]}}""")]
    [InlineData("""{"request":{"action":"storage:GetObject","resource":"x"}}""")]
    [InlineData("""{"policies":{"identity":[]},"request":{"action":"storage:GetObject","resource":"x","context":{"k":{"nested":1}}}}""")]
    [InlineData("""{"policies":{"identity":["not json"]},"request":{"action":"storage:GetObject","resource":"x"}}""")]
    [InlineData("""{"policies":{"identity":[]},"request":{"action":"","resource":"x"}}""")]
    [InlineData("""{"policies":5}""")]
    public async Task Simulate_bad_input_is_a_400_problem(string json)
    {
        using var client = await factory.OperatorAsync();
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(new Uri("/v1/policies/simulate", UriKind.Relative), content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Validate_returns_errors_with_paths_and_the_saas_factory_trap_as_a_warning()
    {
        using var client = await factory.OperatorAsync();
        using var bad = await client.PostAsJsonAsync("/v1/policies/validate", new { document = Doc("""{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},{"Effect":"Allow","Action":"s3:GetObject"}]}""") });
        var badBody = await bad.JsonAsync();
        Assert.False(badBody.GetProperty("valid").GetBoolean());
        Assert.Equal("$.Statement[1].Resource", Assert.Single(badBody.GetProperty("errors").EnumerateArray()).GetProperty("path").GetString());

        using var trap = await client.PostAsJsonAsync("/v1/policies/validate", new
        {
            document = """{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:Query"],"Resource":"arn:aws:dynamodb:*:*:table/orders","Condition":{"ForAllValues:StringEquals":{"dynamodb: LeadingKeys":["${aws:PrincipalTag/TenantId}"]}}}]}""",
        });
        var trapBody = await trap.JsonAsync();
        Assert.True(trapBody.GetProperty("valid").GetBoolean());
        var codes = trapBody.GetProperty("warnings").EnumerateArray().Select(w => w.GetProperty("code").GetString()).ToList();
        Assert.Contains("key-whitespace", codes);
        Assert.Contains("forallvalues-without-null-guard", codes);
    }

    [Fact]
    public async Task Guardrails_are_stored_listed_replaced_and_validated()
    {
        await using var own = new TenantryFactory();
        using var client = await own.OperatorAsync();
        var empty = await client.GetJsonAsync("/v1/guardrails");
        Assert.Equal(0, empty.GetProperty("items").GetArrayLength());

        using var put = await client.PutAsJsonAsync("/v1/guardrails", new
        {
            items = new[]
            {
                new { name = "full-access", document = Doc("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}""") },
                new { name = "no-deletes", document = Doc("""{"Version":"2012-10-17","Statement":{"Sid":"NoDeletes","Effect":"Deny","Action":"storage:DeleteObject","Resource":"*"}}""") },
            },
        });
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        var listed = await client.GetJsonAsync("/v1/guardrails");
        Assert.Equal(["full-access", "no-deletes"], listed.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("name").GetString()));
        Assert.Equal("NoDeletes", listed.GetProperty("items")[1].GetProperty("document").GetProperty("Statement").GetProperty("Sid").GetString());

        using var bad = await client.PutAsJsonAsync("/v1/guardrails", new
        {
            items = new[] { new { name = "broken", document = Doc("""{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"storage:*","Resource":"*","Condition":{"StringEquals":{"k":{"x":1}}}}]}""") } },
        });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var problem = await bad.JsonAsync();
        Assert.True(problem.GetProperty("errors").TryGetProperty("$.items[0].document.Statement[0].Condition.StringEquals['k']", out _), problem.ToString());
        Assert.Equal(2, (await client.GetJsonAsync("/v1/guardrails")).GetProperty("items").GetArrayLength());

        using var badName = await client.PutAsJsonAsync("/v1/guardrails", new { items = new[] { new { name = "Bad Name", document = Doc(AllowAllStorage) } } });
        Assert.Equal(HttpStatusCode.BadRequest, badName.StatusCode);

        var audit = await client.GetJsonAsync("/v1/audit");
        Assert.Contains(audit.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "guardrails.replace");

        using var clear = await client.PutAsJsonAsync("/v1/guardrails", new { items = Array.Empty<object>() });
        Assert.Equal(0, (await clear.JsonAsync()).GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Policy_endpoints_need_an_operator_token()
    {
        using var anonymous = factory.CreateClient();
        using var response = await anonymous.GetAsync(new Uri("/v1/guardrails", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task Tenant_policy_is_the_tier_template_applied_and_exports_to_aws()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("pol-acme");
        var session = await client.GetJsonAsync($"/v1/tenants/{id}/policies");
        Assert.Equal("trn:tenantry:storage::pol-acme:tenants/pol-acme/*", session.GetProperty("Statement")[0].GetProperty("Resource").GetString());

        var aws = await client.GetJsonAsync($"/v1/tenants/pol-acme/policies/aws?bucket=acme-saas&table=orders&region=eu-west-1&account=111122223333");
        var statements = aws.GetProperty("Statement").EnumerateArray().ToList();
        var objects = statements.Single(s => s.GetProperty("Sid").GetString() == "TenantObjectsS3");
        Assert.Equal("arn:aws:s3:::acme-saas/tenants/pol-acme/*", objects.GetProperty("Resource")[0].GetString());
        Assert.Equal(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], objects.GetProperty("Action").EnumerateArray().Select(a => a.GetString()));
        var list = statements.Single(s => s.GetProperty("Sid").GetString() == "TenantObjectsS3List");
        Assert.Equal("arn:aws:s3:::acme-saas", list.GetProperty("Resource").GetString());
        Assert.Equal("tenants/pol-acme/*", list.GetProperty("Condition").GetProperty("StringLike").GetProperty("s3:prefix")[0].GetString());
        var items = statements.Single(s => s.GetProperty("Sid").GetString() == "TenantItems");
        Assert.Equal("arn:aws:dynamodb:eu-west-1:111122223333:table/orders", items.GetProperty("Resource").GetString());
        Assert.Equal(id, items.GetProperty("Condition").GetProperty("ForAllValues:StringEquals").GetProperty("dynamodb:LeadingKeys")[0].GetString());

        // The export is itself a clean IAM policy: no error, no warning.
        using var check = await client.PostAsJsonAsync("/v1/policies/validate", new { document = aws });
        var report = await check.JsonAsync();
        Assert.True(report.GetProperty("valid").GetBoolean(), report.ToString());
        Assert.Equal(0, report.GetProperty("warnings").GetArrayLength());

        using var badBucket = await client.GetAsync(new Uri($"/v1/tenants/{id}/policies/aws?bucket=NO_SUCH", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, badBucket.StatusCode);
        using var missing = await client.GetAsync(new Uri("/v1/tenants/nobody-here/policies/aws", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Tier_template_can_be_replaced_and_is_checked_when_saved()
    {
        await using var own = new TenantryFactory();
        using var client = await own.OperatorAsync();
        var initial = await client.GetJsonAsync("/v1/policies/templates/standard");
        Assert.True(initial.GetProperty("isDefault").GetBoolean());

        using var put = await client.PutAsJsonAsync("/v1/policies/templates/standard", Doc("""{"Version":"2012-10-17","Statement":{"Sid":"ReadOnly","Effect":"Allow","Action":["storage:GetObject","storage:ListObjects"],"Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/*"}}"""));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        var stored = await client.GetJsonAsync("/v1/policies/templates/standard");
        Assert.False(stored.GetProperty("isDefault").GetBoolean());

        using var bad = await client.PutAsJsonAsync("/v1/policies/templates/standard", Doc("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"storage:GetObject"}}"""));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.True((await bad.JsonAsync()).GetProperty("errors").TryGetProperty("$.Statement.Resource", out _));

        using var unscoped = await client.PutAsJsonAsync("/v1/policies/templates/basic", Doc(AllowAllStorage));
        Assert.Contains((await unscoped.JsonAsync()).GetProperty("warnings").EnumerateArray(), w => w.GetProperty("code").GetString() == "template-not-tenant-scoped");
    }
}

public sealed class ObjectApiTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    [Fact]
    public async Task Objects_round_trip_through_the_api_into_the_tenant_folder()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("obj-acme");
        using var put = await client.PutAsync(new Uri($"/v1/tenants/{id}/objects/uploads/report.txt", UriKind.Relative), new ByteArrayContent("quarterly"u8.ToArray()));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal("tenants/obj-acme/uploads/report.txt", (await put.JsonAsync()).GetProperty("key").GetString());
        Assert.Equal("quarterly", await File.ReadAllTextAsync(Path.Combine(factory.DataDir, "tenants", "obj-acme", "uploads", "report.txt")));

        Assert.Equal("quarterly", await client.GetStringAsync(new Uri("/v1/tenants/obj-acme/objects/uploads/report.txt", UriKind.Relative)));
        var list = await client.GetJsonAsync($"/v1/tenants/{id}/objects?prefix=uploads/");
        Assert.Equal("tenants/obj-acme/uploads/report.txt", Assert.Single(list.GetProperty("items").EnumerateArray()).GetProperty("key").GetString());

        using var delete = await client.DeleteAsync(new Uri($"/v1/tenants/{id}/objects/uploads/report.txt", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using var gone = await client.GetAsync(new Uri($"/v1/tenants/{id}/objects/uploads/report.txt", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Theory]
    [MemberData(nameof(ObjectKeyAttacks.InUrl), MemberType = typeof(ObjectKeyAttacks))]
    public async Task Encoded_traversal_in_the_url_is_a_400_problem_and_audited(string key)
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("obj-" + Guid.NewGuid().ToString("N")[..8]);
        using var response = await client.PutAsync(new Uri($"/v1/tenants/{id}/objects/{key}", UriKind.Relative), new ByteArrayContent("x"u8.ToArray()));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("https://tenantry.dev/problems/invalid-object-key", (await response.JsonAsync()).GetProperty("type").GetString());
        var audit = await client.GetJsonAsync($"/v1/audit?tenantId={id}");
        Assert.Contains(audit.GetProperty("items").EnumerateArray(), e => e.GetProperty("action").GetString() == "storage:PutObject" && e.GetProperty("outcome").GetString() == "rejected");
    }

    [Fact]
    public async Task Guardrail_deny_is_a_403_problem_naming_the_statement_and_audited()
    {
        await using var own = new TenantryFactory();
        using var client = await own.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("obj-guard");
        using var put = await client.PutAsync(new Uri($"/v1/tenants/{id}/objects/keep.txt", UriKind.Relative), new ByteArrayContent("x"u8.ToArray()));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        using var guardrails = await client.PutAsJsonAsync("/v1/guardrails", new
        {
            items = new[]
            {
                new { name = "full-access", document = JsonDocument.Parse("""{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}""").RootElement },
                new { name = "no-deletes", document = JsonDocument.Parse("""{"Version":"2012-10-17","Statement":{"Sid":"NoDeletes","Effect":"Deny","Action":"storage:DeleteObject","Resource":"*"}}""").RootElement },
            },
        });
        Assert.Equal(HttpStatusCode.OK, guardrails.StatusCode);

        using var delete = await client.DeleteAsync(new Uri($"/v1/tenants/{id}/objects/keep.txt", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Forbidden, delete.StatusCode);
        var problem = await delete.JsonAsync();
        Assert.Equal("https://tenantry.dev/problems/access-denied", problem.GetProperty("type").GetString());
        Assert.Contains("guardrail:no-deletes/NoDeletes", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(own.DataDir, "tenants", "obj-guard", "keep.txt")));

        var audit = await client.GetJsonAsync($"/v1/audit?tenantId={id}");
        var denied = Assert.Single(audit.GetProperty("items").EnumerateArray(), e => e.GetProperty("outcome").GetString() == "denied");
        Assert.Equal("storage:DeleteObject", denied.GetProperty("action").GetString());
        Assert.Equal("NoDeletes", denied.GetProperty("detail").GetProperty("sid").GetString());
        Assert.Equal("trn:tenantry:storage::obj-guard:tenants/obj-guard/keep.txt", denied.GetProperty("detail").GetProperty("resource").GetString());
    }

    [Fact]
    public async Task Offboarding_exports_the_tenant_objects_then_deletes_them()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("obj-leaving");
        using var put = await client.PutAsync(new Uri($"/v1/tenants/{id}/objects/reports/q1.txt", UriKind.Relative), new ByteArrayContent("q1"u8.ToArray()));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        using var offboard = await client.DeleteAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Accepted, offboard.StatusCode);
        var tenant = await client.WaitForStatusAsync(id, "offboarded");
        var archive = tenant.GetProperty("resources").GetProperty("archive").GetProperty("path").GetString()!;
        using (var zip = System.IO.Compression.ZipFile.OpenRead(archive))
        {
            using var reader = new StreamReader(zip.GetEntry("files/reports/q1.txt")!.Open());
            Assert.Equal("q1", await reader.ReadToEndAsync());
        }

        Assert.False(File.Exists(Path.Combine(factory.DataDir, "tenants", "obj-leaving", "reports", "q1.txt")));
        using var gone = await client.GetAsync(new Uri($"/v1/tenants/{id}/objects/reports/q1.txt", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Conflict, gone.StatusCode);
    }

    [Fact]
    public async Task Objects_of_an_unknown_tenant_are_404()
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.GetAsync(new Uri("/v1/tenants/no-such-tenant/objects/a.txt", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
