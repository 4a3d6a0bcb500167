using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Tenantry.Testing;

namespace Tenantry.Host.Tests;

/// <summary>Release rollouts of the default app across real instances: waves, gates, rollback, and a host crash mid-rollout (own hosts).</summary>
public sealed class RolloutTests
{
    private static readonly TimeSpan RolloutTimeout = TimeSpan.FromSeconds(180);

    /// <summary>The sample's migrations, as its first release has them.</summary>
    private static string SampleMigrations => Path.Combine(SampleApps.BuiltOrdersFolder, "migrations");

    private static string OrdersDll => Path.Combine(SampleApps.BuiltOrdersFolder, "Orders.Api.dll");

    [Fact]
    public async Task A_rollout_moves_pool_and_premium_tenants_to_the_new_release_in_two_waves_and_refuses_bad_requests()
    {
        var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(SampleApps.NoDefaultApp));
        try
        {
            using var op = await host.OperatorClientAsync();
            await RegisterOrdersAsync(op, host);
            var pools = new[] { await host.OnboardAsync(op, "pool-a", "basic"), await host.OnboardAsync(op, "pool-b", "basic") };
            var silos = new[] { await host.OnboardAsync(op, "silo-a", "premium"), await host.OnboardAsync(op, "silo-b", "premium") };
            await CreateReleaseAsync(op, host, "1.1.0");

            await AssertProblemAsync(op, new { app = "nope", version = "1.1.0" }, HttpStatusCode.NotFound);
            await AssertProblemAsync(op, new { app = "orders", version = "9.9.9" }, HttpStatusCode.UnprocessableEntity, "unknown-release");
            await AssertProblemAsync(op, new { app = "orders", version = "1.0.0" }, HttpStatusCode.UnprocessableEntity, "release-is-current");
            await AssertProblemAsync(op, new { app = "orders", version = "1.1.0", waves = new object[] { new { tenants = new[] { pools[0].Id } } } },
                HttpStatusCode.UnprocessableEntity, "not-a-dedicated-tenant");
            await AssertProblemAsync(op, new { app = "orders", version = "1.1.0", waves = new object[] { new { percent = 0 } } }, HttpStatusCode.BadRequest);
            await AssertProblemAsync(op, new { app = "orders", version = "1.1.0", gates = new { maxErrorRate = 2 } }, HttpStatusCode.BadRequest);

            var id = await StartAsync(op, new
            {
                app = "orders",
                version = "1.1.0",
                waves = new object[] { new { tenants = new[] { silos[0].Id } }, new { percent = 100 } },
                bakeSeconds = 1,
                gates = new { maxErrorRate = 0.5 },
            });
            await AssertProblemAsync(op, new { app = "orders", version = "1.1.0" }, HttpStatusCode.Conflict, "rollout-running");

            var rollout = await WaitFinishedAsync(op, id);
            Assert.True(rollout.GetProperty("status").GetString() == "succeeded", rollout.ToString());
            var waves = rollout.GetProperty("waves").EnumerateArray().ToList();
            Assert.Equal(3, waves.Count);
            Assert.Equal([silos[0].Id], waves[1].GetProperty("tenants").EnumerateArray().Select(t => t.GetProperty("tenantId").GetGuid()));
            Assert.Equal([silos[1].Id], waves[2].GetProperty("tenants").EnumerateArray().Select(t => t.GetProperty("tenantId").GetGuid()));
            Assert.All(waves.SelectMany(w => w.GetProperty("tenants").EnumerateArray()), t => Assert.Equal("1.1.0", t.GetProperty("release").GetString()));

            foreach (var silo in silos)
            {
                AssertOnlyInstance(host, silo.Slug, "1.1.0");
                await AssertServesAsync(host, silo, silo.Slug, "1.1.0");
                await AssertComputeReleaseAsync(op, silo, "1.1.0");
            }

            AssertOnlyInstance(host, "shared-1", "1.1.0");
            foreach (var pool in pools)
            {
                await AssertServesAsync(host, pool, "shared-1", "1.1.0");
            }

            var app = await op.GetFromJsonAsync<JsonElement>("/v1/apps/orders");
            Assert.Equal("1.1.0", app.GetProperty("currentRelease").GetProperty("version").GetString());
            var list = await op.GetFromJsonAsync<JsonElement>("/v1/rollouts?app=orders");
            Assert.Equal(id, list.GetProperty("items")[0].GetProperty("id").GetGuid());
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_release_that_never_gets_healthy_is_rolled_back_and_the_tenants_keep_the_old_one()
    {
        var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(SampleApps.NoDefaultApp, "--Tenantry:Compute:StartTimeout=00:00:04"));
        try
        {
            using var op = await host.OperatorClientAsync();
            await RegisterOrdersAsync(op, host);
            var silo = await host.OnboardAsync(op, "steady", "premium");
            using (var release = await op.PostAsJsonAsync("/v1/apps/orders/releases", new { version = "2.0.0", process = new { command = "/bin/sleep", args = new[] { "600" } }, migrationsPath = SampleMigrations }))
            {
                Assert.Equal(HttpStatusCode.Created, release.StatusCode);
            }

            var id = await StartAsync(op, new { app = "orders", version = "2.0.0", bakeSeconds = 1 });
            var rollout = await WaitFinishedAsync(op, id);
            Assert.True(rollout.GetProperty("status").GetString() == "rolled-back", rollout.ToString());
            Assert.Contains("never got healthy", rollout.GetProperty("error").GetString(), StringComparison.Ordinal);

            AssertOnlyInstance(host, silo.Slug, "1.0.0");
            await AssertServesAsync(host, silo, silo.Slug, "1.0.0");
            var app = await op.GetFromJsonAsync<JsonElement>("/v1/apps/orders");
            Assert.Equal("1.0.0", app.GetProperty("currentRelease").GetProperty("version").GetString());
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_healthy_release_that_answers_5xx_fails_its_gate_at_the_canary_wave_and_is_rolled_back()
    {
        var host = await TenantryHost.StartAsync(TenantryHostOptions.Platform(SampleApps.NoDefaultApp));
        try
        {
            using var op = await host.OperatorClientAsync();
            await RegisterOrdersAsync(op, host);
            var canary = await host.OnboardAsync(op, "canary", "premium");
            var later = await host.OnboardAsync(op, "later", "premium");

            // Healthy (its health endpoint needs no database) but every /orders call fails: its database cannot be opened.
            const string script = "export TENANTRY_DATABASE='Data Source=/nonexistent-folder/broken.db'; exec \"$@\"";
            using (var release = await op.PostAsJsonAsync("/v1/apps/orders/releases", new
            {
                version = "3.0.0",
                process = new
                {
                    command = "/bin/sh",
                    args = new[] { "-c", script, "broken", TenantryHost.DotnetPath(), OrdersDll, "--Tenantry:App:DataDir=" + host.DataDir },
                    workingDirectory = Path.GetDirectoryName(OrdersDll),
                },
                migrationsPath = SampleMigrations,
            }))
            {
                Assert.Equal(HttpStatusCode.Created, release.StatusCode);
            }

            var id = await StartAsync(op, new
            {
                app = "orders",
                version = "3.0.0",
                waves = new object[] { new { tenants = new[] { canary.Id } }, new { percent = 100 } },
                bakeSeconds = 8,
                gates = new { maxErrorRate = 0.2 },
            });

            // Traffic to the canary while the rollout runs, so its gate has figures.
            using var client = canary.Client();
            var clock = Stopwatch.StartNew();
            JsonElement rollout = default;
            while (clock.Elapsed < RolloutTimeout)
            {
                rollout = await op.GetFromJsonAsync<JsonElement>($"/v1/rollouts/{id}");
                if (rollout.GetProperty("status").GetString() is not ("running" or "paused"))
                {
                    break;
                }

                using var response = await client.GetAsync(new Uri("/orders", UriKind.Relative));
                await Task.Delay(50);
            }

            Assert.True(rollout.GetProperty("status").GetString() == "rolled-back", rollout.ToString());
            Assert.Contains("gate", rollout.GetProperty("error").GetString(), StringComparison.Ordinal);
            var waves = rollout.GetProperty("waves");
            Assert.False(waves[1].GetProperty("gates").GetProperty("passed").GetBoolean());
            Assert.Equal("pending", waves[2].GetProperty("tenants")[0].GetProperty("status").GetString());

            AssertOnlyInstance(host, canary.Slug, "1.0.0");
            AssertOnlyInstance(host, later.Slug, "1.0.0");
            await AssertServesAsync(host, canary, canary.Slug, "1.0.0");
            await AssertComputeReleaseAsync(op, canary, "1.0.0");
            await AssertComputeReleaseAsync(op, later, "1.0.0");
            using var orders = await client.GetAsync(new Uri("/orders", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, orders.StatusCode);
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_rollout_cut_short_by_kill_9_of_the_host_resumes_and_finishes_with_one_instance_per_tenant()
    {
        var first = await TenantryHost.StartAsync(TenantryHostOptions.Platform(SampleApps.NoDefaultApp));
        TenantryHost? second = null;
        try
        {
            using var op = await first.OperatorClientAsync();
            await RegisterOrdersAsync(op, first);
            var silos = new[] { await first.OnboardAsync(op, "crash-a", "premium"), await first.OnboardAsync(op, "crash-b", "premium") };
            await CreateReleaseAsync(op, first, "1.1.0");
            var id = await StartAsync(op, new
            {
                app = "orders",
                version = "1.1.0",
                waves = new object[] { new { tenants = new[] { silos[0].Id } }, new { percent = 100 } },
                bakeSeconds = 4,
            });

            // Kill the host once the canary wave has moved (its bake under way), before the rollout ends.
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < RolloutTimeout)
            {
                var now = await op.GetFromJsonAsync<JsonElement>($"/v1/rollouts/{id}");
                Assert.Equal("running", now.GetProperty("status").GetString());
                if (now.GetProperty("waves")[1].GetProperty("status").GetString() == "baking")
                {
                    break;
                }

                await Task.Delay(50);
            }

            first.Kill(entireProcessTree: false);
            second = await TenantryHost.StartAsync(TenantryHostOptions.Platform(SampleApps.NoDefaultApp) with { DataDir = first.DataDir, Ports = first.Ports });
            using var op2 = await second.OperatorClientAsync();
            var rollout = await WaitFinishedAsync(op2, id);
            Assert.True(rollout.GetProperty("status").GetString() == "succeeded", rollout.ToString());
            foreach (var silo in silos)
            {
                AssertOnlyInstance(second, silo.Slug, "1.1.0");
                await AssertServesAsync(second, silo with { Host = second }, silo.Slug, "1.1.0");
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

    /// <summary>The sample as app <c>orders</c> with release 1.0.0: its process and its migrations.</summary>
    private static async Task RegisterOrdersAsync(HttpClient op, TenantryHost host)
    {
        using (var app = await op.PostAsJsonAsync("/v1/apps", new { name = "orders", routePrefix = "/", healthPath = "/healthz" }))
        {
            Assert.True(app.StatusCode == HttpStatusCode.Created, await app.Content.ReadAsStringAsync());
        }

        using var release = await op.PostAsJsonAsync("/v1/apps/orders/releases", new
        {
            version = "1.0.0",
            process = new { command = TenantryHost.DotnetPath(), args = new[] { OrdersDll, "--Tenantry:App:DataDir=" + host.DataDir }, workingDirectory = SampleApps.BuiltOrdersFolder },
            migrationsPath = SampleMigrations,
        });
        Assert.True(release.StatusCode == HttpStatusCode.Created, await release.Content.ReadAsStringAsync());
    }

    /// <summary>Release <paramref name="version"/> of the default app: the same process, the sample's migrations and one more.</summary>
    private static async Task CreateReleaseAsync(HttpClient op, TenantryHost host, string version)
    {
        var folder = Path.Combine(host.DataDir, "release-" + version);
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(SampleMigrations))
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        }

        await File.WriteAllTextAsync(Path.Combine(folder, "900_order_tags.sql"), "ALTER TABLE orders ADD COLUMN tag text;\n");
        using var release = await op.PostAsJsonAsync("/v1/apps/orders/releases", new
        {
            version,
            process = new
            {
                command = TenantryHost.DotnetPath(),
                args = new[] { OrdersDll, "--Tenantry:App:DataDir=" + host.DataDir },
                workingDirectory = Path.GetDirectoryName(OrdersDll),
            },
            migrationsPath = folder,
        });
        Assert.True(release.StatusCode == HttpStatusCode.Created, await release.Content.ReadAsStringAsync());
    }

    private static async Task<Guid> StartAsync(HttpClient op, object body)
    {
        using var response = await op.PostAsJsonAsync("/v1/rollouts", body);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, await response.Content.ReadAsStringAsync());
        var accepted = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("running", accepted.GetProperty("status").GetString());
        Assert.Equal(accepted.GetProperty("id").GetGuid(), accepted.GetProperty("operationId").GetGuid());
        return accepted.GetProperty("id").GetGuid();
    }

    private static async Task AssertProblemAsync(HttpClient op, object body, HttpStatusCode status, string? kind = null)
    {
        using var response = await op.PostAsJsonAsync("/v1/rollouts", body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        if (kind is not null)
        {
            Assert.EndsWith("/" + kind, JsonDocument.Parse(text).RootElement.GetProperty("type").GetString(), StringComparison.Ordinal);
        }
    }

    private static async Task<JsonElement> WaitFinishedAsync(HttpClient op, Guid id)
    {
        var clock = Stopwatch.StartNew();
        JsonElement rollout = default;
        while (clock.Elapsed < RolloutTimeout)
        {
            rollout = await op.GetFromJsonAsync<JsonElement>($"/v1/rollouts/{id}");
            if (rollout.GetProperty("status").GetString() is not ("running" or "paused"))
            {
                return rollout;
            }

            await Task.Delay(200);
        }

        return rollout;
    }

    /// <summary>The owner has exactly one instance folder of the app, of <paramref name="release"/>, and no other row or process.</summary>
    private static void AssertOnlyInstance(TenantryHost host, string owner, string release)
    {
        var folders = Directory.GetDirectories(Path.Combine(host.DataDir, "compute", owner), "orders@*").Select(Path.GetFileName).ToList();
        Assert.Equal(["orders@" + release], folders);
    }

    /// <summary>
    /// <c>GET /v1/tenants/{id}</c> shows <paramref name="release"/> in <c>resources.compute.apps.orders</c>, with the
    /// upstream of the instance that serves it (the port its process was given).
    /// </summary>
    private static async Task AssertComputeReleaseAsync(HttpClient op, TenantHandle tenant, string release)
    {
        var tenantJson = await op.GetFromJsonAsync<JsonElement>($"/v1/tenants/{tenant.Id}");
        var orders = tenantJson.GetProperty("resources").GetProperty("compute").GetProperty("apps").GetProperty("orders");
        Assert.True(orders.GetProperty("release").GetString() == release, tenantJson.ToString());
        var port = new Uri(orders.GetProperty("upstream").GetString()!).Port;
        var pid = tenant.Host.InstancePid(tenant.Slug, "orders", release);
        Assert.Equal(port.ToString(System.Globalization.CultureInfo.InvariantCulture), LocalProcesses.Environment(pid)["PORT"]);
    }

    /// <summary>The tenant's requests reach a process of <paramref name="release"/> (its <c>TENANTRY_RELEASE</c>).</summary>
    private static async Task AssertServesAsync(TenantryHost host, TenantHandle tenant, string owner, string release)
    {
        using var client = tenant.Client();
        var clock = Stopwatch.StartNew();
        var expected = host.InstancePid(owner, "orders", release);
        var pid = 0;
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            using var response = await client.GetAsync(new Uri("/instance", UriKind.Relative));
            if (response.IsSuccessStatusCode)
            {
                pid = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("processId").GetInt32();
                if (pid == expected)
                {
                    break;
                }
            }

            await Task.Delay(100);
        }

        Assert.Equal(expected, pid);
        Assert.Equal(release, LocalProcesses.Environment(pid)["TENANTRY_RELEASE"]);
    }
}
