using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Tenants;

public sealed class TenantApiTests(TenantryFactory factory) : IClassFixture<TenantryFactory>
{
    [Fact]
    public async Task Create_answers_202_and_onboarding_runs_every_step_to_active()
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.CreateTenantAsync(new { name = "Acme Corp", slug = "acme", tier = "basic", adminEmail = "ops@acme.test", config = new { region = "eu" } });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var body = await response.JsonAsync();
        var id = body.GetProperty("id").GetString()!;
        Assert.Equal($"/v1/tenants/{id}", response.Headers.Location?.ToString());
        Assert.Equal("provisioning", body.GetProperty("status").GetString());
        Assert.Equal("pool", body.GetProperty("isolation").GetString());

        var tenant = await client.WaitForStatusAsync(id, "active");
        Assert.Equal("eu", tenant.GetProperty("config").GetProperty("region").GetString());
        var resources = tenant.GetProperty("resources");
        Assert.Equal("pool", resources.GetProperty("database").GetProperty("model").GetString());
        Assert.Equal("tenants/acme/", resources.GetProperty("storage").GetProperty("prefix").GetString());
        Assert.True(Directory.Exists(Path.Combine(factory.DataDir, "tenants", "acme", "uploads")));
        Assert.True(Directory.Exists(Path.Combine(factory.DataDir, "tenants", "acme", "exports")));

