using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Tenantry.ControlPlane.Kubernetes;

namespace Tenantry.Kubernetes.Tests;

/// <summary>
/// The rendered manifests: compared with checked-in golden files (set <c>TENANTRY_UPDATE_GOLDEN=1</c> to
/// rewrite them after a deliberate change), and every one read back through KubernetesClient's typed models
/// with nothing lost, so no field name is misspelt.
/// </summary>
public sealed class ManifestTests
{
    private static readonly TenantSpace Acme = new(Guid.Parse("0190b3a2-6f1e-7c3d-9a4b-2c1d0e9f8a7b"), "acme", "premium", "tenant-acme");

    internal static KubernetesOptions Options() => new()
    {
        DatabaseCidrs = ["10.20.0.0/16"],
        Tiers = new(StringComparer.Ordinal)
        {
            ["premium"] = new KubernetesTierOptions
            {
                Cpu = "4",
                Memory = "8Gi",
                Pods = 20,
                NodeSelector = new(StringComparer.Ordinal) { ["tenantry.dev/pool"] = "dedicated" },
                Tolerations = [new KubernetesToleration { Key = "tenantry.dev/dedicated", Operator = "Equal", Value = "true", Effect = "NoSchedule" }],
            },
        },
    };

    private static readonly Dictionary<string, string> Environment = new(StringComparer.Ordinal)
    {
        ["PORT"] = "8080",
        ["TENANTRY_APP"] = "orders",
        ["TENANTRY_RELEASE"] = "1.0.0",
        ["TENANTRY_TENANT_ID"] = Acme.TenantId.ToString(),
        ["TENANTRY_DATABASE"] = "Host=10.20.0.5;Database=tenant_acme;Username=acme;Password=golden-password",
    };

    /// <summary>Every manifest the provider renders, by golden file name.</summary>
    public static IEnumerable<(string File, object Manifest)> Rendered()
    {
        var o = Options();
        var tier = o.Tier("premium");
        var dedicated = new AppWorkload("tenant-acme", "orders", "1.0.0", "registry.example/orders:1.0.0", "/healthz", 1, Environment, Acme);
        var shared = new AppWorkload(o.SharedNamespace, "orders", "1.0.0", "registry.example/orders:1.0.0", "/healthz", 2,
            new Dictionary<string, string> { ["PORT"] = "8080", ["TENANTRY_APP"] = "orders" }, null);
        yield return ("namespace.json", KubernetesManifests.TenantNamespace(Acme));
        yield return ("networkpolicy.json", KubernetesManifests.TenantNetworkPolicy(Acme, o, o.DatabaseCidrs, 5432));
        yield return ("resourcequota.json", KubernetesManifests.TenantQuota(Acme, tier));
        yield return ("limitrange.json", KubernetesManifests.TenantLimitRange(Acme, tier));
        yield return ("secret.json", KubernetesManifests.EnvironmentSecret(dedicated));
        yield return ("deployment.json", KubernetesManifests.Deployment(dedicated, o, tier));
        yield return ("service.json", KubernetesManifests.Service(dedicated, o));
        yield return ("shared-namespace.json", KubernetesManifests.SharedNamespace(o.SharedNamespace));
        yield return ("shared-networkpolicy.json", KubernetesManifests.SharedNetworkPolicy(o));
        yield return ("shared-deployment.json", KubernetesManifests.Deployment(shared, o, null));
        yield return ("shared-hpa.json", KubernetesManifests.SharedAutoscaler(shared, o));
    }

    public static TheoryData<string> Files() => [.. Rendered().Select(r => r.File)];

