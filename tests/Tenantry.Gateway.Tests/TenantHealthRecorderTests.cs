using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.AspNetCore;
using Tenantry.Health;

namespace Tenantry.Gateway.Tests;

/// <summary>
/// The gateway's in-memory recording: concurrent requests counted exactly however drains interleave, each in
/// its own minute, and the middleware's reading of statuses (4xx, 5xx, 429, an exception, a client gone).
/// </summary>
public sealed class TenantHealthRecorderTests
{
    [Fact]
    public async Task Concurrent_requests_are_counted_exactly_while_drains_run_beside_them()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 12, 2, 10, 15, 30, TimeSpan.Zero));
        var recorder = new TenantHealthRecorder(clock);
        var tenants = new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };
        const int PerWriter = 20_000;
        var drained = new List<TenantHealthSample>();
        using var stop = new CancellationTokenSource();
        var drainer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                drained.AddRange(recorder.Drain());
                await Task.Yield();
            }
        });
        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < PerWriter; i++)
            {
                var status = (i % 10) switch { 0 => 500, 1 => 429, 2 => 404, _ => 200 };
                recorder.Record(tenants[(w + i) % tenants.Length], status, TimeSpan.FromMilliseconds(1 + (i % 50)));
            }
        })));
        await stop.CancelAsync();
        await drainer;
        drained.AddRange(recorder.Drain());

        var byTenant = drained.GroupBy(s => s.TenantId).ToDictionary(g => g.Key, g => g.ToList());
        Assert.Equal(4 * PerWriter, drained.Sum(s => s.Requests));
        Assert.Equal(4 * PerWriter / 10, drained.Sum(s => s.Status5xx));
        Assert.Equal(2 * 4 * PerWriter / 10, drained.Sum(s => s.Status4xx));
        Assert.Equal(4 * PerWriter / 10, drained.Sum(s => s.Throttled));
        var latency = new LatencySketch();
        foreach (var s in drained)
        {
            latency.Merge(s.Latency);
        }

        Assert.Equal(4 * PerWriter, latency.Count);
        Assert.All(byTenant.Values, list => Assert.All(list, s => Assert.Equal(clock.Minute, s.Minute)));
    }

    [Fact]
    public void Each_request_lands_in_the_minute_it_ended_in_and_old_minutes_are_let_go()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 12, 2, 10, 15, 59, TimeSpan.Zero));
        var recorder = new TenantHealthRecorder(clock);
        var tenant = Guid.NewGuid();
        recorder.Record(tenant, 200, TimeSpan.FromMilliseconds(3));
        clock.Now = clock.Now.AddSeconds(1);
        recorder.Record(tenant, 503, TimeSpan.FromMilliseconds(30));
        recorder.Record(tenant, 200, TimeSpan.FromMilliseconds(4));

        var samples = recorder.Drain().OrderBy(s => s.Minute).ToList();
        Assert.Equal(2, samples.Count);
        Assert.Equal((new DateTimeOffset(2026, 12, 2, 10, 15, 0, TimeSpan.Zero), 1L, 0L), (samples[0].Minute, samples[0].Requests, samples[0].Status5xx));
        Assert.Equal((new DateTimeOffset(2026, 12, 2, 10, 16, 0, TimeSpan.Zero), 2L, 1L), (samples[1].Minute, samples[1].Requests, samples[1].Status5xx));
        Assert.Empty(recorder.Drain());

        // Two minutes on, a late request of an old minute (none in practice) would start a fresh cell; nothing is carried over.
        clock.Now = clock.Now.AddMinutes(3);
        Assert.Empty(recorder.Drain());
    }

    [Fact]
    public async Task The_middleware_counts_statuses_errors_and_gone_clients_of_resolved_requests_only()
    {
        var recorder = new TenantHealthRecorder(TimeProvider.System);
        var tenant = Guid.NewGuid();
        var route = new GatewayRoute(tenant, "acme", "basic", IsolationModel.Pool, Active: true, Upstream: null);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.UseMiddleware<TenantHealthMiddleware>(recorder, TimeProvider.System);
        app.Run(async http =>
        {
            if (http.Request.Query["tenant"] != "no")
            {
                http.Items[TenantGateway.TenantItem] = new ResolvedTenant(route, new TenantContext { TenantId = tenant, Slug = "acme", Tier = "basic", Isolation = IsolationModel.Pool, Subject = "ada", Roles = [] });
            }

            var status = int.Parse(http.Request.Query["status"].ToString(), System.Globalization.CultureInfo.InvariantCulture);
            if (status == 0)
            {
                throw new InvalidOperationException("the app failed");
            }

            http.Response.StatusCode = status;
            await http.Response.WriteAsync("x");
        });
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
        foreach (var status in new[] { 200, 201, 404, 429, 429, 500, 503, 0 })
        {
            using var _ = await client.GetAsync(new Uri($"/?status={status}", UriKind.Relative));
        }

        using (var nobodys = await client.GetAsync(new Uri("/?status=200&tenant=no", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, nobodys.StatusCode);
        }

        var sample = Assert.Single(recorder.Drain());
        Assert.Equal(tenant, sample.TenantId);
        Assert.Equal((8L, 3L, 3L, 2L), (sample.Requests, sample.Status4xx, sample.Status5xx, sample.Throttled));
        Assert.Equal(8, sample.Latency.Count);
    }

    [Fact]
    public async Task A_batch_the_sink_did_not_take_is_sent_again_with_its_id_and_nothing_is_lost_meanwhile()
    {
        var clock = new ManualClock(new DateTimeOffset(2026, 12, 2, 10, 15, 0, TimeSpan.Zero));
        var recorder = new TenantHealthRecorder(clock);
        var sink = new FlakySink();
        using var flusher = new TenantHealthFlusher(recorder, Options.Create(new HealthRecordingOptions()), clock, NullLogger<TenantHealthFlusher>.Instance, sink);
        var tenant = Guid.NewGuid();
        recorder.Record(tenant, 200, TimeSpan.FromMilliseconds(2));
        sink.FailNext = true;
        await Assert.ThrowsAsync<HttpRequestException>(() => flusher.FlushAsync(CancellationToken.None));
        Assert.Equal(1, flusher.Pending);

        recorder.Record(tenant, 200, TimeSpan.FromMilliseconds(2));
        Assert.True(await flusher.FlushAsync(CancellationToken.None));
        Assert.Equal(0, flusher.Pending);
        // The failed batch's id came again (the store may have taken it the first time), then a new one.
        Assert.Equal(3, sink.Attempts.Count);
        Assert.Equal(sink.Attempts[0].Id, sink.Attempts[1].Id);
        Assert.NotEqual(sink.Attempts[1].Id, sink.Attempts[2].Id);
        Assert.Equal(2, sink.Attempts.Skip(1).Sum(b => b.Samples.Sum(s => s.Requests)));
    }

    /// <summary>Keeps what it is sent; fails when told to, as a control plane that does not answer.</summary>
    private sealed class FlakySink : ITenantHealthSink
    {
        public bool FailNext { get; set; }

        public List<TenantHealthBatch> Attempts { get; } = [];

        public Task WriteAsync(TenantHealthBatch batch, CancellationToken cancellationToken)
        {
            Attempts.Add(batch);
            if (FailNext)
            {
                FailNext = false;
                throw new HttpRequestException("The control plane did not answer.");
            }

            return Task.CompletedTask;
        }
    }
}

/// <summary>A clock the test sets.</summary>
internal sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public DateTimeOffset Minute => new(Now.UtcTicks / TimeSpan.TicksPerMinute * TimeSpan.TicksPerMinute, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => Now;
}
