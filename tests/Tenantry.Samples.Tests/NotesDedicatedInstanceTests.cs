using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Tenantry.Samples.Tests;

/// <summary>
/// The notes sample as a silo tenant's dedicated instance: TENANTRY_TENANT_ID set, its own SQLite file with the
/// release's migrations applied, started as Tenantry starts it. It serves its tenant, and nobody else.
/// </summary>
public sealed class NotesDedicatedInstanceTests : NotesTestBase
{
    private readonly TenantClaims _tenant = TenantClaims.Silo("bolt");

    private string Token(TenantClaims tenant) => Gateway.Sign(tenant, ["notes", tenant.Id]);

    private async Task<NotesInstance> StartAsync(string release = "1.0.0", string schema = "1.0.0", params (string Name, string Value)[] extra)
    {
        var environment = NotesInstance.Environment(Gateway.Jwks, NotesSample.CreateDatabase(DatabasePath("bolt"), schema), _tenant.TenantId, release);
        foreach (var (name, value) in extra)
        {
            environment[name] = value;
        }

        return await NotesInstance.StartAsync(environment);
    }

    [Fact]
    public async Task A_dedicated_instance_serves_its_tenants_notes_from_its_database()
    {
        await using var notes = await StartAsync();
        var token = Token(_tenant);

        var health = await notes.Http.GetAsync("/healthz");
        var healthBody = await JsonAsync(health, HttpStatusCode.OK);
        Assert.Equal("healthy", healthBody.GetProperty("status").GetString());
        Assert.Equal("notes", healthBody.GetProperty("app").GetString());
        Assert.Equal("1.0.0", healthBody.GetProperty("release").GetString());
        Assert.Equal("1.0.0", Assert.Single(health.Headers.GetValues("X-App-Release")));

        var created = await SendAsync(notes, HttpMethod.Post, "/notes", token, new { title = "First", body = "hello" });
        var note = await JsonAsync(created, HttpStatusCode.Created);
        var id = note.GetProperty("id").GetString()!;
        Assert.Equal($"/notes/{id}", created.Headers.Location?.OriginalString);
        Assert.Equal(_tenant.Id, note.GetProperty("tenantId").GetString());
        Assert.Equal($"{_tenant.Id}:ada@bolt.example", note.GetProperty("createdBy").GetString());
        Assert.False(note.TryGetProperty("pinned", out _), "release 1.0.0 has no pinning");
        Assert.Equal("1.0.0", Assert.Single(created.Headers.GetValues("X-App-Release")));

        var read = await JsonAsync(await SendAsync(notes, HttpMethod.Get, $"/notes/{id}", token), HttpStatusCode.OK);
        Assert.Equal("hello", read.GetProperty("body").GetString());

        var updated = await JsonAsync(await SendAsync(notes, HttpMethod.Put, $"/notes/{id}", token, new { title = "First, edited", body = "hello again" }), HttpStatusCode.OK);
        Assert.Equal("First, edited", updated.GetProperty("title").GetString());
        Assert.Equal(note.GetProperty("createdAt").GetString(), updated.GetProperty("createdAt").GetString());

        // Pages of two, in the order the notes were made, until no next.
        for (var i = 2; i <= 5; i++)
        {
            await JsonAsync(await SendAsync(notes, HttpMethod.Post, "/notes", token, new { title = $"Note {i}" }), HttpStatusCode.Created);
        }

        var titles = new List<string>();
        string? after = null;
        for (var page = 0; page < 10; page++)
        {
            var list = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes?limit=2" + (after is null ? "" : "&after=" + after), token), HttpStatusCode.OK);
            var items = list.GetProperty("items").EnumerateArray().ToList();
            Assert.InRange(items.Count, 1, 2);
            titles.AddRange(items.Select(n => n.GetProperty("title").GetString()!));
            after = list.GetProperty("next").GetString();
            if (after is null)
            {
                break;
            }
        }

        Assert.Equal(["First, edited", "Note 2", "Note 3", "Note 4", "Note 5"], titles);

        var deleted = await SendAsync(notes, HttpMethod.Delete, $"/notes/{id}", token);
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        await ProblemAsync(await SendAsync(notes, HttpMethod.Get, $"/notes/{id}", token), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await SendAsync(notes, HttpMethod.Delete, $"/notes/{id}", token), HttpStatusCode.NotFound, "not-found");

        // Every row in the tenant's file carries its tenant id.
        var rows = NotesSample.Rows(DatabasePath("bolt"));
        Assert.Equal(4, rows.Count);
        Assert.All(rows, r => Assert.Equal(_tenant.Id, r.TenantId));
    }

