using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Tenantry.AspNetCore.Jobs;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>
/// Tenant work queues through a real host: enqueue with an idempotency key, the bad inputs each a
/// clear 4xx, a tenant's token confined to its own jobs, a leased job's token confined to its
/// tenant's objects, and a kill -9 of the host mid-job: the leased job comes back after its
/// visibility timeout, the acked one never does, and the idempotency key still names the same job.
/// </summary>
public sealed class JobsTests(LeasePostgres pg) : IClassFixture<LeasePostgres>
{
    private static readonly string[] Settings = ["--Tenantry:Jobs:Types:0=import", "--Tenantry:Jobs:Types:1=report", "--Tenantry:Jobs:MaxPayloadBytes=1024"];

    [Fact]
    public async Task Enqueue_lease_ack_with_tenant_tokens_refuses_bad_input_and_other_tenants()
    {
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(Settings));
        using var op = await host.OperatorClientAsync();
        // Before any job call reads the plans: the basic plan's queue holds 3 jobs.
        using (var patch = await op.PatchAsync(new Uri("/v1/plans/basic", UriKind.Relative), JsonContent.Create(new { jobs = new { weight = 1, concurrency = 5, maxDepth = 3 } })))
        {
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        }

        var ada = await host.OnboardAsync(op, "jobs-ada", "basic");
        var bob = await host.OnboardAsync(op, "jobs-bob", "basic");
        using var adaClient = Client(host, ada.Token);
        using var bobClient = Client(host, bob.Token);

        // The same key gives the same job; the same key with another body is 422.
        var first = await EnqueueAsync(adaClient, new { type = "import", payload = new { rows = 10 } }, "import-1");
        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        var again = await EnqueueAsync(adaClient, new { type = "import", payload = new { rows = 10 } }, "import-1");
        Assert.Equal(first.Body.GetProperty("id").GetString(), again.Body.GetProperty("id").GetString());
        Assert.Equal("queued", again.Body.GetProperty("status").GetString());
        await AssertProblemAsync(adaClient, new { type = "import", payload = new { rows = 11 } }, "import-1", HttpStatusCode.UnprocessableEntity, "idempotency-key-reused");

