using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.FunctionalTests.Billing;

/// <summary>The price book: the daily costing run turns a day's usage and dedicated resources into cost lines.</summary>
public sealed class PriceBookTests : IDisposable
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-tests", Guid.NewGuid().ToString("N"));
    private readonly ShiftedTime _time = new();

    private static readonly Dictionary<string, string?> Prices = new()
    {
        ["Tenantry:Costs:PriceBook:PerMillionRequests"] = "100000",
        ["Tenantry:Costs:PriceBook:GbMonthStored"] = "0.023",
        ["Tenantry:Costs:PriceBook:PerJobHour"] = "0.05",
        ["Tenantry:Costs:PriceBook:DatabaseMonth"] = "15",
        ["Tenantry:Costs:PriceBook:SchemaMonth"] = "3",
        ["Tenantry:Costs:PriceBook:DedicatedInstanceHour"] = "0.0416",
    };

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private TenantryFactory Host(Dictionary<string, string?>? settings = null)
    {
        var factory = new TenantryFactory { Time = _time };
        factory.Settings["Tenantry:DataDir"] = _dataDir;
        factory.Settings["Tenantry:Billing:SampleInterval"] = "00:00:00";
        foreach (var (key, value) in settings ?? Prices)
        {
            factory.Settings[key] = value;
        }

        return factory;
    }

    /// <summary>Tomorrow (UTC) of the real clock: a whole day after the tenants made today, priced once the host's clock is two days on.</summary>
    private static DateOnly Day => DateOnly.FromDateTime(DateTime.UtcNow).AddDays(1);

    private static DateTimeOffset Noon => new(Day.ToDateTime(new TimeOnly(12, 0)), TimeSpan.Zero);

    /// <summary>Makes the tenants today, moves the host's clock two days on and records the seeded day's usage; a client with a token of the new time.</summary>
    private async Task<HttpClient> SeedAsync(TenantryFactory host)
    {
        string basic, premium;
        using (var before = await host.OperatorAsync())
        {
            basic = await before.CreateActiveTenantAsync("pb-basic");
            premium = await before.CreateActiveTenantAsync("pb-premium", "premium");
        }

        _time.Offset = TimeSpan.FromDays(2);
        var client = await host.OperatorAsync();
        object E(string id, string type, string subject, object data) => new { id, source = "test", type, subject, time = Noon, data };
        using var sent = await client.PostAsJsonAsync("/v1/usage/events", new[]
        {
            E("c1", "api_calls", basic, new { }), E("c2", "api_calls", basic, new { }), E("c3", "api_calls", basic, new { }),
            E("s1", "storage_bytes", basic, new { bytes = 100_000_000_000L }), E("s2", "storage_bytes", basic, new { bytes = 250_000_000_000L }),
            E("j1", "job_seconds", basic, new { seconds = 7200 }), E("j2", "job_seconds", basic, new { seconds = 1800 }),
            E("j3", "job_seconds", premium, new { seconds = 36 }),
        });
        var body = await sent.Content.ReadAsStringAsync();
        Assert.True(sent.StatusCode == HttpStatusCode.Accepted, body);
        Assert.Equal(8, JsonDocument.Parse(body).RootElement.GetProperty("accepted").GetInt32());
        return client;
    }

    /// <summary>What the price book above makes of the seeded day, computed the documented way: decimal, each line rounded to the cent half away from zero.</summary>
    private static Dictionary<(string Slug, string Item), decimal> Expected()
    {
        var days = DateTime.DaysInMonth(Day.Year, Day.Month);
        decimal Cents(decimal v) => Math.Round(v, 2, MidpointRounding.AwayFromZero);
        return new()
        {
            [("pb-basic", "PerMillionRequests")] = Cents(3m / 1_000_000m * 100000m), // 0.30
            [("pb-basic", "GbMonthStored")] = Cents(250m * 0.023m / days), // the day's largest sample
            [("pb-basic", "PerJobHour")] = Cents(2.5m * 0.05m), // 0.125 rounds to 0.13
            [("pb-premium", "DatabaseMonth")] = Cents(15m / days),
            [("pb-premium", "DedicatedInstanceHour")] = Cents(24m * 0.0416m), // 0.9984 → 1.00
            // premium's 36 job seconds cost 0.0005: no line.
        };
    }

    private static Dictionary<(string Slug, string Item), decimal> Lines(JsonElement run) =>
        run.GetProperty("items").EnumerateArray().ToDictionary(
            i => (i.GetProperty("slug").GetString()!, i.GetProperty("item").GetString()!), i => i.GetProperty("amount").GetDecimal());

    private static async Task<List<JsonElement>> PriceBookLinesAsync(HttpClient client)
    {
        var lines = await client.GetJsonAsync($"/v1/costs/lines?period={Day:yyyy-MM}");
        return [.. lines.GetProperty("items").EnumerateArray().Where(l => l.GetProperty("tags").TryGetProperty("source", out var s) && s.GetString() == "price-book")];
    }

    [Fact]
    public async Task Price_book_lines_match_the_prices_to_the_cent_and_a_rerun_replaces_them()
    {
        await using var host = Host();
        using var client = await SeedAsync(host);
        var day = Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

        var preview = await PostJsonAsync(client, $"/v1/costs/run?day={day}&preview=true");
        Assert.Equal(Expected(), Lines(preview));
        Assert.Empty(await PriceBookLinesAsync(client)); // a preview writes nothing

        var run = await PostJsonAsync(client, $"/v1/costs/run?day={day}");
        Assert.Equal(Expected(), Lines(run));
        Assert.Equal(Expected().Values.Sum(), run.GetProperty("total").GetDecimal());
        Assert.Equal("USD", run.GetProperty("currency").GetString());
        var again = await PostJsonAsync(client, $"/v1/costs/run?day={day}");
        Assert.Equal(Expected(), Lines(again));

        var stored = await PriceBookLinesAsync(client);
        Assert.Equal(Expected().Count, stored.Count);
        Assert.Equal(Expected().Values.Sum(), stored.Sum(l => l.GetProperty("amount").GetDecimal()));

        // The lines feed the margin report: each tenant's direct cost is its price-book lines (no manual line here).
        var report = await client.GetJsonAsync($"/v1/costs?period={Day:yyyy-MM}");
        var items = report.GetProperty("items").EnumerateArray().ToDictionary(i => i.GetProperty("slug").GetString()!);
        Assert.Equal(Expected().Where(e => e.Key.Slug == "pb-premium").Sum(e => e.Value), items["pb-premium"].GetProperty("directCost").GetDecimal());
        Assert.Equal(Expected().Where(e => e.Key.Slug == "pb-basic").Sum(e => e.Value), items["pb-basic"].GetProperty("directCost").GetDecimal());

        // A late event of the day changes its amount on the next run, never the number of lines.
        using (var late = await client.PostAsJsonAsync("/v1/usage/events", new[]
        {
            new { id = "c4", source = "test", type = "api_calls", subject = "pb-basic", time = Noon, data = new { } },
        }))
        {
            Assert.Equal(HttpStatusCode.Accepted, late.StatusCode);
        }

        var rerun = Lines(await PostJsonAsync(client, $"/v1/costs/run?day={day}"));
        Assert.Equal(0.40m, rerun[("pb-basic", "PerMillionRequests")]);
        Assert.Equal(Expected().Count, (await PriceBookLinesAsync(client)).Count);
    }

    [Fact]
    public async Task A_day_is_costed_by_the_daily_run_and_a_restart_does_not_cost_it_twice()
    {
        await using (var first = Host())
        {
            using var client = await SeedAsync(first);
        }

        // The next start (the clock two days on) catches up the finished days: today's tenants' first
        // partial day, then the seeded day.
        List<JsonElement> lines;
        await using (var second = Host())
        {
            using var client = await second.OperatorAsync();
            lines = await WaitForDayAsync(client);
            Assert.Equal(Expected().Count, lines.Count(l => l.GetProperty("tags").GetProperty("day").GetString() == Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)));
        }

        await using (var third = Host())
        {
            using var client = await third.OperatorAsync();
            await Task.Delay(TimeSpan.FromSeconds(1)); // the daily run has had its start-up pass
            var after = await PriceBookLinesAsync(client);
            Assert.Equal(lines.Select(l => l.GetProperty("id").GetString()).Order(), after.Select(l => l.GetProperty("id").GetString()).Order());
            Assert.Equal(lines.Sum(l => l.GetProperty("amount").GetDecimal()), after.Sum(l => l.GetProperty("amount").GetDecimal()));
        }
    }

    private static async Task<JsonElement> PostJsonAsync(HttpClient client, string path)
    {
        using var response = await client.PostAsync(new Uri(path, UriKind.Relative), null);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static async Task<List<JsonElement>> WaitForDayAsync(HttpClient client)
    {
        var day = Day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        for (var i = 0; i < 200; i++)
        {
            var lines = await PriceBookLinesAsync(client);
            if (lines.Any(l => l.GetProperty("tags").GetProperty("day").GetString() == day))
            {
                return lines;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("The daily run did not cost the day.");
    }

    [Fact]
    public async Task A_run_needs_a_day_that_has_begun()
    {
        await using var host = Host();
        using var client = await host.OperatorAsync();
        using var bad = await client.PostAsync(new Uri("/v1/costs/run?day=2026-02-30", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("day", (await bad.JsonAsync()).GetProperty("errors").EnumerateObject().Select(e => e.Name));
        using var future = await client.PostAsync(new Uri($"/v1/costs/run?day={DateTime.UtcNow.AddDays(5):yyyy-MM-dd}", UriKind.Relative), null);
        Assert.Equal(HttpStatusCode.BadRequest, future.StatusCode);
    }
}