    [Theory]
    [MemberData(nameof(Files))]
    public void Rendered_manifest_matches_its_golden_file(string file)
    {
        var rendered = Pretty(KubernetesManifests.ToJson(Rendered().Single(r => r.File == file).Manifest));
        var path = Path.Combine(GoldenFolder(), file);
        if (System.Environment.GetEnvironmentVariable("TENANTRY_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllText(path, rendered);
        }

        Assert.True(File.Exists(path), $"No golden file {path}; run with TENANTRY_UPDATE_GOLDEN=1 to write it.");
        Assert.Equal(File.ReadAllText(path).ReplaceLineEndings("\n"), rendered);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Golden_manifest_survives_a_round_trip_through_the_typed_models(string file)
    {
        var text = File.ReadAllText(Path.Combine(GoldenFolder(), file));
        var node = JsonNode.Parse(text)!;
        var type = (string?)node["kind"] switch
        {
            "Namespace" => typeof(V1Namespace),
            "NetworkPolicy" => typeof(V1NetworkPolicy),
            "ResourceQuota" => typeof(V1ResourceQuota),
            "LimitRange" => typeof(V1LimitRange),
            "Secret" => typeof(V1Secret),
            "Deployment" => typeof(V1Deployment),
            "Service" => typeof(V1Service),
            "HorizontalPodAutoscaler" => typeof(V2HorizontalPodAutoscaler),
            var kind => throw new InvalidOperationException($"{file}: unexpected kind {kind}"),
        };

        // A misspelt or misplaced field is dropped by the typed model, so the JSON read back differs.
        var typed = typeof(KubernetesJson).GetMethods().Single(m => m.Name == nameof(KubernetesJson.Deserialize) && m.IsGenericMethod && m.GetParameters() is [{ ParameterType: var p }, _] && p == typeof(string))
            .MakeGenericMethod(type).Invoke(null, [text, null])!;
        var back = JsonNode.Parse(KubernetesJson.Serialize(typed));
        Assert.True(JsonNode.DeepEquals(node, back), $"{file} changed in a round trip through {type.Name}:\n{back}");
        var expectedVersion = type == typeof(V2HorizontalPodAutoscaler) ? "autoscaling/v2"
            : type == typeof(V1Deployment) ? "apps/v1"
            : type == typeof(V1NetworkPolicy) ? "networking.k8s.io/v1"
            : "v1";
        Assert.Equal(expectedVersion, (string?)node["apiVersion"]);
    }

    [Fact]
    public void Tenant_namespace_is_labelled_with_the_tenant_and_tier()
    {
        var ns = KubernetesManifests.TenantNamespace(Acme);
        Assert.Equal("tenant-acme", ns.Metadata.Name);
        Assert.Equal(Acme.TenantId.ToString(), ns.Metadata.Labels[KubernetesManifests.TenantLabel]);
        Assert.Equal("premium", ns.Metadata.Labels[KubernetesManifests.TierLabel]);
    }

    [Fact]
    public void Deployment_reads_its_environment_from_the_secret_and_carries_no_value_of_it()
    {
        var o = Options();
        var workload = new AppWorkload("tenant-acme", "orders", "1.0.0", "registry.example/orders:1.0.0", "/healthz", 1, Environment, Acme);
        var json = KubernetesManifests.ToJson(KubernetesManifests.Deployment(workload, o, o.Tier("premium")));
        Assert.DoesNotContain("golden-password", json, StringComparison.Ordinal);
        Assert.DoesNotContain("tenant_acme", json, StringComparison.Ordinal);
        var deployment = KubernetesJson.Deserialize<V1Deployment>(json);
        var container = Assert.Single(deployment.Spec.Template.Spec.Containers);
        Assert.Null(container.Env);
        Assert.Equal("orders-env", Assert.Single(container.EnvFrom).SecretRef.Name);
        Assert.Equal("dedicated", deployment.Spec.Template.Spec.NodeSelector["tenantry.dev/pool"]);
        Assert.Equal("tenantry.dev/dedicated", Assert.Single(deployment.Spec.Template.Spec.Tolerations).Key);
        Assert.True(deployment.Spec.Template.Spec.SecurityContext.RunAsNonRoot);
    }

    private static string Pretty(string json) =>
        JsonNode.Parse(json)!.ToJsonString(new JsonSerializerOptions { WriteIndented = true }).ReplaceLineEndings("\n") + "\n";

    internal static string GoldenFolder()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Tenantry.slnx")))
        {
            dir = dir.Parent;
        }

        return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("Tenantry.slnx not found above the test's folder."), "tests", "Tenantry.Kubernetes.Tests", "Golden");
    }
}