    [Fact]
    public async Task A_dedicated_instance_refuses_every_context_that_is_not_a_fresh_one_of_its_own_tenant()
    {
        await using var notes = await StartAsync();
        using var otherKey = ContextSigner.FromResource("tenant-context-other-key.pem");
        var other = TenantClaims.Silo("acme");
        var cases = new (string Name, string? Token, HttpStatusCode Status)[]
        {
            ("no token", null, HttpStatusCode.Unauthorized),
            ("not a token", "not-a-token", HttpStatusCode.Unauthorized),
            ("expired", Gateway.Sign(_tenant, ["notes", _tenant.Id], issuedAt: DateTimeOffset.UtcNow.AddMinutes(-2)), HttpStatusCode.Unauthorized),
            ("not valid yet", Gateway.Sign(_tenant, ["notes", _tenant.Id], issuedAt: DateTimeOffset.UtcNow.AddMinutes(2)), HttpStatusCode.Unauthorized),
            ("another app", Gateway.Sign(_tenant, ["orders", _tenant.Id]), HttpStatusCode.Unauthorized),
            ("forged with another key, the gateway's kid", otherKey.Sign(_tenant, ["notes", _tenant.Id], kid: Gateway.KeyId), HttpStatusCode.Unauthorized),
            ("forged with another key, its own kid", otherKey.Sign(_tenant, ["notes", _tenant.Id]), HttpStatusCode.Unauthorized),
            ("alg none", Unsigned(Gateway.Sign(_tenant, ["notes", _tenant.Id], edit: (h, _) => h["alg"] = "none")), HttpStatusCode.Unauthorized),
            ("alg HS256", Gateway.Sign(_tenant, ["notes", _tenant.Id], edit: (h, _) => h["alg"] = "HS256"), HttpStatusCode.Unauthorized),
            ("another typ", Gateway.Sign(_tenant, ["notes", _tenant.Id], edit: (h, _) => h["typ"] = "JWT"), HttpStatusCode.Unauthorized),
            ("a claim missing", Gateway.Sign(_tenant, ["notes", _tenant.Id], edit: (_, c) => c.Remove("isolation")), HttpStatusCode.Unauthorized),
            ("claims altered after signing", Altered(Token(_tenant), c => c["tenant_id"] = other.Id), HttpStatusCode.Unauthorized),
            ("another tenant", Gateway.Sign(other, ["notes", other.Id]), HttpStatusCode.Forbidden),
            ("another tenant, this instance's audience", Gateway.Sign(other, ["notes", _tenant.Id]), HttpStatusCode.Forbidden),
            ("its tenant, a shared-instance token", Gateway.Sign(_tenant, ["notes"]), HttpStatusCode.Forbidden),
        };

        foreach (var (name, token, status) in cases)
        {
            var response = await SendAsync(notes, HttpMethod.Post, "/notes", token, new { title = "should not exist" });
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == status, $"{name}: expected {(int)status}, got {(int)response.StatusCode}: {body}");
            await ProblemAsync(response, status, status == HttpStatusCode.Forbidden ? "tenant-mismatch" : "tenant-context-missing");
        }

        // Two headers are not one context, even when both are valid.
        using var twice = new HttpRequestMessage(HttpMethod.Get, "/notes");
        twice.Headers.Add("X-Tenant-Context", [Token(_tenant), Token(_tenant)]);
        await ProblemAsync(await notes.Http.SendAsync(twice), HttpStatusCode.Unauthorized, "tenant-context-missing");