        var op = await client.GetJsonAsync($"/v1/operations/{body.GetProperty("operationId").GetString()}");
        Assert.Equal("succeeded", op.GetProperty("status").GetString());
        Assert.Equal(
            ["validate", "create-database", "provision-storage", "provision-queue", "configure-identity", "deploy-compute", "notify"],
            op.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray());
        Assert.All(op.GetProperty("steps").EnumerateArray(), s =>
        {
            Assert.Equal("succeeded", s.GetProperty("status").GetString());
            Assert.Equal(1, s.GetProperty("attempts").GetInt32());
            Assert.NotEqual(JsonValueKind.Null, s.GetProperty("finishedAt").ValueKind);
        });
    }

    [Fact]
    public async Task Premium_tenant_gets_its_own_database_file_and_dedicated_compute()
    {
        using var client = await factory.OperatorAsync();
        var first = await client.CreateActiveTenantAsync("prem-alpha", "premium");
        var second = await client.CreateActiveTenantAsync("prem-beta", "premium");
        var a = await client.GetJsonAsync($"/v1/tenants/{first}");
        var b = await client.GetJsonAsync($"/v1/tenants/{second}");
        Assert.Equal("silo", a.GetProperty("isolation").GetString());
        Assert.True(File.Exists(Path.Combine(factory.DataDir, "databases", "silo", "prem-alpha.db")));
        Assert.Equal("dedicated", a.GetProperty("resources").GetProperty("compute").GetProperty("mode").GetString());
        Assert.Equal("dedicated", b.GetProperty("resources").GetProperty("compute").GetProperty("mode").GetString());
    }

    [Fact]
    public async Task Standard_tenant_gets_a_bridge_database()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("std-one", "standard");
        var tenant = await client.GetJsonAsync($"/v1/tenants/{id}");
        Assert.Equal("bridge", tenant.GetProperty("isolation").GetString());
        Assert.True(File.Exists(Path.Combine(factory.DataDir, "databases", "bridge", "std-one.db")));
    }

    [Fact]
    public async Task Same_idempotency_key_and_body_returns_the_same_tenant_and_operation()
    {
        using var client = await factory.OperatorAsync();
        var body = new { name = "Idem", slug = "idem-one", tier = "basic", adminEmail = "a@idem.test" };
        using var first = await client.CreateTenantAsync(body, "key-idem-1");
        using var second = await client.CreateTenantAsync(body, "key-idem-1");
        var a = await first.JsonAsync();
        var b = await second.JsonAsync();
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        Assert.Equal(a.GetProperty("id").GetString(), b.GetProperty("id").GetString());
        Assert.Equal(a.GetProperty("operationId").GetString(), b.GetProperty("operationId").GetString());
        Assert.True(second.Headers.Contains("Idempotent-Replayed"));
    }

    [Fact]
    public async Task Same_idempotency_key_with_another_body_is_422()
    {
        using var client = await factory.OperatorAsync();
        using var first = await client.CreateTenantAsync(new { name = "Idem", slug = "idem-two", tier = "basic", adminEmail = "a@idem.test" }, "key-idem-2");
        using var second = await client.CreateTenantAsync(new { name = "Other", slug = "idem-other", tier = "basic", adminEmail = "a@idem.test" }, "key-idem-2");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, second.StatusCode);
        Assert.Equal("https://tenantry.dev/problems/idempotency-key-reused", (await second.JsonAsync()).GetProperty("type").GetString());
    }

    [Fact]
    public async Task Concurrent_requests_with_one_idempotency_key_make_one_tenant()
    {
        using var client = await factory.OperatorAsync();
        var body = new { name = "Race", slug = "race-one", tier = "basic", adminEmail = "a@race.test" };
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => client.CreateTenantAsync(body, "key-race")));
        var ids = new HashSet<string>();
        foreach (var response in responses)
        {
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            ids.Add((await response.JsonAsync()).GetProperty("id").GetString()!);
            response.Dispose();
        }

        Assert.Single(ids);
        var list = await client.GetJsonAsync("/v1/tenants?q=race-one");
        Assert.Single(list.GetProperty("items").EnumerateArray());
    }

    [Theory]
    [InlineData("Bad Slug!")]
    [InlineData("UPPER")]
    [InlineData("ab")]
    [InlineData("a-very-long-slug-that-goes-on-and-on-past-forty")]
    [InlineData("-leading")]
    [InlineData("trailing-")]
    [InlineData("double--hyphen")]
    [InlineData("../escape")]
    [InlineData("acme/../../etc")]
    [InlineData("x'; DROP TABLE tenants;--")]
    [InlineData("admin")]
    [InlineData("caf\u00e9")]
    [InlineData("acme\n")]
    public async Task Bad_slug_is_400_with_the_field_named(string slug)
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.CreateTenantAsync(new { name = "Bad", slug, tier = "basic", adminEmail = "x@y.test" });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await response.JsonAsync();
        Assert.Equal("https://tenantry.dev/problems/validation", problem.GetProperty("type").GetString());
        Assert.True(problem.GetProperty("errors").TryGetProperty("slug", out _));
    }

    [Theory]
    [InlineData("""{"slug":"no-name","tier":"basic","adminEmail":"x@y.test"}""", "name")]
    [InlineData("""{"name":"N","slug":"bad-mail","tier":"basic","adminEmail":"not-an-email"}""", "adminEmail")]
    [InlineData("""{"name":"N","slug":"bad-mail2","tier":"basic","adminEmail":"a@b"}""", "adminEmail")]
    [InlineData("""{"name":"N","slug":"bad-tier","tier":"platinum","adminEmail":"x@y.test"}""", "tier")]
    [InlineData("""{"name":"N","slug":"no-tier","adminEmail":"x@y.test"}""", "tier")]
    [InlineData("""{"name":"   ","slug":"blank-name","tier":"basic","adminEmail":"x@y.test"}""", "name")]
    public async Task Missing_or_bad_fields_are_400_naming_the_field(string json, string field)
    {
        using var client = await factory.OperatorAsync();
        using var content = new StringContent(json, Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(new Uri("/v1/tenants", UriKind.Relative), content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True((await response.JsonAsync()).GetProperty("errors").TryGetProperty(field, out _));
    }

    [Theory]
    [InlineData("{not json", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("""{"name":"N","tier":"basic","adminEmail":"x@y.test","teir":"basic"}""", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("""{"name":42,"tier":"basic","adminEmail":"x@y.test"}""", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("[]", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("name=x", "application/x-www-form-urlencoded", HttpStatusCode.UnsupportedMediaType)]
    public async Task Unreadable_bodies_get_problem_details_not_500(string body, string contentType, HttpStatusCode expected)
    {
        using var client = await factory.OperatorAsync();
        using var content = new StringContent(body, Encoding.UTF8, contentType);
        using var response = await client.PostAsync(new Uri("/v1/tenants", UriKind.Relative), content);
        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Taken_slug_is_409()
    {
        using var client = await factory.OperatorAsync();
        using var first = await client.CreateTenantAsync(new { name = "Dup", slug = "dup-slug", tier = "basic", adminEmail = "x@y.test" });
        using var second = await client.CreateTenantAsync(new { name = "Dup 2", slug = "dup-slug", tier = "premium", adminEmail = "x@y.test" });
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
        Assert.Equal("https://tenantry.dev/problems/slug-taken", (await second.JsonAsync()).GetProperty("type").GetString());
    }

    [Fact]
    public async Task Slug_is_derived_from_the_name_when_absent_and_kept_unique()
    {
        using var client = await factory.OperatorAsync();
        using var first = await client.CreateTenantAsync(new { name = "Globex Corporation", tier = "basic", adminEmail = "x@globex.test" });
        using var second = await client.CreateTenantAsync(new { name = "Globex Corporation", tier = "basic", adminEmail = "y@globex.test" });
        Assert.Equal("globex-corporation", (await first.JsonAsync()).GetProperty("slug").GetString());
        Assert.Equal("globex-corporation-2", (await second.JsonAsync()).GetProperty("slug").GetString());
    }

    [Fact]
    public async Task Get_by_slug_or_id_and_unknown_or_tricky_ids_are_404()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("findme");
        Assert.Equal(id, (await client.GetJsonAsync("/v1/tenants/findme")).GetProperty("id").GetString());
        using var byId = await client.GetAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative));
        Assert.NotNull(byId.Headers.ETag);
        foreach (var tricky in new[] { "nope-nope", Guid.NewGuid().ToString(), "findme'%20OR%20'1'='1", "..%2F..%2Fetc", "%2e%2e" })
        {
            using var response = await client.GetAsync(new Uri($"/v1/tenants/{tricky}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
    }

    [Fact]
    public async Task List_pages_through_every_tenant_once_and_filters()
    {
        using var client = await factory.OperatorAsync();
        for (var i = 0; i < 7; i++)
        {
            using var r = await client.CreateTenantAsync(new { name = $"Page {i}", slug = $"page-{i}", tier = i % 2 == 0 ? "basic" : "standard", adminEmail = "p@page.test" });
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        }

        var seen = new List<string>();
        string? cursor = null;
        for (var guard = 0; guard < 20; guard++)
        {
            var page = await client.GetJsonAsync($"/v1/tenants?q=page-&limit=3{(cursor is null ? "" : "&cursor=" + cursor)}");
            seen.AddRange(page.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("slug").GetString()!));
            cursor = page.GetProperty("nextCursor").GetString();
            if (cursor is null)
            {
                break;
            }
        }

        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"page-{i}"), seen.Order());
        var standard = await client.GetJsonAsync("/v1/tenants?q=page-&tier=standard");
        Assert.Equal(3, standard.GetProperty("items").GetArrayLength());
        Assert.All(standard.GetProperty("items").EnumerateArray(), t => Assert.Equal("standard", t.GetProperty("tier").GetString()));
    }

    [Theory]
    [InlineData("limit=0")]
    [InlineData("limit=1000")]
    [InlineData("status=alive")]
    [InlineData("cursor=not-a-cursor")]
    [InlineData("tier=Bad%20Tier")]
    public async Task Bad_list_parameters_are_400(string query)
    {
        using var client = await factory.OperatorAsync();
        using var response = await client.GetAsync(new Uri($"/v1/tenants?{query}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Search_treats_like_wildcards_literally()
    {
        using var client = await factory.OperatorAsync();
        await client.CreateActiveTenantAsync("wild-card");
        var percent = await client.GetJsonAsync("/v1/tenants?q=%25");
        Assert.Empty(percent.GetProperty("items").EnumerateArray());
        var underscore = await client.GetJsonAsync("/v1/tenants?q=wild_card");
        Assert.Empty(underscore.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task Patch_needs_a_current_etag()
    {
        using var client = await factory.OperatorAsync();
        var id = await client.CreateActiveTenantAsync("patchy");
        using var read = await client.GetAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative));
        var etag = read.Headers.ETag!.ToString();

        using var noMatch = await client.PatchAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative), JsonContent.Create(new { name = "Patchy 2" }));
        Assert.Equal((HttpStatusCode)428, noMatch.StatusCode);

        using var ok = await Send(client, id, etag, """{"name":"Patchy 2","config":{"plan":{"seats":5},"color":"red"}}""");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var newEtag = ok.Headers.ETag!.ToString();
        Assert.NotEqual(etag, newEtag);
        Assert.Equal("Patchy 2", (await ok.JsonAsync()).GetProperty("name").GetString());

        using var stale = await Send(client, id, etag, """{"name":"Lost update"}""");
        Assert.Equal(HttpStatusCode.PreconditionFailed, stale.StatusCode);

        using var merge = await Send(client, id, newEtag, """{"config":{"color":null,"plan":{"tier":"gold"}}}""");
        Assert.Equal(HttpStatusCode.OK, merge.StatusCode);
        var config = (await merge.JsonAsync()).GetProperty("config");
        Assert.False(config.TryGetProperty("color", out _));
        Assert.Equal(5, config.GetProperty("plan").GetProperty("seats").GetInt32());
        Assert.Equal("gold", config.GetProperty("plan").GetProperty("tier").GetString());
    }

    [Theory]
    [InlineData("""{"slug":"renamed"}""", HttpStatusCode.BadRequest)]
    [InlineData("""{"status":"active"}""", HttpStatusCode.BadRequest)]
    [InlineData("""{"adminEmail":"broken"}""", HttpStatusCode.BadRequest)]
    [InlineData("""{"config":[1,2]}""", HttpStatusCode.BadRequest)]
    [InlineData("""{"tier":"premium","name":"Renamed"}""", HttpStatusCode.UnprocessableEntity)]
    public async Task Patch_refuses_what_cannot_change_that_way(string json, HttpStatusCode expected)
    {
        using var client = await factory.OperatorAsync();
        var slug = "patch-" + Guid.NewGuid().ToString("N")[..8];
        var id = await client.CreateActiveTenantAsync(slug);
        using var response = await Send(client, id, "*", json);
        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private static Task<HttpResponseMessage> Send(HttpClient client, string id, string etag, string json)
    {
        var request = new HttpRequestMessage(HttpMethod.Patch, $"/v1/tenants/{id}")
        {
            Content = new StringContent(json, Encoding.UTF8, "application/merge-patch+json"),
        };
        request.Headers.TryAddWithoutValidation("If-Match", etag);
        return client.SendAsync(request);
    }
}
