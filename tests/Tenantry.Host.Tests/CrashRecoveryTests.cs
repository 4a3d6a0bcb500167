using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Tenantry.Testing;
using Xunit.Abstractions;

namespace Tenantry.Host.Tests;

/// <summary>
/// Crash safety with a real kill -9. The host runs as a child process; round after round it gets a
/// burst of tenant creations and offboardings and is killed (SIGKILL, no shutdown) at a random
/// moment while the operations run. A last start must finish all of them, and every resource of
/// every tenant must exist exactly once (or, once offboarded, not at all).
/// </summary>
/// <remarks>
/// Rerun one sequence of choices with <c>TENANTRY_CRASH_SEED=&lt;seed&gt;</c> (timings still vary).
/// When the test fails, the data directory is kept and its path is in the test output.
/// </remarks>
public sealed partial class CrashRecoveryTests(ITestOutputHelper output) : IDisposable
{
    private const string OperatorSecret = "crash-recovery-operator-secret-0123456789";
    private const int Rounds = 20;
    private const int MinCreationsPerRound = 8;
    private const int MaxCreationsPerRound = 15;
    private const int MaxOffboardsPerRound = 2;
    private const int MaxKillDelayMs = 250;
    private const string SeedVariable = "TENANTRY_CRASH_SEED";
    private static readonly string[] Tiers = ["basic", "standard", "premium"];
    private static readonly string[] OnboardSteps = ["validate", "create-database", "provision-storage", "provision-queue", "configure-identity", "deploy-compute", "notify"];
    private static readonly string[] OffboardSteps = ["export-data", "revoke-access", "delete-compute", "delete-queue", "delete-storage", "delete-database", "archive"];
    private static readonly TimeSpan HealthTimeout = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(20);

    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "tenantry-crash-tests", Guid.NewGuid().ToString("N"));
    private readonly HostOutput _hostOutput = new();
    private HostRun? _host;
    private int _sessions;
    private bool _passed;
    private bool _disposed;

    [Fact]
    public async Task Operations_killed_with_sigkill_mid_way_finish_after_restart_with_every_resource_exactly_once()
    {
        var seed = Environment.GetEnvironmentVariable(SeedVariable) is { Length: > 0 } fixedSeed
            ? int.Parse(fixedSeed, CultureInfo.InvariantCulture)
            : Random.Shared.Next();
        output.WriteLine($"seed {seed} (rerun with {SeedVariable}={seed}); data dir {_dataDir}");
        var rng = new Random(seed);
        var creations = new List<Creation>();
        var offboards = new Dictionary<string, Offboard>(StringComparer.Ordinal);
        var unexpected = new ConcurrentQueue<string>();
        var resumedTotal = 0;

        for (var round = 1; round <= Rounds; round++)
        {
            var host = await StartHostAsync();
            using var client = await OperatorClientAsync(host);

            // A client whose request went unanswered sends it again with the same Idempotency-Key.
            var deletes = offboards.Values.Where(o => !o.Acknowledged).ToList();
            if (round >= 3)
            {
                var active = await ListIdsAsync(client, "active");
                var candidates = creations
                    .Where(c => c.Round < round && c.Id is { } id && active.Contains(id) && !offboards.ContainsKey(id))
                    .ToList();
                for (var n = rng.Next(0, MaxOffboardsPerRound + 1); n > 0 && candidates.Count > 0; n--)
                {
                    var pick = candidates[rng.Next(candidates.Count)];
                    candidates.Remove(pick);
                    var offboard = new Offboard(pick);
                    offboards[pick.Id!] = offboard;
                    deletes.Add(offboard);
                }
            }

            var creates = creations.Where(c => !c.Acknowledged).ToList();
            var count = rng.Next(MinCreationsPerRound, MaxCreationsPerRound + 1);
            var firstTier = rng.Next(Tiers.Length);
            for (var i = 0; i < count; i++)
            {
                var creation = new Creation($"r{round:D2}-n{i:D2}", Tiers[(firstTier + i) % Tiers.Length], round);
                creations.Add(creation);
                creates.Add(creation);
            }

            var killAfter = rng.Next(0, MaxKillDelayMs + 1);
            var requests = deletes.Select(o => OffboardAsync(client, o, unexpected))
                .Concat(creates.Select(c => CreateAsync(client, c, unexpected)))
                .ToList();
            // Mostly count the delay from the first acknowledged request, so the kill lands while
            // operations run however slow the machine is; sometimes kill while requests are in flight.
            if (rng.Next(4) != 0)
            {
                var waitUntil = DateTime.UtcNow.AddSeconds(10);
                while (!creates.Any(c => c.Acknowledged) && !deletes.Any(o => o.Acknowledged) && DateTime.UtcNow < waitUntil)
                {
                    await Task.Delay(5);
                }
            }

            await Task.Delay(killAfter);
            host.Process.Kill();
            await Task.WhenAll(requests);
            host.Dispose();
            _host = null;

            var resumed = _hostOutput.ResumedCount(host.Session);
            resumedTotal += resumed;
            output.WriteLine(
                $"round {round,2}: resumed {resumed,3} unfinished ops at start; sent {creates.Count,2} creations " +
                $"({creates.Count(c => c.Acknowledged),2} acknowledged) and {deletes.Count} offboardings " +
                $"({deletes.Count(o => o.Acknowledged)} acknowledged); killed {killAfter,3} ms after the burst began");
        }

        // The last start: nothing is killed any more. Unanswered requests are sent once more.
        var last = await StartHostAsync();
        JsonElement[] registry;
        using (var client = await OperatorClientAsync(last))
        {
            await Task.WhenAll(offboards.Values.Where(o => !o.Acknowledged).Select(o => OffboardAsync(client, o, unexpected))
                .Concat(creations.Where(c => !c.Acknowledged).Select(c => CreateAsync(client, c, unexpected))));
            var settled = await WaitUntilSettledAsync(client);
            if (!settled)
            {
                unexpected.Enqueue($"tenants still provisioning or offboarding {SettleTimeout.TotalSeconds} s after the last start");
            }

            registry = await ListAllAsync(client);
        }

        last.Dispose();
        _host = null;
        output.WriteLine($"last start resumed {_hostOutput.ResumedCount(last.Session)} unfinished ops");

        var problems = new List<string>(unexpected);
        problems.AddRange(creations.Where(c => !c.Acknowledged).Select(c => $"creation of {c.Slug} was never acknowledged, not even on a quiet host"));
        problems.AddRange(offboards.Values.Where(o => !o.Acknowledged).Select(o => $"offboarding of {o.Tenant.Slug} was never acknowledged, not even on a quiet host"));
        var expected = new Expectations(_dataDir, creations, offboards);
        expected.CheckRegistry(registry, problems);
        var stats = expected.CheckControlStore(problems);
        expected.CheckTenantDatabases(problems);
        expected.CheckFiles(problems);

        output.WriteLine(
            $"{creations.Count} tenants ({creations.Count(c => c.Tier == "basic")} basic, {creations.Count(c => c.Tier == "standard")} standard, " +
            $"{creations.Count(c => c.Tier == "premium")} premium), {offboards.Count} offboarded; {_sessions} host starts; " +
            $"{resumedTotal} unfinished ops resumed after kills; ops with a step run more than once: " +
            $"{stats.OnboardingsRerun} onboardings, {stats.OffboardingsRerun} offboardings");
        if (problems.Count > 0)
        {
            Assert.Fail($"{problems.Count} problems after crash recovery (seed {seed}, data dir kept at {_dataDir}):\n"
                + Report(problems)
                + "\nhost output (numbered by start), " + _hostOutput.Summary(40));
        }

        // The rounds did what they are for: kills landed while operations ran, offboarding included.
        Assert.True(stats.OnboardingsRerun > 0, "No onboarding step ever ran twice: no kill landed inside a step.");
        Assert.True(offboards.Count > 0, "No tenant was offboarded during the rounds.");
        _passed = true;
    }

    public void Dispose()
    {
        _disposed = true;
        _host?.Dispose();
        _host = null;
        if (_passed)
        {
            try
            {
                Directory.Delete(_dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>The problems grouped by where they were seen, a few of each, so one flood does not hide the rest.</summary>
    private static string Report(List<string> problems) => string.Join("\n", problems
        .GroupBy(p => p.IndexOfAny([':', '/', ' ']) is > 0 and var end ? p[..end] : p, StringComparer.Ordinal)
        .Select(g => $"{g.Key} ({g.Count()}):\n    " + string.Join("\n    ", g.Take(12)) + (g.Count() > 12 ? "\n    ..." : "")));

    private async Task<HostRun> StartHostAsync(params string[] settings)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var session = ++_sessions;
        try
        {
            _host = await HostRun.StartAsync(_dataDir, session, _hostOutput, settings);
            return _host;
        }
        catch (InvalidOperationException e)
        {
            Assert.Fail($"Host start #{session} failed: {e.Message}\n{_hostOutput.Tail(40)}");
            throw;
        }
    }

    private static async Task<HttpClient> OperatorClientAsync(HostRun host)
    {
        return await host.Process.OperatorClientAsync(RequestTimeout);
    }

    private static async Task CreateAsync(HttpClient client, Creation creation, ConcurrentQueue<string> unexpected)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/tenants")
        {
            Content = JsonContent.Create(new { name = $"Crash {creation.Slug}", slug = creation.Slug, tier = creation.Tier, adminEmail = creation.AdminEmail }),
        };
        request.Headers.Add("Idempotency-Key", creation.Key);
        var reply = await TrySendAsync(client, request);
        if (reply is null)
        {
            return; // Killed before the answer arrived.
        }

        if (reply.Status != HttpStatusCode.Accepted)
        {
            unexpected.Enqueue($"POST /v1/tenants ({creation.Slug}) answered {(int)reply.Status}: {reply.Body}");
            return;
        }

        using var json = JsonDocument.Parse(reply.Body);
        var id = json.RootElement.GetProperty("id").GetString()!;
        if (creation.Id is not null && creation.Id != id)
        {
            unexpected.Enqueue($"{creation.Slug} was acknowledged as {creation.Id} and later as {id}");
        }

        creation.Id = id;
        creation.OperationId = json.RootElement.GetProperty("operationId").GetString();
        creation.Acknowledged = true;
    }

    private static async Task OffboardAsync(HttpClient client, Offboard offboard, ConcurrentQueue<string> unexpected)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, $"/v1/tenants/{offboard.Tenant.Id}");
        request.Headers.Add("Idempotency-Key", offboard.Key);
        var reply = await TrySendAsync(client, request);
        if (reply is null)
        {
            return;
        }

        if (reply.Status != HttpStatusCode.Accepted)
        {
            unexpected.Enqueue($"DELETE /v1/tenants/{offboard.Tenant.Id} ({offboard.Tenant.Slug}) answered {(int)reply.Status}: {reply.Body}");
            return;
        }

        using var json = JsonDocument.Parse(reply.Body);
        offboard.OperationId = json.RootElement.GetProperty("id").GetString();
        offboard.Acknowledged = true;
    }

    /// <summary>The whole answer, or null when the connection died first (the host was killed).</summary>
    private static async Task<Reply?> TrySendAsync(HttpClient client, HttpRequestMessage request)
    {
        try
        {
            using var response = await client.SendAsync(request);
            return new Reply(response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        catch (HttpRequestException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (TaskCanceledException)
        {
            return null;
        }
    }

    private static async Task<HashSet<string>> ListIdsAsync(HttpClient client, string status) =>
        [.. (await ListAllAsync(client, status)).Select(t => t.GetProperty("id").GetString()!)];

    private static async Task<JsonElement[]> ListAllAsync(HttpClient client, string? status = null)
    {
        var items = new List<JsonElement>();
        string? cursor = null;
        for (var page = 0; page < 100; page++)
        {
            var path = "/v1/tenants?limit=200"
                + (status is null ? "" : "&status=" + status)
                + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor));
            using var response = await client.GetAsync(new Uri(path, UriKind.Relative));
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"GET {path}: {(int)response.StatusCode} {body}");
            using var json = JsonDocument.Parse(body);
            items.AddRange(json.RootElement.GetProperty("items").EnumerateArray().Select(e => e.Clone()));
            cursor = json.RootElement.GetProperty("nextCursor").GetString();
            if (cursor is null)
            {
                return [.. items];
            }
        }

        Assert.Fail("The tenant list did not end after 100 pages.");
        return [];
    }

    private static async Task<bool> WaitUntilSettledAsync(HttpClient client)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < SettleTimeout)
        {
            var busy = false;
            foreach (var status in new[] { "provisioning", "offboarding" })
            {
                using var response = await client.GetAsync(new Uri($"/v1/tenants?limit=1&status={status}", UriKind.Relative));
                response.EnsureSuccessStatusCode();
                using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                busy |= json.RootElement.GetProperty("items").GetArrayLength() > 0;
            }

            if (!busy)
            {
                return true;
            }

            await Task.Delay(200);
        }

        return false;
    }

    [GeneratedRegex(@"Resuming (\d+) unfinished operations", RegexOptions.CultureInvariant)]
    private static partial Regex ResumingLine();

    private sealed record Reply(HttpStatusCode Status, string Body);

    private sealed class Creation(string slug, string tier, int round)
    {
        public string Slug { get; } = slug;
        public string Tier { get; } = tier;
        public int Round { get; } = round;
        public string Key => "create-" + Slug;
        public string AdminEmail => $"admin@{Slug}.test";
        public string? Id { get; set; }
        public string? OperationId { get; set; }
        public bool Acknowledged { get; set; }
    }

    private sealed class Offboard(Creation tenant)
    {
        public Creation Tenant { get; } = tenant;
        public string Key => "offboard-" + Tenant.Slug;
        public string? OperationId { get; set; }
        public bool Acknowledged { get; set; }
    }

    private sealed record Stats(int OnboardingsRerun, int OffboardingsRerun);

    /// <summary>What the data directory must hold once every operation has finished.</summary>
    private sealed class Expectations(string dataDir, List<Creation> creations, Dictionary<string, Offboard> offboards)
    {
        private readonly Dictionary<string, Creation> _byId = creations.Where(c => c.Id is not null).ToDictionary(c => c.Id!, StringComparer.Ordinal);

        private bool IsOffboarded(Creation c) => c.Id is not null && offboards.ContainsKey(c.Id);

        private IEnumerable<Creation> Active => creations.Where(c => c.Id is not null && !IsOffboarded(c));

        public void CheckRegistry(JsonElement[] registry, List<string> problems)
        {
            foreach (var group in registry.GroupBy(t => t.GetProperty("slug").GetString()!, StringComparer.Ordinal).Where(g => g.Count() > 1))
            {
                problems.Add($"registry: slug {group.Key} is held by {group.Count()} tenants");
            }

            var bySlug = registry.GroupBy(t => t.GetProperty("slug").GetString()!, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
            var ours = creations.Select(c => c.Slug).ToHashSet(StringComparer.Ordinal);
            problems.AddRange(bySlug.Keys.Where(s => !ours.Contains(s)).Select(s => $"registry: a tenant {s} that was never asked for"));
            foreach (var c in creations)
            {
                if (!bySlug.TryGetValue(c.Slug, out var tenant))
                {
                    problems.Add($"registry: {c.Slug} ({c.Tier}, round {c.Round}) is missing{(c.Acknowledged ? " though its creation was acknowledged" : "")}");
                    continue;
                }

                var id = tenant.GetProperty("id").GetString();
                if (c.Id is not null && id != c.Id)
                {
                    problems.Add($"registry: {c.Slug} has id {id}, its creation was acknowledged as {c.Id}");
                }

                var status = tenant.GetProperty("status").GetString();
                var want = IsOffboarded(c) ? "offboarded" : "active";
                if (status != want)
                {
                    var reason = tenant.TryGetProperty("statusReason", out var r) ? r.ToString() : "";
                    problems.Add($"registry: {c.Slug} ({c.Tier}) is {status}, expected {want}; reason: {reason}");
                    continue;
                }

                var resources = tenant.GetProperty("resources");
                var keys = resources.EnumerateObject().Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
                string[] mustHave = IsOffboarded(c) ? ["identity", "export", "archive"] : ["database", "storage", "identity", "compute"];
                string[] mustLack = IsOffboarded(c) ? ["database", "storage", "compute"] : ["export", "archive"];
                if (!mustHave.All(keys.Contains) || mustLack.Any(keys.Contains))
                {
                    problems.Add($"registry: {c.Slug} ({want}) has resources {resources}");
                }
            }
        }

        public Stats CheckControlStore(List<string> problems)
        {
            using var c = Open(Path.Combine(dataDir, "control.db"));
            var ops = Query(c, "SELECT id, kind, tenant_id, status, error FROM operations", r => (Id: r.GetString(0), Kind: r.GetString(1), Tenant: r.GetString(2), Status: r.GetString(3), Error: r.IsDBNull(4) ? null : r.GetString(4)));
            var steps = Query(c, "SELECT operation_id, ordinal, name, status, attempts, error FROM operation_steps ORDER BY operation_id, ordinal", r => (Op: r.GetString(0), Name: r.GetString(2), Status: r.GetString(3), Attempts: r.GetInt32(4), Error: r.IsDBNull(5) ? null : r.GetString(5)))
                .ToLookup(s => s.Op, StringComparer.Ordinal);
            var users = Query(c, "SELECT tenant_id, email, role, disabled FROM tenant_users", r => (Tenant: r.GetString(0), Email: r.GetString(1), Role: r.GetString(2), Disabled: r.GetInt64(3) != 0))
                .ToLookup(u => u.Tenant, StringComparer.Ordinal);
            var routes = Query(c, "SELECT tenant_id, slug, mode, upstream, enabled FROM tenant_routes", r => (Tenant: r.GetString(0), Slug: r.GetString(1), Mode: r.GetString(2), Upstream: r.GetString(3), Enabled: r.GetInt64(4) != 0))
                .ToLookup(x => x.Tenant, StringComparer.Ordinal);
            var outbox = Query(c, "SELECT tenant_id, type FROM outbox ORDER BY seq", r => (Tenant: r.IsDBNull(0) ? "" : r.GetString(0), Type: r.GetString(1)))
                .ToLookup(m => m.Tenant, m => m.Type, StringComparer.Ordinal);
            var mails = Query(c, "SELECT tenant_id, kind, message_key FROM mails", r => (Tenant: r.IsDBNull(0) ? "" : r.GetString(0), Kind: r.GetString(1), Key: r.GetString(2)))
                .ToLookup(m => m.Tenant, StringComparer.Ordinal);
            var invitations = Query(c, "SELECT tenant_id, email FROM invitations", r => (Tenant: r.GetString(0), Email: r.GetString(1)))
                .ToLookup(i => i.Tenant, StringComparer.Ordinal);
            var currentOps = Query(c, "SELECT id, current_operation_id FROM tenants", r => (Id: r.GetString(0), Op: r.IsDBNull(1) ? null : r.GetString(1)))
                .ToDictionary(t => t.Id, t => t.Op, StringComparer.Ordinal);

            foreach (var op in ops)
            {
                if (op.Status != "succeeded" || op.Error is not null)
                {
                    problems.Add($"control.db: operation {op.Id} ({op.Kind}) of {Slug(op.Tenant)} is {op.Status}: {op.Error}");
                }

                var names = steps[op.Id].Select(s => s.Name).ToArray();
                var definition = op.Kind == "onboarding" ? OnboardSteps : OffboardSteps;
                if (!names.SequenceEqual(definition, StringComparer.Ordinal))
                {
                    problems.Add($"control.db: operation {op.Id} ({op.Kind}) has steps [{string.Join(", ", names)}]");
                }

                problems.AddRange(steps[op.Id].Where(s => s.Status != "succeeded")
                    .Select(s => $"control.db: step {s.Name} of {op.Kind} {op.Id} ({Slug(op.Tenant)}) is {s.Status} after {s.Attempts} attempts: {s.Error}"));
            }

            problems.AddRange(ops.Where(o => !_byId.ContainsKey(o.Tenant)).Select(o => $"control.db: operation {o.Id} ({o.Kind}) for unknown tenant {o.Tenant}"));
            problems.AddRange(users.Select(u => u.Key).Where(t => !_byId.ContainsKey(t)).Select(t => $"control.db: tenant_users rows for unknown tenant {t}"));
            problems.AddRange(routes.Select(r => r.Key).Where(t => !_byId.ContainsKey(t)).Select(t => $"control.db: tenant_routes rows for unknown tenant {t}"));
            problems.AddRange(outbox.Select(m => m.Key).Where(t => !_byId.ContainsKey(t)).Select(t => $"control.db: outbox rows for unknown tenant '{t}'"));
            problems.AddRange(mails.Select(m => m.Key).Where(t => !_byId.ContainsKey(t)).Select(t => $"control.db: mails for unknown tenant '{t}'"));

            foreach (var t in creations.Where(x => x.Id is not null))
            {
                var id = t.Id!;
                var offboarded = IsOffboarded(t);
                var onboardings = ops.Where(o => o.Tenant == id && o.Kind == "onboarding").ToList();
                var offboardings = ops.Where(o => o.Tenant == id && o.Kind == "offboarding").ToList();
                if (onboardings.Count != 1 || (t.OperationId is not null && onboardings[0].Id != t.OperationId))
                {
                    problems.Add($"control.db: {t.Slug} has {onboardings.Count} onboarding operations [{string.Join(", ", onboardings.Select(o => o.Id))}], expected exactly {t.OperationId}");
                }

                if (offboardings.Count != (offboarded ? 1 : 0) || ops.Count(o => o.Tenant == id) != onboardings.Count + offboardings.Count)
                {
                    problems.Add($"control.db: {t.Slug} has operations [{string.Join(", ", ops.Where(o => o.Tenant == id).Select(o => o.Kind))}], expected onboarding{(offboarded ? " + offboarding" : "")}");
                }

                var expectedCurrent = offboarded ? offboardings.FirstOrDefault().Id : onboardings.FirstOrDefault().Id;
                if (currentOps.TryGetValue(id, out var current) && current != expectedCurrent)
                {
                    problems.Add($"control.db: {t.Slug} points at operation {current}, expected {expectedCurrent}");
                }

                var admin = users[id].ToList();
                if (admin.Count != 1 || admin[0].Role != "admin" || admin[0].Email != t.AdminEmail || admin[0].Disabled != offboarded)
                {
                    problems.Add($"control.db: {t.Slug} ({(offboarded ? "offboarded" : "active")}) has tenant_users [{string.Join(", ", admin)}], expected one {(offboarded ? "disabled" : "enabled")} admin {t.AdminEmail}");
                }

                var route = routes[id].ToList();
                var mode = t.Tier == "premium" ? "dedicated" : "shared";
                if (offboarded ? route.Count != 0 : route.Count != 1 || route[0].Mode != mode || !route[0].Enabled || route[0].Slug != t.Slug)
                {
                    problems.Add($"control.db: {t.Slug} ({(offboarded ? "offboarded" : "active")}) has tenant_routes [{string.Join(", ", route)}], expected {(offboarded ? "none" : $"one enabled {mode} route")}");
                }

                var messages = mails[id].ToList();
                if (messages.Count != 1 || messages[0].Kind != "welcome" || messages[0].Key != $"{onboardings.FirstOrDefault().Id}:notify")
                {
                    problems.Add($"control.db: {t.Slug} has mails [{string.Join(", ", messages)}], expected one welcome keyed {onboardings.FirstOrDefault().Id}:notify");
                }

                if (invitations[id].Count() != 1)
                {
                    problems.Add($"control.db: {t.Slug} has invitations [{string.Join(", ", invitations[id])}], expected one for its admin");
                }

                // Exactly one event per change of state, whatever the crashes: a step run again publishes nothing twice.
                string[] expected = offboarded
                    ? ["tenant.created", "tenant.activated", "operation.succeeded", "tenant.offboarding", "tenant.offboarded", "operation.succeeded"]
                    : ["tenant.created", "tenant.activated", "operation.succeeded"];
                if (!outbox[id].SequenceEqual(expected, StringComparer.Ordinal))
                {
                    problems.Add($"control.db: {t.Slug} published [{string.Join(", ", outbox[id])}], expected [{string.Join(", ", expected)}]");
                }
            }


            int Rerun(string kind) => ops.Count(o => o.Kind == kind && steps[o.Id].Any(s => s.Attempts > 1));
            return new Stats(Rerun("onboarding"), Rerun("offboarding"));
        }

        public void CheckTenantDatabases(List<string> problems)
        {
            var databases = Path.Combine(dataDir, "databases");
            var pool = File.Exists(Path.Combine(databases, "pool.db"))
                ? QueryFile(Path.Combine(databases, "pool.db"), "SELECT tenant_id, slug FROM tenants", r => (Tenant: r.GetString(0), Slug: r.GetString(1)))
                : [];
            var poolRows = pool.ToLookup(p => p.Tenant, StringComparer.Ordinal);
            problems.AddRange(poolRows.Where(g => !Active.Any(c => c.Id == g.Key && c.Tier == "basic"))
                .Select(g => $"pool.db: {g.Count()} rows of {Slug(g.Key)}, which is not an active basic tenant"));
            foreach (var t in Active.Where(c => c.Tier == "basic"))
            {
                var rows = poolRows[t.Id!].ToList();
                if (rows.Count != 1 || rows[0].Slug != t.Slug)
                {
                    problems.Add($"pool.db: active basic tenant {t.Slug} has {rows.Count} rows [{string.Join(", ", rows)}], expected exactly one");
                }
            }

            foreach (var (tier, folder) in new[] { ("standard", "bridge"), ("premium", "silo") })
            {
                var directory = Path.Combine(databases, folder);
                var want = Active.Where(c => c.Tier == tier).ToDictionary(c => c.Slug, StringComparer.Ordinal);
                var present = Directory.Exists(directory) ? Directory.GetFiles(directory).Select(Path.GetFileName).ToList() : [];
                foreach (var file in present)
                {
                    var slug = Regex.Replace(file!, @"\.db(-wal|-shm|-journal)?$", "", RegexOptions.CultureInvariant);
                    if (!want.ContainsKey(slug))
                    {
                        problems.Add($"databases/{folder}: {file} belongs to no active {tier} tenant");
                    }
                }

                foreach (var t in want.Values)
                {
                    var path = Path.Combine(directory, t.Slug + ".db");
                    if (!File.Exists(path))
                    {
                        problems.Add($"databases/{folder}: active {tier} tenant {t.Slug} has no database file");
                        continue;
                    }

                    var rows = QueryFile(path, "SELECT tenant_id, slug FROM tenant_info", r => (Tenant: r.GetString(0), Slug: r.GetString(1)));
                    if (rows.Count != 1 || rows[0].Tenant != t.Id || rows[0].Slug != t.Slug)
                    {
                        problems.Add($"databases/{folder}/{t.Slug}.db: tenant_info holds [{string.Join(", ", rows)}], expected exactly ({t.Id}, {t.Slug})");
                    }
                }
            }
        }

        public void CheckFiles(List<string> problems)
        {
            var tenantsRoot = Path.Combine(dataDir, "tenants");
            var folders = Directory.Exists(tenantsRoot) ? Directory.GetDirectories(tenantsRoot).Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal) : [];
            var known = creations.Where(c => c.Id is not null).Select(c => c.Slug).ToHashSet(StringComparer.Ordinal);
            problems.AddRange(folders.Where(f => !known.Contains(f!)).Select(f => $"tenants/{f}: a folder of no tenant"));
            foreach (var t in creations.Where(c => c.Id is not null))
            {
                var folder = Path.Combine(tenantsRoot, t.Slug);
                var owner = Path.Combine(folder, ".tenant-id");
                var ownerId = File.Exists(owner) ? File.ReadAllText(owner).Trim() : null;
                if (ownerId != t.Id)
                {
                    problems.Add($"tenants/{t.Slug}/.tenant-id is '{ownerId}', expected {t.Id}");
                }

                var exports = Path.Combine(folder, "exports");
                if (!IsOffboarded(t))
                {
                    if (!Directory.Exists(Path.Combine(folder, "uploads")) || !Directory.Exists(exports))
                    {
                        problems.Add($"tenants/{t.Slug}: active tenant without its uploads and exports folders");
                    }

                    continue;
                }

                var left = Directory.Exists(folder)
                    ? Directory.GetFileSystemEntries(folder).Select(Path.GetFileName).Where(n => n is not ".tenant-id" and not "exports").ToList()
                    : [];
                if (left.Count > 0)
                {
                    problems.Add($"tenants/{t.Slug}: offboarded tenant still has [{string.Join(", ", left)}]");
                }

                var zips = Directory.Exists(exports) ? Directory.GetFiles(exports) : [];
                var opId = offboards[t.Id!].OperationId;
                var expectedZip = opId is null ? null : $"{t.Slug}-export-{Guid.Parse(opId):N}.zip";
                if (zips.Length != 1 || (expectedZip is not null && Path.GetFileName(zips[0]) != expectedZip))
                {
                    problems.Add($"tenants/{t.Slug}/exports holds [{string.Join(", ", zips.Select(Path.GetFileName))}], expected exactly {expectedZip ?? "one export zip"}");
                    continue;
                }

                try
                {
                    using var zip = ZipFile.OpenRead(zips[0]);
                    var manifest = zip.GetEntry("tenant.json");
                    using var stream = manifest?.Open();
                    using var json = stream is null ? null : JsonDocument.Parse(stream);
                    if (json?.RootElement.GetProperty("id").GetString() != t.Id)
                    {
                        problems.Add($"tenants/{t.Slug}/exports/{Path.GetFileName(zips[0])}: tenant.json missing or of another tenant");
                    }
                }
                catch (InvalidDataException ex)
                {
                    problems.Add($"tenants/{t.Slug}/exports/{Path.GetFileName(zips[0])}: not a readable zip ({ex.Message})");
                }
            }

            var computeRoot = Path.Combine(dataDir, "compute");
            var computeFolders = Directory.Exists(computeRoot) ? Directory.GetDirectories(computeRoot).Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal) : [];
            var dedicated = Active.Where(c => c.Tier == "premium").ToList();
            problems.AddRange(computeFolders.Where(f => !f!.StartsWith("shared-", StringComparison.Ordinal) && !dedicated.Any(c => c.Slug == f))
                .Select(f => $"compute/{f}: a deployment of no active premium tenant"));
            foreach (var t in dedicated.Where(t => Directory.Exists(Path.Combine(computeRoot, t.Slug))))
            {
                var manifest = Path.Combine(computeRoot, t.Slug, "orders@1.0.0", "instance.json");
                using var json = File.Exists(manifest) ? JsonDocument.Parse(File.ReadAllText(manifest)) : null;
                if (json?.RootElement.GetProperty("tenantId").GetString() != t.Id)
                {
                    problems.Add($"compute/{t.Slug}/orders@1.0.0/instance.json missing or of another tenant");
                }
            }

            // Every temporary file was either renamed into place or written again and renamed.
            foreach (var root in new[] { tenantsRoot, computeRoot }.Where(Directory.Exists))
            {
                problems.AddRange(Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
                    .Where(f => f.EndsWith(".tmp", StringComparison.Ordinal) || f.EndsWith(".partial", StringComparison.Ordinal))
                    .Select(f => $"left-over temporary file {Path.GetRelativePath(dataDir, f)}"));
            }
        }

        private string Slug(string tenantId) => _byId.TryGetValue(tenantId, out var c) ? c.Slug : tenantId;

        private static List<T> QueryFile<T>(string path, string sql, Func<SqliteDataReader, T> map)
        {
            using var c = Open(path);
            return Query(c, sql, map);
        }

        private static SqliteConnection Open(string path)
        {
            var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
            connection.Open();
            return connection;
        }

        private static List<T> Query<T>(SqliteConnection c, string sql, Func<SqliteDataReader, T> map)
        {
            using var command = c.CreateCommand();
            command.CommandText = sql;
            using var reader = command.ExecuteReader();
            var rows = new List<T>();
            while (reader.Read())
            {
                rows.Add(map(reader));
            }

            return rows;
        }
    }

    /// <summary>Lines the host children wrote, drained as they come so a full pipe never blocks a child.</summary>
    private sealed class HostOutput
    {
        private const int MaxLines = 20_000;
        private readonly ConcurrentQueue<(int Session, string Line)> _lines = new();

        public void Add(int session, string line)
        {
            _lines.Enqueue((session, line));
            while (_lines.Count > MaxLines && _lines.TryDequeue(out _))
            {
            }
        }

        public int Count(int session, string text) => _lines.Count(l => l.Session == session && l.Line.Contains(text, StringComparison.Ordinal));

        public int ResumedCount(int session) => _lines
            .Where(l => l.Session == session)
            .Select(l => ResumingLine().Match(l.Line))
            .Where(m => m.Success)
            .Sum(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));

        public string Tail(int count) => string.Join("\n", _lines.TakeLast(count).Select(l => $"[{l.Session}] {l.Line}"));

        /// <summary>The last warnings and errors of every start, then the last lines of all.</summary>
        public string Summary(int count)
        {
            var trouble = _lines.Where(l => l.Line.StartsWith("stderr:", StringComparison.Ordinal)
                    || l.Line.Contains(" warn: ", StringComparison.Ordinal)
                    || l.Line.Contains(" fail: ", StringComparison.Ordinal)
                    || l.Line.Contains(" crit: ", StringComparison.Ordinal))
                .Where(l => !l.Line.Contains("No XML encryptor configured", StringComparison.Ordinal))
                .TakeLast(count)
                .Select(l => $"[{l.Session}] {l.Line}");
            return "warnings and errors:\n" + string.Join("\n", trouble) + "\nlast lines:\n" + Tail(count / 2);
        }
    }

    /// <summary>One start of the host (<see cref="TenantryHost"/>) on a loopback port; its output is tagged with <see cref="Session"/>.</summary>
    private sealed class HostRun(TenantryHost process, int session) : IDisposable
    {
        public TenantryHost Process { get; } = process;

        public int Session { get; } = session;

        public static async Task<HostRun> StartAsync(string dataDir, int session, HostOutput sink, string[] settings) => new(
            await TenantryHost.StartAsync(new TenantryHostOptions
            {
                DataDir = dataDir,
                // Tests that register their own app run its instances, which only the application plane does.
                ApplicationPlane = settings.Contains(SampleApps.NoDefaultApp),
                OperatorSecret = OperatorSecret,
                StartTimeout = HealthTimeout,
                Settings = settings,
                Output = line => sink.Add(session, line),
            }),
            session);

        public void Dispose() => Process.Dispose();
    }
}
