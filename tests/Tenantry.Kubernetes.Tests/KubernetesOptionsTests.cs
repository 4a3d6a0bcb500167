using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Instances;
using Tenantry.ControlPlane.Kubernetes;

namespace Tenantry.Kubernetes.Tests;

/// <summary>The provider's settings are checked at start-up, in the operator's words, only when the provider is in use.</summary>
public sealed class KubernetesOptionsTests
{
    private static ValidateOptionsResult Validate(KubernetesOptions options, string provider = "kubernetes") =>
        new KubernetesOptionsValidator(Options.Create(new LocalComputeOptions { Provider = provider })).Validate(null, options);

    [Fact]
    public void Neither_in_cluster_nor_a_kubeconfig_is_refused()
    {
        var result = Validate(new KubernetesOptions());
        Assert.True(result.Failed);
        Assert.Contains("InCluster=true", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void A_kubeconfig_that_does_not_exist_is_refused()
    {
        var result = Validate(new KubernetesOptions { Kubeconfig = "/nonexistent/kubeconfig" });
        Assert.Contains("Tenantry:Compute:Kubernetes:Kubeconfig", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_names_ranges_and_quantities_are_each_named()
    {
        var result = Validate(new KubernetesOptions
        {
            InCluster = true,
            NamespacePrefix = "Tenant_",
            SharedNamespace = "Shared Apps",
            DatabaseCidrs = ["10.0.0.0/33"],
            GatewayPodLabels = [],
            Tiers = new(StringComparer.Ordinal) { ["premium"] = new KubernetesTierOptions { Memory = "lots" } },
        });
        Assert.True(result.Failed);
        foreach (var key in new[] { ":NamespacePrefix", ":SharedNamespace", ":DatabaseCidrs:0", ":GatewayPodLabels", ":Tiers:premium:Memory" })
        {
            Assert.Contains("Tenantry:Compute:Kubernetes" + key, result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void In_cluster_with_the_defaults_is_valid_and_local_compute_checks_nothing()
    {
        Assert.True(Validate(new KubernetesOptions { InCluster = true }).Succeeded);
        Assert.True(Validate(new KubernetesOptions(), provider: "local").Skipped);
    }
}
