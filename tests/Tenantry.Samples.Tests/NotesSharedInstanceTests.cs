using System.Net;

namespace Tenantry.Samples.Tests;

/// <summary>
/// The notes sample as a shared instance (no TENANTRY_TENANT_ID): pool tenants share the pool file in
/// TENANTRY_DATABASE and the app keeps them apart by tenant_id in every query; a bridge tenant's database
/// is the one the data service at TENANTRY_DATA_URL names; silo tenants are refused.
/// </summary>
public sealed class NotesSharedInstanceTests : NotesTestBase
{
    private string Token(TenantClaims tenant) => Gateway.Sign(tenant, ["notes"]);

    [Fact]
    public async Task A_shared_instance_keeps_two_pool_tenants_apart_in_one_pool_file()
    {
        var pool = NotesSample.CreateDatabase(DatabasePath("pool"), "1.0.0");
        await using var notes = await NotesInstance.StartAsync(NotesInstance.Environment(Gateway.Jwks, pool));
        var acme = TenantClaims.Pool("acme");
        var zeta = TenantClaims.Pool("zeta");

        var secret = await JsonAsync(await SendAsync(notes, HttpMethod.Post, "/notes", Token(acme), new { title = "acme's plan", body = "secret" }), HttpStatusCode.Created);
        var id = secret.GetProperty("id").GetString()!;
        await JsonAsync(await SendAsync(notes, HttpMethod.Post, "/notes", Token(zeta), new { title = "zeta's list" }), HttpStatusCode.Created);

        var acmeList = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes", Token(acme)), HttpStatusCode.OK);
        Assert.Equal(["acme's plan"], acmeList.GetProperty("items").EnumerateArray().Select(n => n.GetProperty("title").GetString()));
        var zetaList = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes", Token(zeta)), HttpStatusCode.OK);
        Assert.Equal(["zeta's list"], zetaList.GetProperty("items").EnumerateArray().Select(n => n.GetProperty("title").GetString()));

        // zeta names acme's note by its id: it does not exist for zeta, to read, change, pin or delete, nor as a page cursor.
        await ProblemAsync(await SendAsync(notes, HttpMethod.Get, $"/notes/{id}", Token(zeta)), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await SendAsync(notes, HttpMethod.Put, $"/notes/{id}", Token(zeta), new { title = "taken over" }), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await SendAsync(notes, HttpMethod.Delete, $"/notes/{id}", Token(zeta)), HttpStatusCode.NotFound, "not-found");
        var afterAcme = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes?after=00000000-0000-0000-0000-000000000000", Token(zeta)), HttpStatusCode.OK);
        Assert.DoesNotContain(afterAcme.GetProperty("items").EnumerateArray(), n => n.GetProperty("id").GetString() == id);

        // A title that tries to end the statement is stored as text, in its tenant's row only.
        await JsonAsync(await SendAsync(notes, HttpMethod.Post, "/notes", Token(zeta), new { title = "x' OR tenant_id <> '' --" }), HttpStatusCode.Created);

        var kept = await JsonAsync(await SendAsync(notes, HttpMethod.Get, $"/notes/{id}", Token(acme)), HttpStatusCode.OK);
        Assert.Equal("acme's plan", kept.GetProperty("title").GetString());
        Assert.Equal("secret", kept.GetProperty("body").GetString());
        Assert.Equal(
            new[] { (acme.Id, "acme's plan"), (zeta.Id, "x' OR tenant_id <> '' --"), (zeta.Id, "zeta's list") }.OrderBy(r => r.Item1, StringComparer.Ordinal).ThenBy(r => r.Item2, StringComparer.Ordinal),
            NotesSample.Rows(pool));
    }

    [Fact]
    public async Task Every_write_two_pool_tenants_make_at_once_is_acknowledged_and_kept()
    {
        var pool = NotesSample.CreateDatabase(DatabasePath("pool"), "1.0.0");
        await using var notes = await NotesInstance.StartAsync(NotesInstance.Environment(Gateway.Jwks, pool));
        var tenants = new[] { TenantClaims.Pool("acme"), TenantClaims.Pool("zeta") };
        const int PerTenant = 20;

        var writes = tenants.SelectMany(t => Enumerable.Range(0, PerTenant).Select(async i =>
            (await SendAsync(notes, HttpMethod.Post, "/notes", Token(t), new { title = $"{t.Slug} {i:D2}" })).StatusCode));
        Assert.All(await Task.WhenAll(writes), status => Assert.Equal(HttpStatusCode.Created, status));

        var rows = NotesSample.Rows(pool);
        foreach (var tenant in tenants)
        {
            Assert.Equal(Enumerable.Range(0, PerTenant).Select(i => $"{tenant.Slug} {i:D2}"), rows.Where(r => r.TenantId == tenant.Id).Select(r => r.Title));
            var list = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes?limit=200", Token(tenant)), HttpStatusCode.OK);
            Assert.Equal(PerTenant, list.GetProperty("items").GetArrayLength());
        }
    }

