using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tenantry.Testing;

namespace Tenantry.Kubernetes.Tests;

/// <summary>
/// The control plane with <c>Tenantry:Compute:Provider=kubernetes</c>, reaching an <see cref="ApiServerDouble"/>
/// through a kubeconfig, driven through its REST API as an operator drives it.
/// </summary>
public sealed class KubernetesProviderTests : IAsyncLifetime
{
    private const string Image = "registry.example/orders:1.0.0";
    private const string ApiKey = "release-api-key-5f0c2a9e";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-kube", Guid.NewGuid().ToString("N"));
    private ApiServerDouble _api = null!;
    private TenantryHost? _host;

    public async Task InitializeAsync() => _api = await ApiServerDouble.StartAsync();

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        await _api.DisposeAsync();
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public async Task Onboarding_a_premium_tenant_applies_namespace_policy_quota_secret_deployment_and_service_in_that_order()
    {
        var op = await StartAsync();
        var (id, _) = await OnboardAsync(op, "acme", "premium");

        Assert.Equal(
            ["Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "Secret", "Deployment", "Service"],
            _api.Applies("tenant-acme").Distinct().ToList());
        var ns = _api.Find("Namespace", "", "tenant-acme")!;
        Assert.Equal(id, (string?)ns["metadata"]!["labels"]!["tenantry.dev/tenant"]);
        Assert.Equal("premium", (string?)ns["metadata"]!["labels"]!["tenantry.dev/tier"]);
        Assert.All(_api.All("Deployment").Concat(_api.All("Secret")), o => Assert.Equal("tenantry", (string?)o["metadata"]!["managedFields"]![0]!["manager"]));

        var secret = Env(_api.Find("Secret", "tenant-acme", "orders-env")!);
        Assert.Equal(id, secret["TENANTRY_TENANT_ID"]);
        Assert.Equal("orders", secret["TENANTRY_APP"]);
        Assert.Equal("1.0.0", secret["TENANTRY_RELEASE"]);
        Assert.Equal("8080", secret["PORT"]);
        Assert.StartsWith("Data Source=", secret["TENANTRY_DATABASE"], StringComparison.Ordinal);
        Assert.Equal(Image, DeploymentImage("tenant-acme"));

        var compute = (await op.GetJsonAsync($"/v1/tenants/{id}")).GetProperty("resources").GetProperty("compute");
        Assert.Equal("kubernetes", compute.GetProperty("provider").GetString());
        Assert.Equal("tenant-acme", compute.GetProperty("namespace").GetString());
        Assert.Equal("http://orders.tenant-acme.svc.cluster.local:80", compute.GetProperty("apps").GetProperty("orders").GetProperty("service").GetString());
    }

    [Fact]
    public async Task The_gateway_routes_silo_tenants_to_their_service_and_pooled_tenants_to_the_shared_one()
    {
        var op = await StartAsync();
        var (silo, _) = await OnboardAsync(op, "acme", "premium");
        var (pooled, _) = await OnboardAsync(op, "initech", "basic");

        var routes = await op.GetJsonAsync("/v1/routes");
        var items = routes.GetProperty("items").EnumerateArray().ToDictionary(i => i.GetProperty("tenantId").GetString()!);
        Assert.Equal("http://orders.tenant-acme.svc.cluster.local:80", items[silo].GetProperty("apps").GetProperty("orders").GetString());
        Assert.Equal("shared", items[pooled].GetProperty("mode").GetString());
        var app = Assert.Single(routes.GetProperty("apps").EnumerateArray());
        Assert.Equal(["http://orders.tenantry-apps.svc.cluster.local:80"], app.GetProperty("shared").EnumerateArray().Select(s => s.GetString()).ToList());
        Assert.NotNull(_api.Find("HorizontalPodAutoscaler", "tenantry-apps", "orders"));
        Assert.Null(_api.Find("Namespace", "", "tenant-initech"));
    }

    [Fact]
    public async Task Suspension_scales_the_deployment_to_zero_and_reactivation_back()
    {
        var op = await StartAsync();
        var (id, _) = await OnboardAsync(op, "acme", "premium");

        (await op.PostAsync(new Uri($"/v1/tenants/{id}/suspend", UriKind.Relative), null)).EnsureSuccessStatusCode();
        await op.WaitForStatusAsync(id, "suspended");
        Assert.Equal(0, (int?)_api.Find("Deployment", "tenant-acme", "orders")!["spec"]!["replicas"]);

        (await op.PostAsync(new Uri($"/v1/tenants/{id}/reactivate", UriKind.Relative), null)).EnsureSuccessStatusCode();
        await op.WaitForStatusAsync(id, "active");
        var deployment = _api.Find("Deployment", "tenant-acme", "orders")!;
        Assert.Equal(1, (int?)deployment["spec"]!["replicas"]);
        Assert.Equal(1, (int?)deployment["status"]!["readyReplicas"]);
        Assert.Single(_api.All("Deployment"), d => (string?)d["metadata"]!["namespace"] == "tenant-acme");
    }

    [Fact]
    public async Task A_rollout_updates_the_deployment_image_of_shared_and_dedicated_instances()
    {
        var op = await StartAsync();
        await OnboardAsync(op, "acme", "premium");
        await OnboardAsync(op, "initech", "basic");
        await ReleaseAsync(op, "1.1.0", "registry.example/orders:1.1.0");

        using var start = await op.PostAsJsonAsync("/v1/rollouts", new { app = "orders", version = "1.1.0", bakeSeconds = 0 });
        Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
        var rollout = await WaitRolloutAsync(op, (await start.JsonAsync()).GetProperty("id").GetString()!);
        Assert.Equal("succeeded", rollout.GetProperty("status").GetString());

        Assert.Equal("registry.example/orders:1.1.0", DeploymentImage("tenant-acme"));
        Assert.Equal("registry.example/orders:1.1.0", DeploymentImage("tenantry-apps"));
        Assert.Equal("1.1.0", Env(_api.Find("Secret", "tenant-acme", "orders-env")!)["TENANTRY_RELEASE"]);
        Assert.Equal("1.1.0", (await op.GetJsonAsync("/v1/apps/orders")).GetProperty("currentRelease").GetProperty("version").GetString());
    }

    [Fact]
    public async Task A_rollout_whose_image_cannot_be_pulled_rolls_back_to_the_previous_image()
    {
        var op = await StartAsync();
        await OnboardAsync(op, "acme", "premium");
        _api.FailImage("registry.example/orders:bad", "ImagePullBackOff", "Back-off pulling image \"registry.example/orders:bad\"");
        await ReleaseAsync(op, "1.1.0", "registry.example/orders:bad");

        using var start = await op.PostAsJsonAsync("/v1/rollouts", new { app = "orders", version = "1.1.0", bakeSeconds = 0 });
        var rollout = await WaitRolloutAsync(op, (await start.JsonAsync()).GetProperty("id").GetString()!);

        Assert.Equal("rolled-back", rollout.GetProperty("status").GetString());
        Assert.Contains("ImagePullBackOff", rollout.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(Image, DeploymentImage("tenant-acme"));
    }

    [Fact]
    public async Task Offboarding_deletes_the_namespace_and_waits_until_it_is_gone()
    {
        var op = await StartAsync();
        var (id, _) = await OnboardAsync(op, "acme", "premium");

        using var delete = await op.DeleteAsync(new Uri($"/v1/tenants/{id}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Accepted, delete.StatusCode);
        await op.WaitForStatusAsync(id, "offboarded");

        Assert.Null(_api.Find("Namespace", "", "tenant-acme"));
        Assert.Null(_api.Find("Deployment", "tenant-acme", "orders"));
        var requests = _api.Requests.ToList();
        var deleted = requests.IndexOf("DELETE Namespace tenant-acme");
        var gone = requests.IndexOf("FINALIZED Namespace tenant-acme");
        Assert.True(deleted >= 0 && gone > deleted, string.Join('\n', requests));
        // The provider read the namespace until a read found it gone (finalized on that read), and only then finished.
        Assert.Equal("GET Namespace tenant-acme", requests[gone - 1]);
        Assert.Equal(gone, requests.FindLastIndex(r => r.Contains("tenant-acme", StringComparison.Ordinal)));
        Assert.DoesNotContain((await op.GetJsonAsync("/v1/routes")).GetProperty("items").EnumerateArray(), i => i.GetProperty("tenantId").GetString() == id);
    }

    [Fact]
    public async Task A_control_plane_restarted_mid_onboarding_adopts_what_exists_and_makes_nothing_twice()
    {
        _api.HoldReady = true;
        var op = await StartAsync();
        using var created = await op.CreateTenantAsync(new { name = "Acme", slug = "acme", tier = "premium", adminEmail = "admin@acme.test" });
        var id = (await created.JsonAsync()).GetProperty("id").GetString()!;
        await WaitUntilAsync(() => _api.Applies("tenant-acme").Contains("Service"), "the Service was applied");
        var uid = (string?)_api.Find("Deployment", "tenant-acme", "orders")!["metadata"]!["uid"];

        await _host!.DisposeAsync();
        _host = null;
        _api.HoldReady = false;
        op = await StartAsync(fresh: false);
        await op.WaitForStatusAsync(id, "active");

        Assert.Single(_api.All("Namespace"), n => (string?)n["metadata"]!["name"] == "tenant-acme");
        Assert.Single(_api.All("Deployment"), d => (string?)d["metadata"]!["namespace"] == "tenant-acme");
        Assert.Equal(uid, (string?)_api.Find("Deployment", "tenant-acme", "orders")!["metadata"]!["uid"]);
        Assert.True(_api.Applies("tenant-acme").Count(a => a == "Namespace") >= 2, "the restarted control plane applied again (adopting)");
        var tenant = await op.GetJsonAsync($"/v1/tenants/{id}");
        Assert.Equal("tenant-acme", tenant.GetProperty("resources").GetProperty("compute").GetProperty("namespace").GetString());
    }

    [Theory]
    [InlineData("ImagePullBackOff", "Back-off pulling image \"registry.example/orders:1.0.0\"", false)]
    [InlineData("CrashLoopBackOff", "back-off 40s restarting failed container=orders", false)]
    [InlineData("Unschedulable", "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.", true)]
    public async Task A_pod_failure_reason_reaches_the_operations_error(string reason, string message, bool unschedulable)
    {
        _api.FailImage(Image, reason, message, unschedulable);
        var op = await StartAsync();
        using var created = await op.CreateTenantAsync(new { name = "Acme", slug = "acme", tier = "premium", adminEmail = "admin@acme.test" });
        var body = await created.JsonAsync();
        await op.WaitForStatusAsync(body.GetProperty("id").GetString()!, "failed");

        var operation = await op.GetJsonAsync($"/v1/operations/{body.GetProperty("operationId").GetString()}");
        var error = operation.GetProperty("error").GetString()!;
        Assert.Contains(reason, error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
        Assert.Contains("tenant-acme/orders", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_secret_value_appears_in_the_operation_or_the_audit()
    {
        var op = await StartAsync();
        var (id, operationId) = await OnboardAsync(op, "acme", "premium");
        var secret = Env(_api.Find("Secret", "tenant-acme", "orders-env")!);
        Assert.Equal(ApiKey, secret["API_KEY"]);

        var seen = new StringBuilder();
        seen.Append((await op.GetJsonAsync($"/v1/operations/{operationId}")).GetRawText());
        seen.Append((await op.GetJsonAsync($"/v1/audit?tenantId={id}")).GetRawText());
        seen.Append((await op.GetJsonAsync("/v1/audit")).GetRawText());
        seen.Append((await op.GetJsonAsync($"/v1/tenants/{id}")).GetRawText());
        foreach (var name in new[] { "API_KEY", "TENANTRY_DATABASE", "TENANTRY_CONTEXT_JWKS" })
        {
            if (secret.TryGetValue(name, out var value))
            {
                Assert.DoesNotContain(JsonEncodedText.Encode(value).ToString(), seen.ToString(), StringComparison.Ordinal);
                Assert.DoesNotContain(value, seen.ToString(), StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task A_release_without_an_image_is_refused_when_apps_run_on_kubernetes()
    {
        var op = await StartAsync();
        using var response = await op.PostAsJsonAsync("/v1/apps/orders/releases", new { version = "2.0.0", process = new { command = "dotnet", args = new[] { "Orders.dll" } } });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("image", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_double_answers_what_it_does_not_implement_as_the_api_server_does()
    {
        using var http = new HttpClient { BaseAddress = _api.Url };
        using var unknown = await http.GetAsync(new Uri("/apis/batch/v1/namespaces/x/jobs/y", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("Status", (await unknown.JsonAsync()).GetProperty("kind").GetString());

        using var missing = await http.GetAsync(new Uri("/api/v1/namespaces/nowhere", UriKind.Relative));
        Assert.Equal("NotFound", (await missing.JsonAsync()).GetProperty("reason").GetString());

        var ns = """{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"taken"}}""";
        using var first = await http.PatchAsync(new Uri("/api/v1/namespaces/taken?fieldManager=someone-else", UriKind.Relative), new StringContent(ns, Encoding.UTF8, "application/apply-patch+yaml"));
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        using var conflict = await http.PatchAsync(new Uri("/api/v1/namespaces/taken?fieldManager=tenantry", UriKind.Relative), new StringContent(ns, Encoding.UTF8, "application/apply-patch+yaml"));
        Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);
        Assert.Equal("Conflict", (await conflict.JsonAsync()).GetProperty("reason").GetString());
        using var merge = await http.PatchAsync(new Uri("/api/v1/namespaces/taken?fieldManager=tenantry&force=true", UriKind.Relative), new StringContent(ns, Encoding.UTF8, "application/merge-patch+json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, merge.StatusCode);
    }

    private async Task<HttpClient> StartAsync(bool fresh = true)
    {
        var kubeconfig = _api.WriteKubeconfig(Path.Combine(_dir, "kube"));
        _host = await TenantryHost.StartAsync(TenantryHostOptions.ControlPlane(
            "--Tenantry:Compute:Provider=kubernetes",
            $"--Tenantry:Compute:Kubernetes:Kubeconfig={kubeconfig}",
            "--Tenantry:Compute:Kubernetes:PollInterval=00:00:00.020",
            "--Tenantry:Compute:Kubernetes:ReadyTimeout=00:00:02",
            "--Tenantry:Compute:Kubernetes:DeleteTimeout=00:00:10",
            "--Tenantry:Compute:Kubernetes:Tiers:premium:NodeSelector:tenantry.dev/pool=dedicated") with
        {
            DataDir = Path.Combine(_dir, "data"),
            KeepDataDir = true,
        });
        var op = await _host.OperatorClientAsync();
        if (fresh)
        {
            using var app = await op.PostAsJsonAsync("/v1/apps", new { name = "orders", routePrefix = "/orders", healthPath = "/healthz", shared = new { instances = 2 } });
            Assert.True(app.IsSuccessStatusCode, await app.Content.ReadAsStringAsync());
            await ReleaseAsync(op, "1.0.0", Image);
        }

        return op;
    }

    private static async Task ReleaseAsync(HttpClient op, string version, string image)
    {
        using var release = await op.PostAsJsonAsync("/v1/apps/orders/releases", new
        {
            version,
            image,
            process = new { command = "dotnet", args = new[] { "Orders.Api.dll" }, env = new Dictionary<string, string> { ["API_KEY"] = ApiKey } },
        });
        Assert.True(release.IsSuccessStatusCode, await release.Content.ReadAsStringAsync());
    }

    private static async Task<(string Id, string OperationId)> OnboardAsync(HttpClient op, string slug, string tier)
    {
        using var response = await op.CreateTenantAsync(new { name = $"Tenant {slug}", slug, tier, adminEmail = $"admin@{slug}.test" });
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var body = await response.JsonAsync();
        var id = body.GetProperty("id").GetString()!;
        await op.WaitForStatusAsync(id, "active");
        return (id, body.GetProperty("operationId").GetString()!);
    }

    private static async Task<JsonElement> WaitRolloutAsync(HttpClient op, string id)
    {
        JsonElement rollout = default;
        for (var i = 0; i < 300; i++)
        {
            rollout = await op.GetJsonAsync($"/v1/rollouts/{id}");
            if (rollout.GetProperty("status").GetString() is "succeeded" or "failed" or "rolled-back")
            {
                return rollout;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"Rollout {id} did not finish: {rollout}");
        return rollout;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(20);
        }

        Assert.True(condition(), $"Waited in vain until {what}.");
    }

    private string? DeploymentImage(string ns) =>
        (string?)_api.Find("Deployment", ns, "orders")?["spec"]?["template"]?["spec"]?["containers"]?[0]?["image"];

    private static Dictionary<string, string> Env(JsonObject secret) =>
        ((JsonObject)secret["data"]!).ToDictionary(d => d.Key, d => Encoding.UTF8.GetString(Convert.FromBase64String((string)d.Value!)), StringComparer.Ordinal);
}