        Assert.Empty(NotesSample.Rows(DatabasePath("bolt")));
        var list = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes", Token(_tenant)), HttpStatusCode.OK);
        Assert.Empty(list.GetProperty("items").EnumerateArray());
    }

    [Fact]
    public async Task A_callers_mistakes_get_problem_details_and_never_a_500()
    {
        await using var notes = await StartAsync();
        var token = Token(_tenant);
        var id = (await JsonAsync(await SendAsync(notes, HttpMethod.Post, "/notes", token, new { title = "Kept" }), HttpStatusCode.Created)).GetProperty("id").GetString()!;

        async Task<HttpResponseMessage> Raw(HttpMethod method, string path, string? content, string contentType = "application/json")
        {
            using var request = new HttpRequestMessage(method, path);
            request.Headers.Add("X-Tenant-Context", token);
            if (content is not null)
            {
                request.Content = new StringContent(content, Encoding.UTF8);
                request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
            }

            return await notes.Http.SendAsync(request);
        }

        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", "{\"title\": "), HttpStatusCode.BadRequest, "invalid-json");
        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", "[1, 2]"), HttpStatusCode.BadRequest, "invalid-json");
        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", "{\"title\": NaN}"), HttpStatusCode.BadRequest, "invalid-json");
        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", new string('[', 100_000)), HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", new string('[', 50_000)), HttpStatusCode.BadRequest, "invalid-json");
        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", "title=x", "application/x-www-form-urlencoded"), HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
        var missing = await ProblemAsync(await Raw(HttpMethod.Post, "/notes", "{\"body\": \"no title\"}"), HttpStatusCode.BadRequest, "validation");
        Assert.True(missing.GetProperty("errors").TryGetProperty("title", out _));
        var wrongTypes = await ProblemAsync(await Raw(HttpMethod.Put, $"/notes/{id}", "{\"title\": 7, \"body\": {}}"), HttpStatusCode.BadRequest, "validation");
        Assert.True(wrongTypes.GetProperty("errors").TryGetProperty("title", out _));
        Assert.True(wrongTypes.GetProperty("errors").TryGetProperty("body", out _));
        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", $"{{\"title\": \"{new string('t', 201)}\"}}"), HttpStatusCode.BadRequest, "validation");
        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", "{\"title\": \"tab\\there\"}"), HttpStatusCode.BadRequest, "validation");

        // The body limit, by Content-Length and chunked; the connection is closed rather than the body read.
        await ProblemAsync(await Raw(HttpMethod.Post, "/notes", $"{{\"title\": \"big\", \"body\": \"{new string('b', 70_000)}\"}}"), HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        using (var chunked = new HttpRequestMessage(HttpMethod.Post, "/notes"))
        {
            chunked.Headers.Add("X-Tenant-Context", token);
            chunked.Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes($"{{\"title\": \"big\", \"body\": \"{new string('b', 70_000)}\"}}")));
            chunked.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            chunked.Headers.TransferEncodingChunked = true;
            await ProblemAsync(await notes.Http.SendAsync(chunked), HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        }

        using (var small = new HttpRequestMessage(HttpMethod.Post, "/notes"))
        {
            small.Headers.Add("X-Tenant-Context", token);
            small.Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("{\"title\": \"chunked\"}")));
            small.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            small.Headers.TransferEncodingChunked = true;
            await JsonAsync(await notes.Http.SendAsync(small), HttpStatusCode.Created);
        }

        var patch = await ProblemAsync(await Raw(HttpMethod.Patch, $"/notes/{id}", "{}"), HttpStatusCode.MethodNotAllowed, "method-not-allowed");
        Assert.Equal("GET, PUT, DELETE", string.Join(", ", (await Raw(HttpMethod.Patch, $"/notes/{id}", "{}")).Content.Headers.Allow));
        Assert.Equal(405, patch.GetProperty("status").GetInt32());
        await ProblemAsync(await Raw(HttpMethod.Delete, "/notes", null), HttpStatusCode.MethodNotAllowed, "method-not-allowed");
        await ProblemAsync(await Raw(HttpMethod.Post, "/healthz", "{}"), HttpStatusCode.MethodNotAllowed, "method-not-allowed");
        await ProblemAsync(await Raw(HttpMethod.Get, "/notes/not-a-note-id", null), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await Raw(HttpMethod.Get, $"/notes/{Guid.CreateVersion7()}", null), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await Raw(HttpMethod.Put, $"/notes/{Guid.CreateVersion7()}", "{\"title\": \"nobody\"}"), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await Raw(HttpMethod.Post, $"/notes/{id}/pin", null), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await Raw(HttpMethod.Get, "/elsewhere", null), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await Raw(HttpMethod.Get, "/notes?limit=0", null), HttpStatusCode.BadRequest, "validation");
        await ProblemAsync(await Raw(HttpMethod.Get, "/notes?limit=abc", null), HttpStatusCode.BadRequest, "validation");
        await ProblemAsync(await Raw(HttpMethod.Get, "/notes?limit=201", null), HttpStatusCode.BadRequest, "validation");
        await ProblemAsync(await Raw(HttpMethod.Get, "/notes?after=x';--", null), HttpStatusCode.BadRequest, "validation");
        await ProblemAsync(await Raw(HttpMethod.Get, "/notes?limit=1&limit=2", null), HttpStatusCode.BadRequest, "validation");

        // After all of that the instance still answers, and holds exactly the notes it accepted.
        var list = await JsonAsync(await SendAsync(notes, HttpMethod.Get, "/notes", token), HttpStatusCode.OK);
        Assert.Equal(["Kept", "chunked"], list.GetProperty("items").EnumerateArray().Select(n => n.GetProperty("title").GetString()));
        Assert.DoesNotContain("unexpected error", notes.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Release_2_0_0_pins_notes_and_release_1_0_0_runs_on_the_schema_2_0_0_extended()
    {
        var token = Token(_tenant);
        string id;

        // 1.0.0 on the expanded schema (0002 applied): it knows nothing of pinned, and its inserts take the default.
        await using (var v1 = await StartAsync(release: "1.0.0", schema: "2.0.0"))
        {
            var note = await JsonAsync(await SendAsync(v1, HttpMethod.Post, "/notes", token, new { title = "Before the upgrade" }), HttpStatusCode.Created);
            Assert.False(note.TryGetProperty("pinned", out _));
            id = note.GetProperty("id").GetString()!;
            await ProblemAsync(await SendAsync(v1, HttpMethod.Post, $"/notes/{id}/pin", token), HttpStatusCode.NotFound, "not-found");
            Assert.Equal(0, await v1.TerminateAsync());
        }

        var release = JsonNode.Parse(File.ReadAllText(Path.Combine(NotesSample.Folder, "release-2.0.0.json")))!;
        var features = release["process"]!["env"]!["NOTES_FEATURES"]!.GetValue<string>();
        await using var v2 = await NotesInstance.StartAsync(new Dictionary<string, string>(
            NotesInstance.Environment(Gateway.Jwks, DatabasePath("bolt"), _tenant.TenantId, "2.0.0"), StringComparer.Ordinal) { ["NOTES_FEATURES"] = features });
        var before = await JsonAsync(await SendAsync(v2, HttpMethod.Get, $"/notes/{id}", token), HttpStatusCode.OK);
        Assert.False(before.GetProperty("pinned").GetBoolean());

        var pinned = await SendAsync(v2, HttpMethod.Post, $"/notes/{id}/pin", token);
        Assert.True((await JsonAsync(pinned, HttpStatusCode.OK)).GetProperty("pinned").GetBoolean());
        Assert.Equal("2.0.0", Assert.Single(pinned.Headers.GetValues("X-App-Release")));
        var list = await JsonAsync(await SendAsync(v2, HttpMethod.Get, "/notes", token), HttpStatusCode.OK);
        Assert.True(Assert.Single(list.GetProperty("items").EnumerateArray()).GetProperty("pinned").GetBoolean());

        var unpinned = await JsonAsync(await SendAsync(v2, HttpMethod.Delete, $"/notes/{id}/pin", token), HttpStatusCode.OK);
        Assert.False(unpinned.GetProperty("pinned").GetBoolean());
        await ProblemAsync(await SendAsync(v2, HttpMethod.Post, $"/notes/{Guid.CreateVersion7()}/pin", token), HttpStatusCode.NotFound, "not-found");
        await ProblemAsync(await SendAsync(v2, HttpMethod.Get, $"/notes/{id}/pin", token), HttpStatusCode.MethodNotAllowed, "method-not-allowed");
    }

    [Fact]
    public async Task A_release_with_NOTES_FAIL_PERCENT_100_stays_healthy_but_fails_every_tenant_request()
    {
        await using var notes = await StartAsync(extra: ("NOTES_FAIL_PERCENT", "100"));

        await JsonAsync(await notes.Http.GetAsync("/healthz"), HttpStatusCode.OK);
        for (var i = 0; i < 5; i++)
        {
            await ProblemAsync(await SendAsync(notes, HttpMethod.Get, "/notes", Token(_tenant)), HttpStatusCode.InternalServerError, "injected-failure");
        }

        // Refusals come first: a failing release still does not serve a caller without a context.
        await ProblemAsync(await SendAsync(notes, HttpMethod.Get, "/notes", null), HttpStatusCode.Unauthorized, "tenant-context-missing");
    }

    [Fact]
    public async Task An_instance_stops_on_sigterm_with_exit_code_0()
    {
        var notes = await StartAsync();
        await using (notes)
        {
            await JsonAsync(await SendAsync(notes, HttpMethod.Post, "/notes", Token(_tenant), new { title = "Durable" }), HttpStatusCode.Created);
            Assert.Equal(0, await notes.TerminateAsync());
        }

        Assert.Equal([(_tenant.Id, "Durable")], NotesSample.Rows(DatabasePath("bolt")));
    }

    [Theory]
    [InlineData("Host=127.0.0.1;Port=5432;Username=notes;Password=hunter2-secret", "names no Host, Username or Database")]
    [InlineData("Host=127.0.0.1;Database=notes;Username=notes;Password=hunter2-secret;SSL Mode=Require", "asks for TLS")]
    [InlineData("Host=127.0.0.1;Port=http;Database=notes;Username=notes;Password=hunter2-secret", "not a port number")]
    [InlineData("Data Source=relative/notes.db", "absolute")]
    [InlineData("Data Source=:memory:", "neither a SQLite Data Source")]
    [InlineData("", "neither a SQLite Data Source")]
    public async Task A_database_setting_this_sample_cannot_use_ends_the_instance_with_exit_code_2_and_one_line(string database, string says)
    {
        var environment = NotesInstance.Environment(Gateway.Jwks, "/unused");
        environment["TENANTRY_DATABASE"] = database;
        environment["PORT"] = "1";

        var (exitCode, stdout, stderr) = await NotesInstance.RunAsync(environment);

        Assert.Equal(2, exitCode);
        Assert.Equal("", stdout);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("TENANTRY_DATABASE", line, StringComparison.Ordinal);
        Assert.Contains(says, line, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("TENANTRY_CONTEXT_JWKS", "{\"keys\": []}")]
    [InlineData("TENANTRY_CONTEXT_JWKS", "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"k\", \"x\": \"AA\", \"y\": \"AA\", \"d\": \"AA\"}]}")]
    [InlineData("TENANTRY_TENANT_ID", "bolt")]
    [InlineData("TENANTRY_APP", "")]
    [InlineData("PORT", "http")]
    [InlineData("NOTES_FAIL_PERCENT", "150")]
    public async Task Any_other_bad_setting_ends_the_instance_with_exit_code_2_and_one_line_naming_it(string name, string value)
    {
        var environment = NotesInstance.Environment(Gateway.Jwks, DatabasePath("unused"));
        environment["PORT"] = "1";
        environment[name] = value;

        var (exitCode, _, stderr) = await NotesInstance.RunAsync(environment);

        Assert.Equal(2, exitCode);
        Assert.Contains(name, Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)), StringComparison.Ordinal);
    }

    private static string Unsigned(string token) => token[..(token.LastIndexOf('.') + 1)];

    private static string Altered(string token, Action<JsonObject> edit)
    {
        var parts = token.Split('.');
        var claims = JsonNode.Parse(System.Buffers.Text.Base64Url.DecodeFromChars(parts[1]))!.AsObject();
        edit(claims);
        return parts[0] + "." + System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(claims.ToJsonString())) + "." + parts[2];
    }
}
