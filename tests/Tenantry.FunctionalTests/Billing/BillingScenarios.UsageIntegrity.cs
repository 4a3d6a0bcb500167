using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Tenantry.Billing.Usage;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Billing;

/// <summary>
/// Usage events that could break or bend billing: text that is not Unicode, values a meter
/// cannot bill, rows stored before they were refused, and the operator's void of an event.
/// </summary>
public abstract partial class BillingScenarios
{
    /// <summary>Stands for bytes that are not UTF-8 in a body built as text.</summary>
    private const string NotUtf8 = "<NOT-UTF8>";

    [Fact]
    public async Task A_lone_surrogate_in_a_unique_count_value_is_rejected_and_billing_reads_still_answer()
    {
        await CreatePricedPlanAsync("users-plan");
        var id = await Client.CreateActiveTenantAsync("surrogate-co");
        await ChangePlanAsync(id, "users-plan", null, null);
        var body = """
            [
              {"id": "u-ok", "source": "test", "type": "active_users", "subject": "surrogate-co", "data": {"userId": "u1"}},
              {"id": "u-high", "source": "test", "type": "active_users", "subject": "surrogate-co", "data": {"userId": "\ud800"}},
              {"id": "u-low", "source": "test", "type": "active_users", "subject": "surrogate-co", "data": {"userId": "x\udc00"}},
              {"id": "u-two-high", "source": "test", "type": "active_users", "subject": "surrogate-co", "data": {"userId": "\ud800\ud800"}},
              {"id": "u-pair", "source": "test", "type": "active_users", "subject": "surrogate-co", "data": {"userId": "\ud83d\ude00"}}
            ]
            """;
        var reply = await PostAcceptedAsync(Encoding.UTF8.GetBytes(body));
        Assert.Equal(2, reply.GetProperty("accepted").GetInt32());
        var rejected = reply.GetProperty("rejected").EnumerateArray().ToList();
        Assert.Equal([1, 2, 3], rejected.Select(r => r.GetProperty("index").GetInt32()));
        Assert.All(rejected, r => Assert.Contains("Unicode", r.GetProperty("reason").GetString(), StringComparison.Ordinal));

        Assert.Equal(2m, await UsageTotalAsync(id, "active_users"));
        await AssertBillingReadsAnswerAsync(id, "active_users");
    }

    [Fact]
    public async Task Text_that_is_not_unicode_rejects_only_its_own_event()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        var id = await Client.CreateActiveTenantAsync("unicode-co");
        string E(string idText, string data = """{"n": 1}""", string source = "\"test\"", string subject = "\"unicode-co\"", string type = "\"widgets\"", string extra = "") =>
            $$"""{"id": {{idText}}, "source": {{source}}, "type": {{type}}, "subject": {{subject}}, "data": {{data}}{{extra}}}""";
        string[] events =
        [
            E("\"ok-1\""),
            E("\"\\ud800\""),
            E("\"bad-source\"", source: "\"s\\udfff\""),
            E("\"bad-subject\"", subject: "\"unicode-co\\ud800\""),
            E("\"bad-type\"", type: "\"widgets\\udbff\""),
            E("\"bad-nested-data\"", data: """{"n": 1, "meta": {"x": [1, "\ud800"]}}"""),
            E("\"bad-data-name\"", data: """{"n": 1, "\udc00": 2}"""),
            E($"\"raw-{NotUtf8}\""),
            E("\"raw-data\"", data: $$"""{"n": 1, "note": "{{NotUtf8}}"}"""),
            E("\"raw-extra\"", extra: $", \"extra\": \"{NotUtf8}\""),
            E("\"raw-time\"", extra: $", \"time\": \"2026{NotUtf8}\""),
            E("\"ok-\\ud83d\\ude00\"", data: """{"n": 2, "note": "\ud83d\ude00 é"}"""),
            """{"\ud800": 1, "id": "bad-name", "source": "test", "type": "widgets", "subject": "unicode-co", "data": {"n": 1}}""",
            E("\"ok-3\"", source: "\"t\\u0065st\""),
        ];
        var reply = await PostAcceptedAsync(Utf8With("[" + string.Join(",\n", events) + "]"));