        // Bad input: each a 4xx with its own problem type.
        await AssertProblemAsync(adaClient, new { type = "mine-bitcoin", payload = new { } }, null, HttpStatusCode.BadRequest, "unknown-job-type");
        await AssertProblemAsync(adaClient, new { type = "Import!", payload = new { } }, null, HttpStatusCode.BadRequest, "validation");
        await AssertProblemAsync(adaClient, new { type = "import", payload = new { }, runAt = DateTimeOffset.UtcNow.AddMinutes(-5) }, null, HttpStatusCode.BadRequest, "run-at-in-past");
        await AssertProblemAsync(adaClient, new { type = "import", payload = new { blob = new string('x', 2000) } }, null, HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        await AssertProblemAsync(adaClient, new { type = "import" }, null, HttpStatusCode.BadRequest, "validation");
        await AssertProblemAsync(op, new { type = "import", payload = new { } }, null, HttpStatusCode.Forbidden, "tenant-token-required");
        Assert.Equal(HttpStatusCode.Accepted, (await EnqueueAsync(adaClient, new { type = "report", payload = new { }, runAt = DateTimeOffset.UtcNow.AddHours(1) }, null)).Status);
        Assert.Equal(HttpStatusCode.Accepted, (await EnqueueAsync(adaClient, new { type = "report", payload = new { n = 3 } }, null)).Status);
        await AssertProblemAsync(adaClient, new { type = "report", payload = new { n = 4 } }, null, HttpStatusCode.TooManyRequests, "job-queue-full");

        // Isolation: bob's token neither reads, leases nor finishes ada's jobs.
        var adaJob = first.Body.GetProperty("id").GetString()!;
        using (var read = await bobClient.GetAsync(new Uri($"/v1/jobs/{adaJob}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, read.StatusCode);
        }

        using (var list = await bobClient.GetAsync(new Uri($"/v1/jobs?tenantId={ada.Id}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, list.StatusCode);
        }

        Assert.Empty((await LeaseAsync(bobClient, 10, 30)).EnumerateArray());
        var leased = (await LeaseAsync(adaClient, 10, 30)).EnumerateArray().ToList();
        Assert.Equal(2, leased.Count); // the report due in an hour is not
        var import = leased.Single(j => j.GetProperty("id").GetString() == adaJob);
        var leaseId = import.GetProperty("leaseId").GetString()!;
        using (var ack = await bobClient.PostAsJsonAsync($"/v1/jobs/{adaJob}/ack", new { leaseId }))
        {
            Assert.Equal(HttpStatusCode.NotFound, ack.StatusCode);
        }

        // The job's token works on its tenant's objects and is refused on another tenant's.
        using var worker = Client(host, import.GetProperty("token").GetString()!);
        using (var put = await worker.PutAsync(new Uri("/v1/tenants/jobs-ada/objects/imports/out.txt", UriKind.Relative), new ByteArrayContent(Encoding.UTF8.GetBytes("done"))))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        using (var foreign = await worker.GetAsync(new Uri("/v1/tenants/jobs-bob/objects/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
        }

        using (var foreignJobs = await worker.GetAsync(new Uri($"/v1/jobs?tenantId={bob.Id}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, foreignJobs.StatusCode);
        }

        using (var ack = await adaClient.PostAsJsonAsync($"/v1/jobs/{adaJob}/ack", new { leaseId }))
        {
            Assert.Equal(HttpStatusCode.OK, ack.StatusCode);
            Assert.Equal("succeeded", (await ack.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetString());
        }

        using (var wrong = await adaClient.PostAsJsonAsync($"/v1/jobs/{adaJob}/nack", new { leaseId }))
        {
            Assert.Equal(HttpStatusCode.Conflict, wrong.StatusCode);
        }

        using (var badLease = await adaClient.PostAsJsonAsync("/v1/jobs/lease", new { max = 0, visibilitySeconds = 100_000 }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, badLease.StatusCode);
            Assert.Equal("application/problem+json", badLease.Content.Headers.ContentType?.MediaType);
        }

        var report = leased.Single(j => j.GetProperty("id").GetString() != adaJob);
        using (var nack = await adaClient.PostAsJsonAsync($"/v1/jobs/{report.GetProperty("id").GetString()}/nack", new { leaseId = report.GetProperty("leaseId").GetString(), error = "printer on fire" }))
        {
            var body = await nack.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(("queued", "printer on fire"), (body.GetProperty("status").GetString(), body.GetProperty("lastError").GetString()));
        }

        // The tenant's health carries its queue: the report due later and the retried one queued, one run succeeded, one failed.
        var jobs = (await adaClient.GetFromJsonAsync<JsonElement>(new Uri("/v1/tenants/jobs-ada/health", UriKind.Relative))).GetProperty("jobs");
        Assert.Equal((2L, 0L, 1L, 1L), (jobs.GetProperty("depth").GetInt64(), jobs.GetProperty("leased").GetInt64(), jobs.GetProperty("succeeded").GetInt64(), jobs.GetProperty("failed").GetInt64()));
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task After_a_kill_9_mid_job_the_leased_job_comes_back_after_its_timeout_and_the_acked_one_never(string engine)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-jobs-tests", Guid.NewGuid().ToString("N"));
        var store = engine == "postgresql" ? await pg.NewDatabaseAsync() : null;
        var options = new TenantryHostOptions { DataDir = dataDir, Store = store, Settings = Settings };
        try
        {
            string password, acked, running;
            var host = await TenantryHost.StartAsync(options);
            try
            {
                using var op = await host.OperatorClientAsync();
                var tenant = await host.OnboardAsync(op, "jobs-crash", "basic");
                password = tenant.Password;
                using var client = Client(host, tenant.Token);
                acked = (await EnqueueAsync(client, new { type = "import", payload = new { n = 1 } }, "first")).Body.GetProperty("id").GetString()!;
                var lease = Assert.Single((await LeaseAsync(client, 1, 3)).EnumerateArray());
                Assert.Equal(acked, lease.GetProperty("id").GetString());
                using (var ack = await client.PostAsJsonAsync($"/v1/jobs/{acked}/ack", new { leaseId = lease.GetProperty("leaseId").GetString() }))
                {
                    Assert.Equal(HttpStatusCode.OK, ack.StatusCode);
                }

                running = (await EnqueueAsync(client, new { type = "import", payload = new { n = 2 } }, "second")).Body.GetProperty("id").GetString()!;
                Assert.Equal(running, Assert.Single((await LeaseAsync(client, 1, 3)).EnumerateArray()).GetProperty("id").GetString());
            }
            finally
            {
                host.Kill();
                await host.DisposeAsync();
            }

            await using var again = await TenantryHost.StartAsync(options with { KeepDataDir = true });
            using var after = Client(again, await again.LoginAsync("admin@jobs-crash.test", password, "jobs-crash"));
            // Still leased, or already put back if the restart took longer than the lease: never lost, never done.
            Assert.Contains((await after.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{running}", UriKind.Relative))).GetProperty("status").GetString(), new[] { "leased", "queued" });

            // Leased again once its 3 s lapsed (and the 1 s backoff passed): at most 30 s of asking, each a long poll.
            var clock = Stopwatch.StartNew();
            var seen = new List<string>();
            while (seen.Count == 0 && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                seen.AddRange((await LeaseAsync(after, 10, 30, wait: 2)).EnumerateArray().Select(j => j.GetProperty("id").GetString()!));
            }

            Assert.Equal([running], seen);
            Assert.Equal("succeeded", (await after.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{acked}", UriKind.Relative))).GetProperty("status").GetString());
            var replay = await EnqueueAsync(after, new { type = "import", payload = new { n = 1 } }, "first");
            Assert.Equal((acked, "succeeded"), (replay.Body.GetProperty("id").GetString(), replay.Body.GetProperty("status").GetString()));
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }

    [Fact]
    public async Task A_worker_killed_mid_job_loses_it_for_a_visibility_timeout_then_another_worker_runs_it_once()
    {
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(Settings));
        using var op = await host.OperatorClientAsync();
        var tenant = await host.OnboardAsync(op, "jobs-killed", "basic");
        using var client = Client(host, tenant.Token);
        var job = (await EnqueueAsync(client, new { type = "import", payload = new { file = "big.csv" } }, "killed-1")).Body.GetProperty("id").GetString()!;

        // A real worker process: it leases the job over HTTP, then "works" until it is killed.
        var leaseFile = Path.Combine(Path.GetTempPath(), $"tenantry-killed-worker-{Guid.NewGuid():N}.json");
        var script = $"curl -s -X POST -H 'Authorization: Bearer {tenant.Token}' -H 'Content-Type: application/json' " +
            $"-d '{{\"max\":1,\"visibilitySeconds\":2}}' {host.ControlPlane}v1/jobs/lease > {leaseFile}.part && mv {leaseFile}.part {leaseFile} && sleep 300";
        using var worker = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", script]) { UseShellExecute = false })!;
        try
        {
            var clock = Stopwatch.StartNew();
            while (!File.Exists(leaseFile) && clock.Elapsed < TimeSpan.FromSeconds(30) && !worker.HasExited)
            {
                await Task.Delay(50);
            }

            var lost = Assert.Single(JsonDocument.Parse(await File.ReadAllTextAsync(leaseFile)).RootElement.GetProperty("items").EnumerateArray());
            Assert.Equal(job, lost.GetProperty("id").GetString());
            worker.Kill(entireProcessTree: true); // SIGKILL: no nack, no goodbye
            await worker.WaitForExitAsync();

            // Until the 2 s visibility timeout passes the job is the dead worker's: no one else gets it.
            Assert.Empty((await LeaseAsync(client, 10, 30)).EnumerateArray());
            Assert.Equal("leased", (await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{job}", UriKind.Relative))).GetProperty("status").GetString());

            // Then (after its 1 s backoff) a second worker gets it, as its second attempt, and acks it.
            clock.Restart();
            var again = new List<JsonElement>();
            while (again.Count == 0 && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                again.AddRange((await LeaseAsync(client, 10, 30, wait: 2)).EnumerateArray());
            }

            var second = Assert.Single(again);
            Assert.Equal((job, 2), (second.GetProperty("id").GetString(), second.GetProperty("attempt").GetInt32()));
            Assert.NotEqual(lost.GetProperty("leaseId").GetString(), second.GetProperty("leaseId").GetString());
            using (var ack = await client.PostAsJsonAsync($"/v1/jobs/{job}/ack", new { leaseId = second.GetProperty("leaseId").GetString() }))
            {
                Assert.Equal(HttpStatusCode.OK, ack.StatusCode);
            }

            // The dead worker's lease is void (had it come back, its ack is refused), and the acked job is never handed out again.
            using (var late = await client.PostAsJsonAsync($"/v1/jobs/{job}/ack", new { leaseId = lost.GetProperty("leaseId").GetString() }))
            {
                Assert.Equal(HttpStatusCode.Conflict, late.StatusCode);
            }

            Assert.Empty((await LeaseAsync(client, 10, 30, wait: 4)).EnumerateArray());
            var done = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{job}", UriKind.Relative));
            Assert.Equal(("succeeded", 2), (done.GetProperty("status").GetString(), done.GetProperty("attempts").GetInt32()));
            var replay = await EnqueueAsync(client, new { type = "import", payload = new { file = "big.csv" } }, "killed-1");
            Assert.Equal((job, "succeeded"), (replay.Body.GetProperty("id").GetString(), replay.Body.GetProperty("status").GetString()));
        }
        finally
        {
            if (!worker.HasExited)
            {
                worker.Kill(entireProcessTree: true);
            }

            File.Delete(leaseFile);
        }
    }

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgresql")]
    public async Task Events_routed_by_rule_land_once_in_their_tenants_queue_across_a_kill_9(string engine)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "tenantry-jobs-tests", Guid.NewGuid().ToString("N"));
        var store = engine == "postgresql" ? await pg.NewDatabaseAsync() : null;
        var options = new TenantryHostOptions { DataDir = dataDir, Store = store, Settings = Settings };
        try
        {
            Guid adaId, bobId;
            string adaRoute;
            var host = await TenantryHost.StartAsync(options);
            try
            {
                using var op = await host.OperatorClientAsync();
                var ada = await host.OnboardAsync(op, "routes-ada", "basic");
                var bob = await host.OnboardAsync(op, "routes-bob", "basic");
                (adaId, bobId) = (ada.Id, bob.Id);
                using var adaClient = Client(host, ada.Token);
                using var bobClient = Client(host, bob.Token);

                // Fleet-wide: suspensions and reactivations of every tenant become "import" jobs in that tenant's queue.
                var fleet = await RouteAsync(op, new { events = new[] { "tenant.suspended", "tenant.reactivated" }, jobType = "import" });
                Assert.Equal(HttpStatusCode.Created, fleet.Status);
                Assert.Equal(JsonValueKind.Null, fleet.Body.GetProperty("tenantId").ValueKind);
                // Ada's own: every tenant.* event of ada becomes a "report" job; the tenant comes from the token.
                var own = await RouteAsync(adaClient, new { events = new[] { "tenant.*" }, jobType = "report" });
                Assert.Equal(HttpStatusCode.Created, own.Status);
                Assert.Equal(ada.Id.ToString(), own.Body.GetProperty("tenantId").GetString());
                adaRoute = own.Body.GetProperty("id").GetString()!;

                // Bad input and another tenant: each a 4xx naming what is wrong.
                var foreign = await RouteAsync(bobClient, new { events = new[] { "tenant.*" }, jobType = "report", tenantId = "routes-ada" });
                Assert.Equal((HttpStatusCode.Forbidden, "https://tenantry.dev/problems/access-denied"), (foreign.Status, foreign.Body.GetProperty("type").GetString()));
                var unknownEvent = await RouteAsync(op, new { events = new[] { "order.*" }, jobType = "import" });
                Assert.Equal(HttpStatusCode.BadRequest, unknownEvent.Status);
                Assert.True(unknownEvent.Body.GetProperty("errors").TryGetProperty("events[0]", out _));
                var unknownType = await RouteAsync(op, new { events = new[] { "tenant.*" }, jobType = "mine-bitcoin" });
                Assert.True(unknownType.Body.GetProperty("errors").TryGetProperty("jobType", out _));
                Assert.Equal(HttpStatusCode.BadRequest, (await RouteAsync(op, new { events = Array.Empty<string>(), jobType = "import" })).Status);
                Assert.Equal(HttpStatusCode.BadRequest, (await RouteAsync(op, new { events = new[] { "tenant.*" }, jobType = "import", tenantId = "nobody" })).Status);

                // Bob sees only its own routes (none: the fleet-wide one is the operator's); it cannot delete ada's.
                Assert.Empty((await bobClient.GetFromJsonAsync<JsonElement>(new Uri("/v1/jobs/routes", UriKind.Relative))).GetProperty("items").EnumerateArray());
                using (var steal = await bobClient.DeleteAsync(new Uri($"/v1/jobs/routes/{adaRoute}", UriKind.Relative)))
                {
                    Assert.Equal(HttpStatusCode.NotFound, steal.StatusCode);
                }

                Assert.Equal(2, (await op.GetFromJsonAsync<JsonElement>(new Uri("/v1/jobs/routes", UriKind.Relative))).GetProperty("items").GetArrayLength());

                foreach (var tenant in new[] { ada, bob })
                {
                    await SuspendAndReactivateAsync(op, tenant.Id);
                }

                // Ada: import x2 (fleet route) and report x2 (its own route); bob: import x2 only.
                await WaitForJobsAsync(op, adaId, 4);
                await WaitForJobsAsync(op, bobId, 2);
            }
            finally
            {
                host.Kill();
                await host.DisposeAsync();
            }

            await using var again = await TenantryHost.StartAsync(options with { KeepDataDir = true });
            using var op2 = await again.OperatorClientAsync();
            // The router starts again from its cursor: a few passes later, still one job per event and type.
            await Task.Delay(TimeSpan.FromSeconds(2));
            var adaJobs = await JobsOfAsync(op2, adaId);
            var bobJobs = await JobsOfAsync(op2, bobId);
            Assert.Equal(4, adaJobs.Count);
            Assert.Equal(2, bobJobs.Count);
            Assert.Equal(
                ["import:tenant.reactivated", "import:tenant.suspended", "report:tenant.reactivated", "report:tenant.suspended"],
                adaJobs.Select(j => $"{j.GetProperty("type").GetString()}:{j.GetProperty("payload").GetProperty("type").GetString()}").Order(StringComparer.Ordinal));
            Assert.Equal(
                ["import:tenant.reactivated", "import:tenant.suspended"],
                bobJobs.Select(j => $"{j.GetProperty("type").GetString()}:{j.GetProperty("payload").GetProperty("type").GetString()}").Order(StringComparer.Ordinal));
            // The payload is the CloudEvent, its subject the tenant; one event, one id, per job type.
            Assert.All(adaJobs, j => Assert.Equal(adaId.ToString(), j.GetProperty("payload").GetProperty("subject").GetString()));
            Assert.All(bobJobs, j => Assert.Equal("/tenantry/control-plane", j.GetProperty("payload").GetProperty("source").GetString()));
            Assert.Equal(2, adaJobs.Select(j => j.GetProperty("payload").GetProperty("id").GetString()).Distinct().Count());

            // Deleted, ada's own route routes no more: the next suspension makes an import job only.
            using (var delete = await op2.DeleteAsync(new Uri($"/v1/jobs/routes/{adaRoute}", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
            }

            await SuspendAndReactivateAsync(op2, adaId);
            await WaitForJobsAsync(op2, adaId, 6);
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.Equal(2, (await JobsOfAsync(op2, adaId)).Count(j => j.GetProperty("type").GetString() == "report"));
        }
        finally
        {
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }
        }
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> RouteAsync(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync("/v1/jobs/routes", body);
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    private static async Task SuspendAndReactivateAsync(HttpClient op, Guid tenant)
    {
        using (var suspend = await op.PostAsync(new Uri($"/v1/tenants/{tenant}/suspend", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Accepted, suspend.StatusCode);
        }

        await TenantryHost.WaitForStatusAsync(op, tenant.ToString(), "suspended");
        using (var reactivate = await op.PostAsync(new Uri($"/v1/tenants/{tenant}/reactivate", UriKind.Relative), null))
        {
            Assert.Equal(HttpStatusCode.Accepted, reactivate.StatusCode);
        }

        await TenantryHost.WaitForStatusAsync(op, tenant.ToString(), "active");
    }

    private static async Task<List<JsonElement>> JobsOfAsync(HttpClient op, Guid tenant) =>
        [.. (await op.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs?tenantId={tenant}&limit=100", UriKind.Relative))).GetProperty("items").EnumerateArray()];

    private static async Task WaitForJobsAsync(HttpClient op, Guid tenant, int count)
    {
        var clock = Stopwatch.StartNew();
        while ((await JobsOfAsync(op, tenant)).Count < count && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(100);
        }

        Assert.Equal(count, (await JobsOfAsync(op, tenant)).Count);
    }

    [Fact]
    public async Task A_batch_enqueues_all_or_none_and_a_batch_ack_answers_each_job_within_the_tokens_tenant()
    {
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(Settings));
        using var op = await host.OperatorClientAsync();
        using (var patch = await op.PatchAsync(new Uri("/v1/plans/basic", UriKind.Relative), JsonContent.Create(new { jobs = new { weight = 1, concurrency = 10, maxDepth = 4 } })))
        {
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        }

        var ada = await host.OnboardAsync(op, "batch-ada", "basic");
        var bob = await host.OnboardAsync(op, "batch-bob", "basic");
        using var adaClient = Client(host, ada.Token);
        using var bobClient = Client(host, bob.Token);

        // Bad items: every one named, nothing enqueued.
        var bad = await BatchAsync(adaClient, new
        {
            items = new object[]
            {
                new { type = "import", payload = new { n = 1 } },
                new { type = "mine-bitcoin", payload = new { } },
                new { type = "import", payload = new { }, runAt = DateTimeOffset.UtcNow.AddMinutes(-1) },
                new { type = "import" },
            },
        });
        Assert.Equal(HttpStatusCode.BadRequest, bad.Status);
        var errors = bad.Body.GetProperty("errors");
        Assert.Equal(["items[1].type", "items[2].runAt", "items[3].payload"], errors.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(HttpStatusCode.BadRequest, (await BatchAsync(adaClient, new { items = Array.Empty<object>() })).Status);
        var large = await BatchAsync(adaClient, new { items = new object[] { new { type = "import", payload = new { } }, new { type = "import", payload = new { blob = new string('x', 2000) } } } });
        Assert.Equal((HttpStatusCode.RequestEntityTooLarge, "https://tenantry.dev/problems/payload-too-large"), (large.Status, large.Body.GetProperty("type").GetString()));
        Assert.Contains("items[1]", large.Body.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // Five do not fit a queue of four: none goes in. Three do, with a key that holds on a replay.
        var five = await BatchAsync(adaClient, new { items = Enumerable.Range(0, 5).Select(i => new { type = "import", payload = new { i } }).ToArray() });
        Assert.Equal((HttpStatusCode.TooManyRequests, "https://tenantry.dev/problems/job-queue-full"), (five.Status, five.Body.GetProperty("type").GetString()));
        Assert.Empty((await adaClient.GetFromJsonAsync<JsonElement>(new Uri("/v1/jobs", UriKind.Relative))).GetProperty("items").EnumerateArray());
        var three = new { items = Enumerable.Range(0, 3).Select(i => new { type = "import", payload = new { i }, idempotencyKey = $"batch-{i}" }).ToArray() };
        var first = await BatchAsync(adaClient, three);
        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        var ids = first.Body.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetString()!).ToList();
        Assert.Equal(3, ids.Distinct().Count());
        var replay = await BatchAsync(adaClient, three);
        Assert.Equal(ids, replay.Body.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetString()!));
        Assert.Equal(3L, (await adaClient.GetFromJsonAsync<JsonElement>(new Uri("/v1/tenants/batch-ada/health", UriKind.Relative))).GetProperty("jobs").GetProperty("depth").GetInt64());

        // Lease all three; bob's token acks none of them (not found), ada's acks two and is told the third's lease is not the one sent.
        var leased = (await LeaseAsync(adaClient, 10, 30)).EnumerateArray().ToList();
        Assert.Equal(3, leased.Count);
        var acks = leased.Select(j => new { id = j.GetProperty("id").GetString(), leaseId = j.GetProperty("leaseId").GetString() }).ToList();
        var foreign = await AckBatchAsync(bobClient, new { items = acks });
        Assert.All(foreign.GetProperty("items").EnumerateArray(), r => Assert.Equal(("not-found", JsonValueKind.Null), (r.GetProperty("error").GetString(), r.GetProperty("status").ValueKind)));
        var mixed = await AckBatchAsync(adaClient, new { items = new[] { acks[0], acks[1], acks[2] with { leaseId = "not-the-lease" } } });
        Assert.Equal(
            [("succeeded", null), ("succeeded", null), ("leased", "lease-lost")],
            mixed.GetProperty("items").EnumerateArray().Select(r => (r.GetProperty("status").GetString(), r.GetProperty("error").GetString())));
        // The first ack again is taken again, the third with its real lease now; no acked job is leased again.
        var again = await AckBatchAsync(adaClient, new { items = new[] { acks[0], acks[2] } });
        Assert.Equal([("succeeded", null), ("succeeded", null)], again.GetProperty("items").EnumerateArray().Select(r => (r.GetProperty("status").GetString(), r.GetProperty("error").GetString())));
        Assert.Empty((await LeaseAsync(adaClient, 10, 30)).EnumerateArray());
        var health = (await adaClient.GetFromJsonAsync<JsonElement>(new Uri("/v1/tenants/batch-ada/health", UriKind.Relative))).GetProperty("jobs");
        Assert.Equal((0L, 3L), (health.GetProperty("depth").GetInt64(), health.GetProperty("succeeded").GetInt64()));
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> BatchAsync(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync("/v1/jobs/batch", body);
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    private static async Task<JsonElement> AckBatchAsync(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync("/v1/jobs/ack", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    [Fact]
    public async Task The_dotnet_worker_runs_each_type_with_the_jobs_tenant_token_and_acks_or_nacks()
    {
        await using var host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(Settings));
        using var op = await host.OperatorClientAsync();
        var tenant = await host.OnboardAsync(op, "jobs-worker", "basic");
        using var client = Client(host, tenant.Token);
        var import = (await EnqueueAsync(client, new { type = "import", payload = new { name = "a.txt" } }, null)).Body.GetProperty("id").GetString()!;
        var report = (await EnqueueAsync(client, new { type = "report", payload = new { } }, null)).Body.GetProperty("id").GetString()!;

        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Services.AddTenantryJobWorker(o =>
        {
            o.ControlPlane = host.ControlPlane;
            o.Token = _ => Task.FromResult(tenant.Token);
            o.Concurrency = 2;
            o.WaitSeconds = 1;
        })
        .Handle("import", async (job, ct) =>
        {
            // The work itself uses the job's own token, scoped to its tenant.
            using var scoped = Client(host, job.Token);
            var name = job.Payload.GetProperty("name").GetString();
            using var put = await scoped.PutAsync(new Uri($"/v1/tenants/{job.TenantSlug}/objects/out/{name}", UriKind.Relative), new ByteArrayContent("imported"u8.ToArray()), ct);
            put.EnsureSuccessStatusCode();
        })
        .Handle("report", (_, _) => throw new InvalidOperationException("no printer"));
        using var worker = builder.Build();
        await worker.StartAsync();
        try
        {
            var clock = Stopwatch.StartNew();
            JsonElement imported = default, reported = default;
            while (clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                imported = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{import}", UriKind.Relative));
                reported = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{report}", UriKind.Relative));
                if (imported.GetProperty("status").GetString() == "succeeded" && reported.GetProperty("lastError").ValueKind == JsonValueKind.String)
                {
                    break;
                }

                await Task.Delay(100);
            }

            Assert.Equal("succeeded", imported.GetProperty("status").GetString());
            Assert.Equal("no printer", reported.GetProperty("lastError").GetString());
            Assert.Equal("imported", await client.GetStringAsync(new Uri("/v1/tenants/jobs-worker/objects/out/a.txt", UriKind.Relative)));
        }
        finally
        {
            await worker.StopAsync();
        }
    }

    private static HttpClient Client(TenantryHost host, string token)
    {
        var client = new HttpClient { BaseAddress = host.ControlPlane, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> EnqueueAsync(HttpClient client, object body, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/jobs") { Content = JsonContent.Create(body) };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        using var response = await client.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    private static async Task AssertProblemAsync(HttpClient client, object body, string? key, HttpStatusCode status, string kind)
    {
        var (got, problem) = await EnqueueAsync(client, body, key);
        Assert.Equal(status, got);
        Assert.Equal("https://tenantry.dev/problems/" + kind, problem.GetProperty("type").GetString());
    }

    private static async Task<JsonElement> LeaseAsync(HttpClient client, int max, int visibilitySeconds, int wait = 0)
    {
        using var response = await client.PostAsJsonAsync("/v1/jobs/lease", new { max, visibilitySeconds, waitSeconds = wait });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items");
    }
}
