using System.Globalization;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

public sealed partial class CrashRecoveryTests
{
    [Fact]
    public async Task Sigterm_mid_operation_exits_cleanly_and_the_work_resumes_at_next_start()
    {
        output.WriteLine($"data dir {_dataDir}");
        var host = await StartHostAsync();
        var ids = new List<string>();
        using (var client = await OperatorClientAsync(host))
        {
            for (var i = 0; i < 12; i++)
            {
                using var response = await client.CreateTenantAsync(new { name = $"Term {i}", slug = $"term-{i}", tier = Tiers[i % Tiers.Length], adminEmail = $"a@term{i}.test" });
                Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
                ids.Add((await response.JsonAsync()).GetProperty("id").GetString()!);
            }
        }

        var exit = host.Process.Terminate(TimeSpan.FromSeconds(40));
        Assert.True(exit == 0, $"SIGTERM: exit code {exit?.ToString(CultureInfo.InvariantCulture) ?? "none (still running)"}\n{_hostOutput.Tail(30)}");
        host.Dispose();
        _host = null;

        var again = await StartHostAsync();
        using (var client = await OperatorClientAsync(again))
        {
            foreach (var id in ids)
            {
                await client.WaitForStatusAsync(id, "active", seconds: 30);
            }
        }

        _passed = true;
    }

    /// <summary>
    /// The app each dedicated instance runs: a shell that runs the real app as its child. Instances of
    /// <c>stubborn-*</c> tenants ignore SIGTERM; the others say so in their log and stop their app.
    /// </summary>
    private const string WrapperScript = """
        case "$TENANTRY_INSTANCE" in
          */stubborn-*/*) trap '' TERM ;;
          *) trap 'echo "wrapper: SIGTERM received"; kill -TERM "$child"; wait "$child"; exit 0' TERM ;;
        esac
        "$@" &
        child=$!
        wait "$child"
        """;

    [Fact]
    public async Task Sigterm_stops_adopted_dedicated_instances_together_and_kills_those_that_ignore_it()
    {
        output.WriteLine($"data dir {_dataDir}");
        var grace = TimeSpan.FromSeconds(3);
        string[] settings =
        [
            SampleApps.NoDefaultApp,
            "--Tenantry:Compute:FirstDedicatedPort=" + TenantryHost.FreePorts(1)[0].ToString(CultureInfo.InvariantCulture),
            "--Tenantry:Compute:StopGracePeriod=" + grace.ToString("c", CultureInfo.InvariantCulture),
        ];
        string[] slugs = ["stubborn-1", "polite-1", "stubborn-2", "polite-2", "stubborn-3", "polite-3", "stubborn-4", "polite-4"];
        var pids = new List<int>();
        try
        {
            var first = await StartHostAsync(settings);
            using (var client = await OperatorClientAsync(first))
            {
                await SampleApps.RegisterWrappedOrdersAsync(client, _dataDir, WrapperScript);
                var ids = new List<string>();
                foreach (var slug in slugs)
                {
                    using var response = await client.CreateTenantAsync(new { name = slug, slug, tier = "premium", adminEmail = $"a@{slug}.test" });
                    Assert.Equal(System.Net.HttpStatusCode.Accepted, response.StatusCode);
                    ids.Add((await response.JsonAsync()).GetProperty("id").GetString()!);
                }

                foreach (var id in ids)
                {
                    await client.WaitForStatusAsync(id, "active", seconds: 120);
                }
            }

            foreach (var slug in slugs)
            {
                var wrapper = first.Process.InstancePid(slug);
                pids.Add(wrapper);
                pids.AddRange(LocalProcesses.Children(wrapper));
            }

            Assert.Equal(2 * slugs.Length, pids.Count);

            // A crash leaves the instances running; the next host adopts them (they are not its children).
            first.Process.Kill(entireProcessTree: false);
            first.Dispose();
            _host = null;
            var second = await StartHostAsync(settings);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (slugs.Sum(slug => _hostOutput.Count(second.Session, $"Adopted the running instance {slug}/")) < slugs.Length && clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(100);
            }

            Assert.Equal(slugs.Length, slugs.Sum(slug => _hostOutput.Count(second.Session, $"Adopted the running instance {slug}/")));

            var exit = second.Process.Terminate(grace + TimeSpan.FromSeconds(30));
            Assert.True(exit == 0, $"SIGTERM: exit code {exit?.ToString(CultureInfo.InvariantCulture) ?? "none (still running)"}\n{_hostOutput.Tail(30)}");
            second.Dispose();
            _host = null;

            var left = await LocalProcesses.WaitGoneAsync(pids, TimeSpan.FromSeconds(10));
            Assert.True(left.Count == 0, $"Still running after the host stopped: {string.Join(", ", left)}");
            foreach (var slug in slugs.Where(s => s.StartsWith("polite-", StringComparison.Ordinal)))
            {
                Assert.Contains("wrapper: SIGTERM received", File.ReadAllText(Path.Combine(_dataDir, "compute", slug, "orders@1.0.0", "app.log")), StringComparison.Ordinal);
            }

            _passed = true;
        }
        finally
        {
            foreach (var pid in pids.Where(pid => LocalProcesses.IsRunning(pid, _dataDir)))
            {
                LocalProcesses.Signal(pid, LocalProcesses.SigKill);
            }
        }
    }
}
