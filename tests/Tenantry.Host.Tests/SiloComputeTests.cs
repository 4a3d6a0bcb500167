using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>Dedicated instances across a host crash and through a silo tenant's lifecycle (own host, not shared with other tests).</summary>
public sealed class SiloComputeTests
{
    [Fact]
    public async Task A_dedicated_instance_survives_a_host_crash_is_adopted_and_stops_at_offboarding()
    {
        var first = await TenantryHost.StartAsync(TenantryHostOptions.Platform());
        TenantryHost? second = null;
        try
        {
            using var op = await first.OperatorClientAsync();
            var silo = await first.OnboardAsync(op, "vault", "premium");
            using (var client = silo.Client())
            {
                using var order = await client.PostAsJsonAsync("/orders", new { amount = 99m, note = "before crash" });
                Assert.Equal(HttpStatusCode.Created, order.StatusCode);
            }

            int pid;
            using (var client = silo.Client())
            {
                pid = (await client.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32();
            }

            first.Kill(entireProcessTree: false);
            Assert.True(TenantryHost.IsInstance(pid, first.DataDir), "The dedicated instance died with the host.");

            second = await TenantryHost.StartAsync(TenantryHostOptions.Platform() with { DataDir = first.DataDir, Ports = first.Ports });
            using var op2 = await second.OperatorClientAsync();
            var tenant = silo with { Host = second };
            using (var client = tenant.Client())
            {
                var clock = Stopwatch.StartNew();
                JsonElement instance = default;
                while (clock.Elapsed < TimeSpan.FromSeconds(30))
                {
                    using var response = await client.GetAsync(new Uri("/instance", UriKind.Relative));
                    if (response.IsSuccessStatusCode)
                    {
                        instance = await response.Content.ReadFromJsonAsync<JsonElement>();
                        break;
                    }

                    await Task.Delay(100);
                }

                Assert.Equal(pid, instance.GetProperty("processId").GetInt32());
                var orders = await client.GetFromJsonAsync<JsonElement>("/orders");
                Assert.Contains(orders.GetProperty("items").EnumerateArray(), o => o.GetProperty("note").GetString() == "before crash");
            }

            // The adopted instance is supervised like one the host started: killed, it comes back.
            using (var process = Process.GetProcessById(pid))
            {
                process.Kill();
                await process.WaitForExitAsync();
            }

            var restarted = await WaitForNewInstanceAsync(tenant, pid);
            Assert.NotEqual(pid, restarted);

            using (var offboard = await op2.DeleteAsync(new Uri($"/v1/tenants/{tenant.Id}", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.Accepted, offboard.StatusCode);
            }

            await TenantryHost.WaitForStatusAsync(op2, tenant.Id.ToString(), "offboarded");
            Assert.False(TenantryHost.IsInstance(restarted, first.DataDir), "The dedicated instance outlived offboarding.");
            using (var client = tenant.Client())
            {
                // The gateway learns of it at its next routing-table reload (every second): within seconds, not at once.
                var clock = Stopwatch.StartNew();
                var status = HttpStatusCode.OK;
                while (clock.Elapsed < TimeSpan.FromSeconds(10))
                {
                    using var refused = await client.GetAsync(new Uri("/orders", UriKind.Relative));
                    status = refused.StatusCode;
                    Assert.NotEqual(HttpStatusCode.OK, status);
                    if (status == HttpStatusCode.Forbidden)
                    {
                        break;
                    }

                    await Task.Delay(100);
                }

                Assert.Equal(HttpStatusCode.Forbidden, status);
            }
        }
        finally
        {
            if (second is not null)
            {
                await second.DisposeAsync();
            }

            await first.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_dedicated_instance_gets_its_app_settings_and_none_of_the_hosts_other_environment()
    {
        const string unrelated = "host-only-value-7c1e";
        var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform() with
        {
            Environment = new Dictionary<string, string>
            {
                ["TENANTRY_OPERATOR_SECRET"] = TenantryHostOptions.DefaultOperatorSecret,
                ["TENANTRY_TEST_UNRELATED"] = unrelated,
            },
        });
        try
        {
            Assert.Equal(unrelated, LocalProcesses.Environment(host.ProcessId)["TENANTRY_TEST_UNRELATED"]);
            using var op = await host.OperatorClientAsync();
            var silo = await host.OnboardAsync(op, "sealed", "premium");
            using var client = silo.Client();
            var pid = (await client.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32();

            var environment = LocalProcesses.Environment(pid);
            Assert.DoesNotContain("TENANTRY_OPERATOR_SECRET", environment.Keys);
            Assert.DoesNotContain("TENANTRY_TEST_UNRELATED", environment.Keys);
            Assert.DoesNotContain(environment.Values, v => v.Contains(host.OperatorSecret, StringComparison.Ordinal) || v.Contains(unrelated, StringComparison.Ordinal));
            Assert.Equal(silo.Id.ToString(), environment["TENANTRY_TENANT_ID"]);
            Assert.Equal("orders", environment["TENANTRY_APP"]);
            Assert.Equal("1.0.0", environment["TENANTRY_RELEASE"]);
            Assert.Equal("Data Source=" + Path.Combine(host.DataDir, "databases", "silo", "sealed.db"), environment["TENANTRY_DATABASE"]);
            Assert.Contains("TENANTRY_CONTEXT_JWKS", environment.Keys);
            Assert.Equal(environment["ASPNETCORE_URLS"], "http://127.0.0.1:" + environment["PORT"]);
            Assert.StartsWith("http://127.0.0.1:", environment["ASPNETCORE_URLS"], StringComparison.Ordinal);
            Assert.Contains("PATH", environment.Keys);

            using var orders = await client.PostAsJsonAsync("/orders", new { amount = 5m, note = "sealed" });
            Assert.Equal(HttpStatusCode.Created, orders.StatusCode);
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_hung_dedicated_instance_gets_503_with_retry_after_and_is_replaced()
    {
        // Probes that notice the hang well after the gateway's request timed out, so the 503 is seen before the restart.
        var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(
        [
            "--Tenantry:Compute:LivenessInterval=00:00:01",
            "--Tenantry:Compute:LivenessTimeout=00:00:01",
            "--Tenantry:Compute:LivenessFailures=5",
            "--Tenantry:Gateway:UpstreamTimeout=00:00:02",
            "--Tenantry:Gateway:UpstreamRetryAfter=00:00:02",
        ]));
        var hung = 0;
        try
        {
            using var op = await host.OperatorClientAsync();
            var silo = await host.OnboardAsync(op, "frozen", "premium");
            using var client = silo.Client();
            client.Timeout = TimeSpan.FromSeconds(60);
            hung = host.InstancePid("frozen");
            Assert.Equal(hung, (await client.GetFromJsonAsync<JsonElement>("/instance")).GetProperty("processId").GetInt32());

            Assert.True(LocalProcesses.Signal(hung, LocalProcesses.SigStop));
            using (var response = await client.GetAsync(new Uri("/orders", UriKind.Relative)))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                Assert.NotNull(response.Headers.RetryAfter?.Delta);
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Equal("https://tenantry.dev/problems/upstream-unresponsive", problem.GetProperty("type").GetString());
            }

            var clock = Stopwatch.StartNew();
            var replaced = 0;
            while (clock.Elapsed < TimeSpan.FromSeconds(60) && replaced == 0)
            {
                using var response = await client.GetAsync(new Uri("/instance", UriKind.Relative));
                if (response.IsSuccessStatusCode)
                {
                    replaced = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetInt32();
                    break;
                }

                // Answered at once while known to be unresponsive, and while the new instance starts.
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                await Task.Delay(100);
            }

            Assert.NotEqual(0, replaced);
            Assert.NotEqual(hung, replaced);
            Assert.False(LocalProcesses.IsRunning(hung), "The hung instance was left running.");
            using var orders = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, orders.StatusCode);
        }
        finally
        {
            // A stopped process is killed by SIGKILL all the same (the host's clean-up), but let it go first if it is still ours.
            if (hung != 0 && TenantryHost.IsInstance(hung, host.DataDir))
            {
                LocalProcesses.Signal(hung, LocalProcesses.SigCont);
            }

            await host.DisposeAsync();
        }
    }

    private static async Task<int> WaitForNewInstanceAsync(TenantHandle tenant, int old)
    {
        using var client = tenant.Client();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            using var response = await client.GetAsync(new Uri("/instance", UriKind.Relative));
            if (response.IsSuccessStatusCode)
            {
                var pid = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetInt32();
                if (pid != old)
                {
                    return pid;
                }
            }

            await Task.Delay(100);
        }

        Assert.Fail("The dedicated instance was not started again.");
        return 0;
    }
}