        Assert.Equal(3, reply.GetProperty("accepted").GetInt32());
        var rejected = reply.GetProperty("rejected").EnumerateArray().ToList();
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12], rejected.Select(r => r.GetProperty("index").GetInt32()));
        Assert.All(rejected, r => Assert.Contains("Unicode", r.GetProperty("reason").GetString(), StringComparison.Ordinal));
        Assert.Equal(4m, await UsageTotalAsync(id, "widgets"));

        // A body that is not JSON at all is refused whole, as a bad request.
        foreach (var junk in new[] { new byte[] { 0xFF, 0xFE, 0x00 }, Utf8With($"[{NotUtf8}]"), Utf8With($"[{E("\"x\"")}, {NotUtf8}") })
        {
            using var refused = await PostRawAsync(junk);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        }
    }

    [Fact]
    public async Task Usage_values_follow_the_rule_of_their_meter_kind()
    {
        await CreateMeterAsync("widgets", "sum", "n");
        await CreateMeterAsync("gauge", "max", "v");
        await CreateMeterAsync("level", "latest", "v");
        await CreateMeterAsync("visitors", "unique_count", "k");
        var id = await Client.CreateActiveTenantAsync("values-co");
        string E(string type, string data) => $$"""{"id": "{{Guid.NewGuid():N}}", "source": "test", "type": "{{type}}", "subject": "values-co", "data": {{data}}}""";
        string[] events =
        [
            E("widgets", """{"n": -1}"""),
            E("widgets", """{"n": "4"}"""),
            E("widgets", """{"n": 1e16}"""),
            E("widgets", """{"n": 1e400}"""),
            E("widgets", """{"n": 0}"""),
            E("widgets", """{"n": 2.5}"""),
            E("gauge", """{"v": -3}"""),
            E("gauge", """{"v": 10}"""),
            E("level", """{"v": -0.5}"""),
            E("level", """{"v": 1000000000000000}"""),
            E("visitors", """{"k": true}"""),
            E("visitors", """{"k": {"a": 1}}"""),
            E("visitors", """{"k": ""}"""),
            E("visitors", $$"""{"k": "{{new string('k', 201)}}"}"""),
            E("visitors", """{"k": "user-1"}"""),
            E("visitors", """{"k": 42}"""),
            E("widgets", """{"n": [1]}"""),
        ];
        var reply = await PostAcceptedAsync(Encoding.UTF8.GetBytes("[" + string.Join(",\n", events) + "]"));

        Assert.Equal(6, reply.GetProperty("accepted").GetInt32());
        var reasons = reply.GetProperty("rejected").EnumerateArray()
            .ToDictionary(r => r.GetProperty("index").GetInt32(), r => r.GetProperty("reason").GetString()!);
        Assert.Equal([0, 1, 2, 3, 6, 8, 10, 11, 12, 13, 16], reasons.Keys);
        Assert.Contains("from 0 to", reasons[0], StringComparison.Ordinal);
        Assert.Contains("JSON number", reasons[1], StringComparison.Ordinal);
        Assert.Contains("from 0 to", reasons[2], StringComparison.Ordinal);
        Assert.Contains("from 0 to", reasons[3], StringComparison.Ordinal);
        Assert.Contains("data.v", reasons[6], StringComparison.Ordinal);
        Assert.Contains("from 0 to", reasons[8], StringComparison.Ordinal);
        Assert.All([10, 11, 12, 13], i => Assert.Contains("string of 1-200 characters or a number", reasons[i], StringComparison.Ordinal));
        Assert.Contains("JSON number", reasons[16], StringComparison.Ordinal);

        Assert.Equal(2.5m, await UsageTotalAsync(id, "widgets"));
        Assert.Equal(10m, await UsageTotalAsync(id, "gauge"));
        Assert.Equal(1_000_000_000_000_000m, await UsageTotalAsync(id, "level"));
        Assert.Equal(2m, await UsageTotalAsync(id, "visitors"));
    }

    [Fact]
    public async Task Stored_rows_that_ingest_now_refuses_do_not_break_billing_reads_for_anyone()
    {
        // Rows as an earlier version stored them (straight into the store, past the checks of POST /v1/usage/events).
        await CreatePricedPlanAsync("legacy-plan");
        var bad = await Client.CreateActiveTenantAsync("legacy-bad");
        var good = await Client.CreateActiveTenantAsync("legacy-good");
        await ChangePlanAsync(bad, "legacy-plan", null, null);
        await ChangePlanAsync(good, "legacy-plan", null, null);
        var period = DateTimeOffset.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        await RecordCostAsync(new { resource = "pool-db", amount = 10m, period, tags = new { tenant = "shared" } }, "legacy-cost");
        var now = DateTimeOffset.UtcNow;
        var tenantId = Guid.Parse(bad);
        UsageEvent Row(string id, string type, string? data) => new("legacy", id, tenantId, type, now, data);
        var outcomes = await _app.Services.GetRequiredService<UsageIngestor>().IngestAsync(
        [
            Row("a1", "active_users", """{"userId": "\ud800"}"""),
            Row("a2", "active_users", """{"userId": "kept"}"""),
            Row("w1", "widgets", """{"n": "\ud800", "region": "\udc00"}"""),
            Row("w2", "widgets", "{not json"),
            Row("w3", "widgets", """{"n": 79228162514264337593543950335}"""),
            Row("w4", "widgets", """{"n": 79228162514264337593543950335}"""),
            Row("w5", "widgets", """{"n": -50}"""),
            Row("w6", "widgets", """{"n": "3", "region": "eu"}"""),
            Row("w7", "widgets", """{"n": 4, "region": "eu"}"""),
        ]);
        Assert.All(outcomes, o => Assert.Equal(IngestOutcome.Accepted, o));
        Assert.Equal(1, (await SendAsync([Event("g1", good, new { n = 5 })])).GetProperty("accepted").GetInt32());

        // Unreadable, negative and out-of-range values are left out; numeric strings stored earlier still count.
        Assert.Equal(7m, await UsageTotalAsync(bad, "widgets"));
        Assert.Equal(1m, await UsageTotalAsync(bad, "active_users"));
        Assert.Equal(5m, await UsageTotalAsync(good, "widgets"));
        var grouped = await Client.GetJsonAsync($"/v1/usage?tenantId={bad}&meter=widgets&window=month&groupBy=region");
        Assert.Equal(7m, grouped.GetProperty("items").EnumerateArray().Single(i => i.GetProperty("group").GetString() == "eu").GetProperty("value").GetDecimal());

        await AssertBillingReadsAnswerAsync(bad, "widgets");
        await AssertBillingReadsAnswerAsync(good, "active_users");
        var costs = await Client.GetJsonAsync($"/v1/costs?period={period}&meter=widgets");
        Assert.Equal(10m, costs.GetProperty("items").EnumerateArray().Sum(i => i.GetProperty("cost").GetDecimal()));
    }

    [Fact]
    public async Task Operator_voids_an_event_which_leaves_every_read_and_invoice_and_is_audited_once()
    {
        await CreatePricedPlanAsync("void-plan");
        var a = await Client.CreateActiveTenantAsync("void-a");
        var b = await Client.CreateActiveTenantAsync("void-b");
        await ChangePlanAsync(a, "void-plan", null, null);
        await ChangePlanAsync(b, "void-plan", null, null);
        object From(string source, string id, string subject, int n) => new { id, source, type = "widgets", subject, time = DateTimeOffset.UtcNow, data = new { n } };
        var sent = await SendAsync([From("shop/eu", "v1", a, 5), From("shop/eu", "v2", a, 100), From("shop/us", "v2", b, 7)]);
        Assert.Equal(3, sent.GetProperty("accepted").GetInt32());
        var period = DateTimeOffset.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);

        using (var voided = await Client.PostAsJsonAsync("/v1/usage/events/void", new { source = "shop/eu", id = "v2", reason = "sent twice by a faulty exporter" }))
        {
            Assert.True(voided.StatusCode == HttpStatusCode.OK, await voided.Content.ReadAsStringAsync());
            var body = await voided.JsonAsync();
            Assert.Equal(a, body.GetProperty("tenantId").GetString());
            Assert.Equal("widgets", body.GetProperty("type").GetString());
            Assert.Equal("sent twice by a faulty exporter", body.GetProperty("reason").GetString());
        }

        Assert.Equal(5m, await UsageTotalAsync(a, "widgets"));
        Assert.Equal(7m, await UsageTotalAsync(b, "widgets"));
        var preview = await Client.GetJsonAsync($"/v1/tenants/{a}/invoices/preview?period={period}");
        Assert.Equal(5m, preview.GetProperty("lines").EnumerateArray().Where(l => l.GetProperty("meter").ValueKind == JsonValueKind.String && l.GetProperty("meter").GetString() == "widgets")
            .Sum(l => l.GetProperty("quantity").GetDecimal()));
        var costs = await Client.GetJsonAsync($"/v1/costs?period={period}&meter=widgets");
        Assert.Equal(5m, costs.GetProperty("items").EnumerateArray().Single(i => i.GetProperty("tenantId").GetString() == a).GetProperty("usage").GetDecimal());

        // Idempotent: the same answer, and one audit entry.
        using (var again = await Client.PostAsJsonAsync("/v1/usage/events/void", new { source = "shop/eu", id = "v2" }))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.Equal("sent twice by a faulty exporter", (await again.JsonAsync()).GetProperty("reason").GetString());
        }

        var audit = (await Client.GetJsonAsync($"/v1/audit?tenantId={a}&limit=200")).GetProperty("items").EnumerateArray()
            .Where(e => e.GetProperty("action").GetString() == "usage.void").ToList();
        var entry = Assert.Single(audit);
        Assert.Equal("v2", entry.GetProperty("detail").GetProperty("id").GetString());
        Assert.Equal("shop/eu", entry.GetProperty("detail").GetProperty("source").GetString());

        // A replay of the voided event is a duplicate and stays voided.
        Assert.Equal(1, (await SendAsync([From("shop/eu", "v2", a, 100)])).GetProperty("duplicates").GetInt32());
        Assert.Equal(5m, await UsageTotalAsync(a, "widgets"));

        using (var unknown = await Client.PostAsJsonAsync("/v1/usage/events/void", new { source = "shop/eu", id = "nope" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            Assert.Equal("https://tenantry.dev/problems/not-found", (await unknown.JsonAsync()).GetProperty("type").GetString());
        }

        using (var incomplete = await Client.PostAsJsonAsync("/v1/usage/events/void", new { source = "shop/eu" }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, incomplete.StatusCode);
        }

        using (var notUnicode = await Client.PostAsync(new Uri("/v1/usage/events/void", UriKind.Relative),
                   new StringContent("""{"source": "shop/eu", "id": "v\ud800"}""", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, notUnicode.StatusCode);
        }

        // A tenant's own token posts no usage and voids nothing, its own events or another's.
        using (var tenant = await TenantClientAsync(b))
        {
            using var post = await tenant.PostAsJsonAsync("/v1/usage/events", new[] { From("shop/us", "forged", b, 1) });
            Assert.Equal(HttpStatusCode.Forbidden, post.StatusCode);
            foreach (var (source, id) in new[] { ("shop/eu", "v1"), ("shop/us", "v2") })
            {
                using var attempt = await tenant.PostAsJsonAsync("/v1/usage/events/void", new { source, id });
                Assert.Equal(HttpStatusCode.Forbidden, attempt.StatusCode);
            }
        }

        Assert.Equal(5m, await UsageTotalAsync(a, "widgets"));
        Assert.Equal(7m, await UsageTotalAsync(b, "widgets"));

        // Once the tenant's invoice for the period is finalized, its events are no longer voided.
        using (var draft = await Client.PostAsJsonAsync($"/v1/tenants/{a}/invoices", new { period }))
        {
            var invoiceId = (await draft.JsonAsync()).GetProperty("id").GetString();
            using var finalized = await Client.PostAsync(new Uri($"/v1/invoices/{invoiceId}/finalize", UriKind.Relative), null);
            Assert.Equal(HttpStatusCode.OK, finalized.StatusCode);
            using var again = await Client.PostAsync(new Uri($"/v1/invoices/{invoiceId}/finalize", UriKind.Relative), null);
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);

            // One invoice.finalized event, in the transaction that froze it (finalizing again changes nothing).
            var published = (await Client.GetJsonAsync($"/v1/events?tenantId={a}&type=invoice.finalized")).GetProperty("items").EnumerateArray().ToList();
            var data = Assert.Single(published).GetProperty("data");
            Assert.Equal(invoiceId, data.GetProperty("invoiceId").GetString());
            Assert.Equal(period, data.GetProperty("period").GetString());
        }

        using (var closed = await Client.PostAsJsonAsync("/v1/usage/events/void", new { source = "shop/eu", id = "v1" }))
        {
            Assert.Equal(HttpStatusCode.Conflict, closed.StatusCode);
            Assert.Equal("https://tenantry.dev/problems/usage-period-closed", (await closed.JsonAsync()).GetProperty("type").GetString());
        }

        Assert.Equal(5m, await UsageTotalAsync(a, "widgets"));
    }

    [Fact]
    public async Task A_void_racing_the_finalize_of_its_invoice_is_refused_or_left_out_of_the_invoice()
    {
        await CreatePricedPlanAsync("race-plan");
        var period = DateTimeOffset.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        var tenants = new List<(string Tenant, string InvoiceId)>();
        for (var k = 0; k < 12; k++)
        {
            var tenant = await Client.CreateActiveTenantAsync($"race-{k}");
            await ChangePlanAsync(tenant, "race-plan", null, null);
            var sent = await SendAsync([
                new { id = $"keep-{k}", source = "race", type = "widgets", subject = tenant, time = DateTimeOffset.UtcNow, data = new { n = 5 } },
                new { id = $"void-{k}", source = "race", type = "widgets", subject = tenant, time = DateTimeOffset.UtcNow, data = new { n = 100 } },
            ]);
            Assert.Equal(2, sent.GetProperty("accepted").GetInt32());
            using var draft = await Client.PostAsJsonAsync($"/v1/tenants/{tenant}/invoices", new { period });
            Assert.Equal(HttpStatusCode.Created, draft.StatusCode);
            tenants.Add((tenant, (await draft.JsonAsync()).GetProperty("id").GetString()!));
        }

        // Every pair at once: each void runs beside the finalize of the invoice that would bill its event.
        var races = tenants.Select((t, k) => (
            Void: Client.PostAsJsonAsync("/v1/usage/events/void", new { source = "race", id = $"void-{k}" }),
            Finalize: Client.PostAsync(new Uri($"/v1/invoices/{t.InvoiceId}/finalize", UriKind.Relative), null))).ToList();
        await Task.WhenAll(races.SelectMany(r => new[] { r.Void, r.Finalize }));

        foreach (var (voided, finalized) in races.Select(r => (r.Void.Result, r.Finalize.Result)))
        {
            using (voided)
            using (finalized)
            {
                Assert.True(finalized.StatusCode == HttpStatusCode.OK, await finalized.Content.ReadAsStringAsync());
                Assert.True(voided.StatusCode is HttpStatusCode.OK or HttpStatusCode.Conflict, await voided.Content.ReadAsStringAsync());
                var widgets = (await finalized.JsonAsync()).GetProperty("lines").EnumerateArray()
                    .Where(l => l.GetProperty("meter").ValueKind == JsonValueKind.String && l.GetProperty("meter").GetString() == "widgets")
                    .Sum(l => l.GetProperty("quantity").GetDecimal());
                Assert.Equal(voided.StatusCode == HttpStatusCode.OK ? 5m : 105m, widgets);
            }
        }
    }

    [Fact]
    public async Task Generated_malformed_batches_never_fail_the_server_and_keep_their_valid_events()
    {
        await CreatePricedPlanAsync("fuzz-plan");
        using (var meter = await Client.PostAsJsonAsync("/v1/meters", new { key = "user_events", eventType = "active_users", aggregation = "count" }))
        {
            Assert.Equal(HttpStatusCode.Created, meter.StatusCode);
        }

        var id = await Client.CreateActiveTenantAsync("fuzz-co");
        await ChangePlanAsync(id, "fuzz-plan", null, null);
        var random = new Random(20261123);
        var accepted = 0;
        var next = 0;
        for (var batch = 0; batch < 300; batch++)
        {
            var elements = new List<string>();
            var bad = new List<int>();
            var size = random.Next(1, 12);
            for (var k = 0; k < size; k++)
            {
                if (random.Next(3) == 0)
                {
                    bad.Add(elements.Count);
                    elements.Add(MalformedEvent(random, next++));
                }
                else
                {
                    elements.Add(random.Next(4) == 0
                        ? $$$"""{"id": "f{{{next++}}}", "source": "fuzz", "type": "active_users", "subject": "fuzz-co", "data": {"userId": "user-{{{random.Next(5)}}}"}}"""
                        : $$$"""{"id": "f{{{next++}}}", "source": "fuzz", "type": "widgets", "subject": "fuzz-co", "data": {"n": 1, "note": "é\ud83d\ude00"}}""");
                }
            }

            var text = "[" + string.Join(",", elements) + "]";
            var body = Utf8With(text);
            var damaged = random.Next(8) == 0;
            if (damaged)
            {
                body = Damage(random, body);
            }

            using var response = await PostRawAsync(body);
            var reply = await response.Content.ReadAsStringAsync();
            Assert.True((int)response.StatusCode < 500, $"batch {batch}: {(int)response.StatusCode} {reply}\n{text}");
            if (damaged)
            {
                if (response.StatusCode == HttpStatusCode.Accepted)
                {
                    accepted += JsonDocument.Parse(reply).RootElement.GetProperty("accepted").GetInt32();
                }

                continue;
            }

            Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"batch {batch}: {(int)response.StatusCode} {reply}\n{text}");
            var json = JsonDocument.Parse(reply).RootElement;
            Assert.Equal(size - bad.Count, json.GetProperty("accepted").GetInt32());
            Assert.Equal(bad, json.GetProperty("rejected").EnumerateArray().Select(r => r.GetProperty("index").GetInt32()));
            accepted += size - bad.Count;
        }

        // Every valid widgets event is worth 1, and user_events counts the valid active_users events.
        Assert.Equal(accepted, await UsageTotalAsync(id, "widgets") + await UsageTotalAsync(id, "user_events"));
        Assert.InRange(await UsageTotalAsync(id, "active_users"), 1m, 5m);
        await AssertBillingReadsAnswerAsync(id, "widgets");
        await AssertBillingReadsAnswerAsync(id, "active_users");
    }

    /// <summary>A well-formed JSON element that is not an acceptable event.</summary>
    private static string MalformedEvent(Random random, int n)
    {
        var header = $"\"id\": \"m{n}\", \"source\": \"fuzz\", \"subject\": \"fuzz-co\"";
        var deep = new string('[', 40) + new string(']', 40);
        string[] kinds =
        [
            $"{{{header}, \"type\": \"widgets\", \"data\": {{\"n\": -{random.Next(1, 1000)}}}}}",
            $"{{{header}, \"type\": \"widgets\", \"data\": {{\"n\": 1e{random.Next(16, 5000)}}}}}",
            $"{{{header}, \"type\": \"widgets\", \"data\": {{\"n\": {new string('9', random.Next(30, 400))}}}}}",
            $"{{{header}, \"type\": \"widgets\", \"data\": {{\"n\": \"{random.Next(100)}\"}}}}",
            $"{{{header}, \"type\": \"widgets\", \"data\": {{\"n\": 1, \"x\": \"\\ud{random.Next(0x800, 0x1000):x3}\"}}}}",
            $"{{{header}, \"type\": \"widgets\", \"data\": {{\"n\": 1, \"x\": \"{NotUtf8}\"}}}}",
            $"{{{header}, \"type\": \"widgets\", \"data\": {{\"n\": {deep}}}}}",
            $"{{{header}, \"type\": \"widgets\", \"data\": {deep}}}",
            $"{{{header}, \"type\": \"widgets\", \"data\": \"n\"}}",
            $"{{{header}, \"type\": \"widgets\", \"time\": true, \"data\": {{\"n\": 1}}}}",
            $"{{\"id\": {random.Next()}, \"source\": \"fuzz\", \"type\": \"widgets\", \"subject\": \"fuzz-co\", \"data\": {{\"n\": 1}}}}",
            $"{{\"id\": \"m{n}\\udbff\", \"source\": \"fuzz\", \"type\": \"widgets\", \"subject\": \"fuzz-co\", \"data\": {{\"n\": 1}}}}",
            $"{{\"id\": \"m{n}\", \"source\": \"{NotUtf8}\", \"type\": \"widgets\", \"subject\": \"fuzz-co\", \"data\": {{\"n\": 1}}}}",
            $"{{{header}, \"type\": \"active_users\", \"data\": {{\"userId\": \"\\udc{random.Next(0, 0xFF):x2}\"}}}}",
            $"{{{header}, \"type\": \"active_users\", \"data\": {{\"userId\": [\"u\"]}}}}",
            $"{{{header}, \"type\": \"no_such_meter\", \"data\": {{}}}}",
            $"[{random.Next()}]",
            "null",
            $"\"{NotUtf8}\"",
        ];
        return kinds[random.Next(kinds.Length)];
    }

    /// <summary>Random bytes over, into or instead of part of the body.</summary>
    private static byte[] Damage(Random random, byte[] body)
    {
        var junk = new byte[random.Next(1, 16)];
        random.NextBytes(junk);
        var at = random.Next(body.Length);
        return random.Next(3) switch
        {
            0 => [.. body.AsSpan(0, at), .. junk, .. body.AsSpan(at)],
            1 => body[..at],
            _ => [.. body.AsSpan(0, at), .. junk, .. body.AsSpan(Math.Min(body.Length, at + junk.Length))],
        };
    }

    /// <summary>UTF-8 of <paramref name="text"/>, with <see cref="NotUtf8"/> as bytes that are not UTF-8 (a lone continuation byte, an over-long form, 0xFF).</summary>
    private static byte[] Utf8With(string text)
    {
        var parts = text.Split(NotUtf8);
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(parts[0]));
        foreach (var part in parts.Skip(1))
        {
            bytes.AddRange([0x80, 0xC0, 0xAF, 0xFF]);
            bytes.AddRange(Encoding.UTF8.GetBytes(part));
        }

        return [.. bytes];
    }

    private async Task<HttpResponseMessage> PostRawAsync(byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return await Client.PostAsync(new Uri("/v1/usage/events", UriKind.Relative), content);
    }

    private async Task<JsonElement> PostAcceptedAsync(byte[] body)
    {
        using var response = await PostRawAsync(body);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return await response.JsonAsync();
    }

    /// <summary>The meter's usage, the tenant's invoice preview, entitlements and draft, and the cost report all answer.</summary>
    private async Task AssertBillingReadsAnswerAsync(string tenant, string meter)
    {
        var period = DateTimeOffset.UtcNow.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        foreach (var path in new[]
        {
            $"/v1/usage?meter={meter}&window=day",
            $"/v1/usage?tenantId={tenant}&meter={meter}&window=hour&groupBy=userId",
            $"/v1/tenants/{tenant}/invoices/preview?period={period}",
            $"/v1/costs?period={period}",
            $"/v1/costs?period={period}&meter={meter}",
            $"/v1/tenants/{tenant}/entitlements",
        })
        {
            using var response = await Client.GetAsync(new Uri(path, UriKind.Relative));
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        using var draft = await Client.PostAsJsonAsync($"/v1/tenants/{tenant}/invoices", new { period });
        Assert.True(draft.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK or HttpStatusCode.Conflict, $"{(int)draft.StatusCode} {await draft.Content.ReadAsStringAsync()}");
    }

    /// <summary>A plan that prices widgets (a sum of n) and active users, so invoices read both.</summary>
    private async Task CreatePricedPlanAsync(string id)
    {
        await CreateMeterAsync("widgets", "sum", "n");
        await CreatePlanAsync(new
        {
            id, name = id, tier = "basic", isolation = "pool", basePrice = 10m,
            prices = new[]
            {
                new { meter = "widgets", model = "per_unit", unitPrice = 1m, included = 0m },
                new { meter = "active_users", model = "per_unit", unitPrice = 2m, included = 0m },
            },
        });
    }

    private async Task<HttpClient> TenantClientAsync(string tenant)
    {
        using var created = await Client.PostAsJsonAsync($"/v1/tenants/{tenant}/clients", new { name = "usage-probe" });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var credentials = await created.JsonAsync();
        var client = _app.CreateClient();
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = credentials.GetProperty("clientId").GetString()!,
            ["client_secret"] = credentials.GetProperty("clientSecret").GetString()!,
        });
        using var token = await client.PostAsync(new Uri("/connect/token", UriKind.Relative), form);
        Assert.True(token.IsSuccessStatusCode, await token.Content.ReadAsStringAsync());
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", (await token.JsonAsync()).GetProperty("access_token").GetString());
        return client;
    }
}
