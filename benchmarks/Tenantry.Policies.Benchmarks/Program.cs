using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane;
using Tenantry.ControlPlane.ObjectStorage;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Database;
using Tenantry.Policies;

namespace Tenantry.Policies.Benchmarks;

/// <summary>
/// Authorised read (key validation + policy lookup + evaluation of 20 statements + the read)
/// against the bare read of the same 4 KB local object, interleaved in rounds so both see the
/// same machine; then raw evaluations per second and allocations per evaluation.
/// </summary>
internal static class Program
{
    private const string Help = """
        Usage: dotnet run -c Release --project benchmarks/Tenantry.Policies.Benchmarks -- [--rounds N] [--reads N] [--evaluations N]
               dotnet run -c Release --project benchmarks/Tenantry.Policies.Benchmarks -- --mode bare|authorised|authorisation --count N

          --rounds N        rounds of paired reads (default 15)
          --reads N         pairs per round: a bare read next to an authorised one (default 4000)
          --evaluations N   evaluations for the evaluator-only figures (default 2000000)
          --mode M          only N operations of one kind after a fixed warm-up, for profiling, e.g.
                            DOTNET_TieredCompilation=0 DOTNET_PerfMapEnabled=1 valgrind --tool=callgrind …
                            (JIT-compiled functions are named in /tmp/perf-PID.map); total counts
                            move by ~20 k instructions per read between identical runs (runtime
                            threads), so compare functions, not totals

        Prints a markdown report: per-read times (median of rounds), the overhead ratio against the
        5% goal, evaluations per second and bytes allocated per evaluation and per authorisation.
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Any(a => a is "--help" or "-h"))
        {
            Console.WriteLine(Help);
            return 0;
        }

        var rounds = Option(args, "--rounds", 15);
        var reads = Option(args, "--reads", 4000);
        var evaluations = Option(args, "--evaluations", 2_000_000);
        var mode = Text(args, "--mode");
        var count = Option(args, "--count", 0, allowZero: true);
        if (mode is not (null or "bare" or "authorised" or "authorisation"))
        {
            Console.Error.WriteLine("--mode is bare, authorised or authorisation.");
            return 2;
        }

        var dir = Path.Combine(Path.GetTempPath(), "tenantry-policies-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            using var db = new SqliteDatabase(Path.Combine(dir, "control.db"), ControlPlaneSchema.Sqlite);
            await SeedPoliciesAsync(db);
            // Counting instructions runs ~50 times slower, so the catalog's 5-second refresh would
            // reload the policies every few hundred reads there: its clock stands still in that mode.
            var catalog = new PolicyCatalog(db, mode is null ? TimeProvider.System : new StillTime());
            var provider = new LocalObjectStore(Options.Create(new TenantryOptions { DataDir = dir }));
            var storage = new TenantObjectStorage(provider, catalog, db, TimeProvider.System, NullLogger<TenantObjectStorage>.Instance);
            var principal = new TenantPrincipal(Guid.NewGuid(), "acme", "basic", "alice@acme.test", TenantPrincipal.MemberRole, TenantPrincipal.UserType);
            const string key = "tenants/acme/uploads/2026/report.bin";
            await storage.PutAsync(principal, key, new MemoryStream(new byte[4096]));
            var objectKey = ObjectKeys.Parse(key);
            var policies = await catalog.ForAsync(principal);
            var statementCount = policies.Set.Identity.Concat(policies.Set.Session).Concat(policies.Set.Guardrails).Sum(p => p.Document.Statements.Count);
            var buffer = new byte[8192];

            // Counting instructions (--mode) reads synchronously: an asynchronous file read hops to
            // the thread pool, whose idle threads spin for as long as the timing lets them, and
            // that would count as much as the read itself.
            async Task<long> BareAsync()
            {
                await using var content = await provider.GetAsync(objectKey, default);
                return mode is null ? await ReadAllAsync(content!.Stream, buffer) : ReadAll(content!.Stream, buffer);
            }

            async Task<long> AuthorisedAsync()
            {
                await using var content = await storage.GetAsync(principal, key);
                return mode is null ? await ReadAllAsync(content!.Stream, buffer) : ReadAll(content!.Stream, buffer);
            }

            // Everything a read adds before touching the file: TenantObjectStorage's own authorisation
            // (key validation, policy lookup, resource name, evaluation by the principal's bound set).
            async Task<long> AuthorisationAsync() =>
                (await storage.AuthoriseAsync(principal, PlatformPolicies.GetObject, key, prefix: false, default)).FullKey.Length;

            // Warm-up: page cache, policy cache and the JIT. The framework's file code is
            // precompiled (ReadyToRun) while Tenantry's starts unoptimised (tier 0) and is
            // recompiled in the background; on a busy machine that takes seconds, and measuring
            // before it ends charged the authorised read several microseconds of tier-0 code. So
            // the warm-up lasts until no method has been compiled for three rounds in a row (at
            // least 2 s, at most 60 s).
            var warmUp = Stopwatch.StartNew();
            var quietRounds = 0;
            var compiled = JitInfo.GetCompiledMethodCount();
            // Counting instructions (--mode) needs the same work in every run: a fixed warm-up there,
            // with the tiered JIT switched off by the script.
            var warmUpRounds = 0;
            while (mode is null
                ? warmUp.Elapsed < TimeSpan.FromSeconds(60) && (quietRounds < 3 || warmUp.Elapsed < TimeSpan.FromSeconds(2))
                : warmUpRounds++ < 4)
            {
                for (var i = 0; i < 500; i++)
                {
                    await BareAsync();
                    await AuthorisedAsync();
                    await AuthorisationAsync();
                }

                if (mode is null)
                {
                    await Task.Delay(50);
                }

                var now = JitInfo.GetCompiledMethodCount();
                quietRounds = now == compiled ? quietRounds + 1 : 0;
                compiled = now;
            }

            var warmUpSeconds = warmUp.Elapsed.TotalSeconds;

            // Instruction counting (callgrind): only one kind of read, so two runs compare instruction
            // counts; a run with --count 0 gives the start-up and warm-up to subtract.
            if (mode is not null)
            {
                long bytes = 0;
                for (var i = 0; i < count; i++)
                {
                    bytes += mode switch
                    {
                        "authorised" => await AuthorisedAsync(),
                        "authorisation" => await AuthorisationAsync(),
                        _ => await BareAsync(),
                    };
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{mode}: {count} reads, {bytes} bytes"));
                return 0;
            }

            // Paired samples: each bare read is next to an authorised one (order alternating), and
            // the overhead is the median of the pairs' differences — robust to a busy machine.
            var samples = rounds * reads;
            var bare = new double[samples];
            var authorised = new double[samples];
            var differences = new double[samples];
            var tick = 1e6 / Stopwatch.Frequency;
            for (var i = 0; i < samples; i++)
            {
                long t0, t1, t2;
                if (i % 2 == 0)
                {
                    t0 = Stopwatch.GetTimestamp();
                    await BareAsync();
                    t1 = Stopwatch.GetTimestamp();
                    await AuthorisedAsync();
                    t2 = Stopwatch.GetTimestamp();
                    bare[i] = (t1 - t0) * tick;
                    authorised[i] = (t2 - t1) * tick;
                }
                else
                {
                    t0 = Stopwatch.GetTimestamp();
                    await AuthorisedAsync();
                    t1 = Stopwatch.GetTimestamp();
                    await BareAsync();
                    t2 = Stopwatch.GetTimestamp();
                    authorised[i] = (t1 - t0) * tick;
                    bare[i] = (t2 - t1) * tick;
                }

                differences[i] = authorised[i] - bare[i];
            }

            // Second estimate, in process CPU time (user + kernel): what the work costs, without
            // the time the scheduler gives to other processes. Rounds of two batches (order
            // alternating); the verdict is the median of the rounds' ratios, so a round that
            // another process disturbed moves it little.
            var cpuBare = TimeSpan.Zero;
            var cpuAuthorised = TimeSpan.Zero;
            var cpuRatios = new double[rounds];
            var self = Process.GetCurrentProcess();
            async Task<TimeSpan> BatchAsync(bool authorisedBatch)
            {
                self.Refresh();
                var start = self.TotalProcessorTime;
                for (var i = 0; i < reads; i++)
                {
                    await (authorisedBatch ? AuthorisedAsync() : BareAsync());
                }

                self.Refresh();
                return self.TotalProcessorTime - start;
            }

            for (var r = 0; r < rounds; r++)
            {
                TimeSpan b, a;
                if (r % 2 == 0)
                {
                    b = await BatchAsync(false);
                    a = await BatchAsync(true);
                }
                else
                {
                    a = await BatchAsync(true);
                    b = await BatchAsync(false);
                }

                cpuBare += b;
                cpuAuthorised += a;
                cpuRatios[r] = (a - b) / b;
            }

            var cpuOverhead = Median(cpuRatios);
            var bareUs = Median(bare);
            var authUs = Median(authorised);
            var overhead = Median(differences) / bareUs;

            // Evaluator alone: the request a read makes, allowed after walking every statement.
            var request = new AccessRequest(PlatformPolicies.GetObject, $"trn:tenantry:storage::acme:{key}", policies.Context);
            if (!policies.Set.Evaluate(request).IsAllowed)
            {
                throw new InvalidOperationException("The benchmark request should be allowed.");
            }

            for (var i = 0; i < 100_000; i++)
            {
                policies.Set.Evaluate(request);
            }

            var before = GC.GetAllocatedBytesForCurrentThread();
            var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var watch = Stopwatch.StartNew();
            for (var i = 0; i < evaluations; i++)
            {
                policies.Set.Evaluate(request);
            }

            watch.Stop();
            var perCpuSecond = evaluations / (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;
            var evalAllocated = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)evaluations;
            var perSecond = evaluations / watch.Elapsed.TotalSeconds;

            // Everything a read adds before touching the file: key validation, policy lookup, evaluation.
            const int authorisations = 200_000;
            before = GC.GetAllocatedBytesForCurrentThread();
            watch.Restart();
            for (var i = 0; i < authorisations; i++)
            {
                // Directly, not through the async wrapper above, whose Task<long> would count too.
                Sink<ObjectKey>.Value = Completed(storage.AuthoriseAsync(principal, PlatformPolicies.GetObject, key, prefix: false, default));
            }

            var authAllocated = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)authorisations;
            var authorisationUs = watch.Elapsed.TotalMicroseconds / authorisations;

            // Its parts, each alone (nanoseconds per call, best of three runs).
            var nameBuffer = new char[ObjectResourceName.Length(objectKey)];
            ObjectResourceName.Write(objectKey, nameBuffer);
            double Nanoseconds<T>(Func<T> part)
            {
                var best = double.MaxValue;
                for (var run = 0; run < 3; run++)
                {
                    var partWatch = Stopwatch.StartNew();
                    for (var i = 0; i < authorisations; i++)
                    {
                        Sink<T>.Value = part();
                    }

                    best = Math.Min(best, partWatch.Elapsed.TotalNanoseconds / authorisations);
                }

                return best;
            }

            var keyNs = Nanoseconds(() => ObjectKeys.Parse(key));
            var lookupNs = Nanoseconds(() => Completed(catalog.ForAsync(principal)));
            var nameNs = Nanoseconds(() => ObjectResourceName.Write(objectKey, nameBuffer).Length);
            var boundNs = Nanoseconds(() => policies.Bound.Evaluate(PlatformPolicies.GetObject, nameBuffer.AsSpan()));

            var c = CultureInfo.InvariantCulture;
            Console.WriteLine("## Policy evaluation on a storage read");
            Console.WriteLine();
            Console.WriteLine(string.Create(c, $"{Environment.ProcessorCount} cores, .NET {Environment.Version}; {statementCount} statements (role + tier session policy + guardrails), 4096-byte local object; {rounds * reads} paired reads (bare and authorised side by side, order alternating); medians, overhead = median of the pairs' differences."));
            Console.WriteLine();
            var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
            Console.WriteLine(string.Create(c, $"Load average when finished: {load}; warm-up until the JIT was done: {warmUpSeconds:F1} s."));
            Console.WriteLine();
            Console.WriteLine("| measure | value |");
            Console.WriteLine("|---|---|");
            Console.WriteLine(string.Create(c, $"| bare read (open, read 4 KB, close) | {bareUs:F2} µs |"));
            Console.WriteLine(string.Create(c, $"| authorised read (validate key + policies + evaluate + read) | {authUs:F2} µs |"));
            Console.WriteLine(string.Create(c, $"| authorisation cost alone / bare read | {authorisationUs / bareUs * 100:F2}% |"));
            Console.WriteLine(string.Create(c, $"| authorisation overhead, wall clock (median of paired differences) | {overhead * 100:F2}% (goal ≤ 5%: {(overhead <= 0.05 ? "met" : "NOT met")}) |"));
            Console.WriteLine(string.Create(c, $"| authorisation overhead, process CPU time (median of {rounds} rounds of {reads} reads per side; all rounds {cpuRatios.Min() * 100:F1}% to {cpuRatios.Max() * 100:F1}%) | {cpuOverhead * 100:F2}% (goal ≤ 5%: {(cpuOverhead <= 0.05 ? "met" : "NOT met")}) |"));
            Console.WriteLine(string.Create(c, $"| CPU time per read, bare / authorised | {cpuBare.TotalMicroseconds / (rounds * reads):F2} µs / {cpuAuthorised.TotalMicroseconds / (rounds * reads):F2} µs |"));
            Console.WriteLine(string.Create(c, $"| evaluations per second (one core, 20 statements, allowed; the set, not bound) | {perSecond:N0} |"));
            Console.WriteLine(string.Create(c, $"| evaluations per CPU-second (process CPU time, insensitive to other load) | {perCpuSecond:N0} |"));
            Console.WriteLine(string.Create(c, $"| time per evaluation | {1e6 / perSecond:F3} µs |"));
            Console.WriteLine(string.Create(c, $"| time per authorisation (key + lookup + evaluate, no file) | {authorisationUs:F3} µs |"));
            Console.WriteLine(string.Create(c, $"| its parts: key validation / policy lookup / resource name / evaluation by the bound set | {keyNs:F0} / {lookupNs:F0} / {nameNs:F0} / {boundNs:F0} ns |"));
            Console.WriteLine(string.Create(c, $"| bytes allocated per evaluation | {evalAllocated:F1} |"));
            Console.WriteLine(string.Create(c, $"| bytes allocated per authorisation (key + lookup + evaluate) | {authAllocated:F1} |"));
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private sealed class StillTime : TimeProvider
    {
        private readonly DateTimeOffset _now = DateTimeOffset.UtcNow;

        public override DateTimeOffset GetUtcNow() => _now;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            base.CreateTimer(callback, state, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>A value task's result when it completed at once (a fresh catalog), without a Task around it.</summary>
    private static T Completed<T>(ValueTask<T> task) =>
        task.IsCompletedSuccessfully ? task.Result : throw new InvalidOperationException("The policy lookup should complete at once.");

    /// <summary>Where a measured part's result goes, so the JIT cannot drop the call (and nothing is boxed).</summary>
    private static class Sink<T>
    {
        public static T? Value;
    }

    private static long ReadAll(Stream stream, byte[] buffer)
    {
        long total = 0;
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            total += read;
        }

        return total;
    }

    private static async Task<long> ReadAllAsync(Stream stream, byte[] buffer)
    {
        long total = 0;
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            total += read;
        }

        return total;
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static int Option(string[] args, string name, int fallback, bool allowZero = false)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length && int.TryParse(args[at + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var value) && (value > 0 || allowZero) ? value : fallback;
    }

    private static string? Text(string[] args, string name)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }

    /// <summary>
    /// 20 statements in all: the member role policy (1), a tier template of 9 and guardrails of 10 —
    /// denies with conditions that do not fire, wildcards, variables — so a read walks all of them.
    /// </summary>
    private static Task SeedPoliciesAsync(SqliteDatabase db) => db.WriteAsync(async (c, tx) =>
    {
        var now = DateTimeOffset.UtcNow;
        await PolicyStore.PutTemplateAsync(c, tx, "basic", """
            {"Version":"2012-10-17","Statement":[
              {"Sid":"DenyOtherTenants","Effect":"Deny","Action":"storage:*","NotResource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/*"},
              {"Sid":"DenyExportsWrite","Effect":"Deny","Action":["storage:PutObject","storage:DeleteObject"],"Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/exports/*"},
              {"Sid":"DenyWrongTenantTag","Effect":"Deny","Action":"storage:*","Resource":"*","Condition":{"StringNotEquals":{"tenantry:TenantSlug":"${tenant}"}}},
              {"Sid":"DenyPrivate","Effect":"Deny","Action":"storage:GetObject","Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/private/*","Condition":{"StringNotEquals":{"tenantry:Role":"admin"}}},
              {"Sid":"Uploads","Effect":"Allow","Action":["storage:PutObject","storage:GetObject"],"Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/incoming/*"},
              {"Sid":"Shared","Effect":"Allow","Action":"storage:GetObject","Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/shared/??/*"},
              {"Sid":"List","Effect":"Allow","Action":"storage:ListObjects","Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/*","Condition":{"StringLike":{"storage:prefix":"tenants/${tenant}/*"}}},
              {"Sid":"Admin","Effect":"Allow","Action":"storage:*","Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/*","Condition":{"StringEquals":{"tenantry:Role":"admin"}}},
              {"Sid":"TenantObjects","Effect":"Allow","Action":["storage:GetObject","storage:PutObject"],"Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/*"}
            ]}
            """, now);
        await PolicyStore.ReplaceGuardrailsAsync(c, tx,
        [
            ("baseline", """
                {"Version":"2012-10-17","Statement":[
                  {"Sid":"DenyDeletesOfArchives","Effect":"Deny","Action":"storage:DeleteObject","Resource":"trn:tenantry:storage::*:tenants/*/archive/*"},
                  {"Sid":"DenyOutsideHours","Effect":"Deny","Action":"storage:*","Resource":"*","Condition":{"Bool":{"tenantry:Suspended":"true"}}},
                  {"Sid":"DenyUnknownPrincipals","Effect":"Deny","Action":"storage:*","Resource":"*","Condition":{"Null":{"tenantry:TenantId":"true"}}},
                  {"Sid":"DenyExecutables","Effect":"Deny","Action":"storage:PutObject","Resource":["trn:tenantry:storage::*:*.exe","trn:tenantry:storage::*:*.dll"]},
                  {"Sid":"DenyLegacyTier","Effect":"Deny","Action":"storage:*","Resource":"*","Condition":{"StringEquals":{"tenantry:Tier":["legacy","blocked"]}}},
                  {"Sid":"DenyBadNetworks","Effect":"Deny","Action":"storage:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.0/24"}}}
                ]}
                """),
            ("allow", """
                {"Version":"2012-10-17","Statement":[
                  {"Sid":"Compute","Effect":"Allow","Action":"compute:*","Resource":"*"},
                  {"Sid":"Billing","Effect":"Allow","Action":"billing:Get*","Resource":"*"},
                  {"Sid":"Identity","Effect":"Allow","Action":["identity:*"],"Resource":"*"},
                  {"Sid":"Storage","Effect":"Allow","Action":"storage:*","Resource":"trn:tenantry:storage::*"}
                ]}
                """),
        ], now);
    });
}