    [Fact]
    public async Task A_shared_instance_refuses_a_silo_tenant_with_403()
    {
        var pool = NotesSample.CreateDatabase(DatabasePath("pool"), "1.0.0");
        await using var notes = await NotesInstance.StartAsync(NotesInstance.Environment(Gateway.Jwks, pool));
        var silo = TenantClaims.Silo("bolt");

        // Its shared-instance token, and one minted for its dedicated instance: neither is served here.
        await ProblemAsync(await SendAsync(notes, HttpMethod.Post, "/notes", Token(silo), new { title = "in the pool" }), HttpStatusCode.Forbidden, "tenant-mismatch");
        await ProblemAsync(await SendAsync(notes, HttpMethod.Get, "/notes", Gateway.Sign(silo, ["notes", silo.Id])), HttpStatusCode.Forbidden, "tenant-mismatch");
        Assert.Empty(NotesSample.Rows(pool));
    }

    [Fact]
    public async Task A_bridge_tenants_notes_go_to_the_database_the_data_service_names_for_its_context()
    {
        var pool = NotesSample.CreateDatabase(DatabasePath("pool"), "1.0.0");
        var own = NotesSample.CreateDatabase(DatabasePath("bridge-cobalt"), "1.0.0");
        await using var data = await DataService.StartAsync();
        var cobalt = TenantClaims.Bridge("cobalt");
        data.Serve(cobalt, own);
        var environment = NotesInstance.Environment(Gateway.Jwks, pool);
        environment["TENANTRY_DATA_URL"] = data.Url;
        await using var notes = await NotesInstance.StartAsync(environment);

        var token = Token(cobalt);
        var created = await JsonAsync(await SendAsync(notes, HttpMethod.Post, "/notes", token, new { title = "cobalt's own" }), HttpStatusCode.Created);
        var list = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes", token), HttpStatusCode.OK);
        Assert.Equal(created.GetProperty("id").GetString(), Assert.Single(list.GetProperty("items").EnumerateArray()).GetProperty("id").GetString());

        Assert.Equal([(cobalt.Id, "cobalt's own")], NotesSample.Rows(own));
        Assert.Empty(NotesSample.Rows(pool));
        // The instance asked with the request's own context, never one of its own making.
        Assert.NotEmpty(data.Tokens);
        Assert.All(data.Tokens, t => Assert.Equal(token, t));

        // A pool tenant on the same instance still uses the pool file, and sees nothing of cobalt's.
        var acme = TenantClaims.Pool("acme");
        var acmeList = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes", Token(acme)), HttpStatusCode.OK);
        Assert.Empty(acmeList.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task A_bridge_tenant_the_data_service_does_not_serve_gets_its_answer_passed_through()
    {
        var pool = NotesSample.CreateDatabase(DatabasePath("pool"), "1.0.0");
        await using var data = await DataService.StartAsync();
        var suspended = TenantClaims.Bridge("dormant");
        data.Deactivate(suspended);
        var stranger = TenantClaims.Bridge("stranger");
        var environment = NotesInstance.Environment(Gateway.Jwks, pool);
        environment["TENANTRY_DATA_URL"] = data.Url;
        await using var notes = await NotesInstance.StartAsync(environment);

        var inactive = await SendAsync(notes, HttpMethod.Post, "/notes", Token(suspended), new { title = "while suspended" });
        await ProblemAsync(inactive, HttpStatusCode.ServiceUnavailable, "tenant-not-active");
        Assert.Equal("1", Assert.Single(inactive.Headers.GetValues("Retry-After")));
        await ProblemAsync(await SendAsync(notes, HttpMethod.Get, "/notes", Token(stranger)), HttpStatusCode.Forbidden, "tenant-mismatch");
        Assert.Empty(NotesSample.Rows(pool));
    }

    [Fact]
    public async Task A_bridge_tenant_gets_503_while_the_data_service_does_not_answer()
    {
        var pool = NotesSample.CreateDatabase(DatabasePath("pool"), "1.0.0");
        var data = await DataService.StartAsync();
        var url = data.Url;
        await data.DisposeAsync();
        var environment = NotesInstance.Environment(Gateway.Jwks, pool);
        environment["TENANTRY_DATA_URL"] = url;
        await using var notes = await NotesInstance.StartAsync(environment);

        var response = await SendAsync(notes, HttpMethod.Get, "/notes", Token(TenantClaims.Bridge("cobalt")));
        await ProblemAsync(response, HttpStatusCode.ServiceUnavailable, "tenant-data-unavailable");
        Assert.Equal("1", Assert.Single(response.Headers.GetValues("Retry-After")));
    }
}
