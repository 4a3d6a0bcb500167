using System.ComponentModel.DataAnnotations;
using System.Text.RegularExpressions;
using k8s.Models;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Instances;

namespace Tenantry.ControlPlane.Kubernetes;

/// <summary>Settings of the Kubernetes compute provider, under <c>Tenantry:Compute:Kubernetes</c> (used when <c>Tenantry:Compute:Provider</c> is <c>kubernetes</c>).</summary>
public sealed class KubernetesOptions
{
    public const string Section = "Tenantry:Compute:Kubernetes";

    /// <summary>Use the service account of the pod the control plane runs in (it runs on the cluster).</summary>
    public bool InCluster { get; set; }

    /// <summary>A kubeconfig file, when the control plane runs off the cluster; unset with <see cref="InCluster"/>.</summary>
    public string? Kubeconfig { get; set; }

    /// <summary>The kubeconfig context; unset: the file's current context.</summary>
    public string? Context { get; set; }

    /// <summary>A silo tenant's namespace is this prefix and its slug.</summary>
    [Required]
    public string NamespacePrefix { get; set; } = "tenant-";

    /// <summary>The namespace of every app's shared Deployment, for pool and bridge tenants.</summary>
    [Required]
    public string SharedNamespace { get; set; } = "tenantry-apps";

    /// <summary>The namespace the gateway's pods run in; only they (and the tenant's own pods) may reach a tenant's pods.</summary>
    [Required]
    public string GatewayNamespace { get; set; } = "tenantry";

    /// <summary>The labels of the gateway's pods (the chart's gateway Deployment sets these).</summary>
    public Dictionary<string, string> GatewayPodLabels { get; set; } = new(StringComparer.Ordinal)
    {
        ["app.kubernetes.io/name"] = "tenantry",
        ["app.kubernetes.io/component"] = "gateway",
    };

    /// <summary>The port app containers listen on (their <c>PORT</c>).</summary>
    [Range(1024, 65535)]
    public int ContainerPort { get; set; } = 8080;

    /// <summary>The port of each app's Service; the gateway routes to <c>http://{app}.{namespace}.svc.cluster.local:{ServicePort}</c>.</summary>
    [Range(1, 65535)]
    public int ServicePort { get; set; } = 80;

    /// <summary>The control plane's address inside the cluster: shared instances ask it where a tenant's data lives.</summary>
    [Required]
    public Uri ControlPlaneUrl { get; set; } = new("http://tenantry-control-plane.tenantry.svc.cluster.local:5080");

    /// <summary>Address ranges (CIDR) of the tenant databases, which a tenant's pods may reach on the database port; none: the database server's address when it is an IP.</summary>
    public List<string> DatabaseCidrs { get; set; } = [];

    /// <summary>How long a Deployment may take to become ready before the step fails with what its pods report.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan ReadyTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a deleted namespace may take to be gone.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan DeleteTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often a Deployment or a deleted namespace is looked at while waiting.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The most replicas the shared Deployment's autoscaler may add (at least the app's shared instances).</summary>
    [Range(1, 1000)]
    public int SharedMaxReplicas { get; set; } = 10;

    /// <summary>The shared Deployment's autoscaler target: average CPU use, in percent of the request.</summary>
    [Range(1, 100)]
    public int SharedCpuPercent { get; set; } = 70;

    /// <summary>Per tier (by name): the tenant's quota, container defaults and the nodes its pods go to. A tier not named gets the defaults.</summary>
    public Dictionary<string, KubernetesTierOptions> Tiers { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The settings of <paramref name="tier"/>, or the defaults.</summary>
    public KubernetesTierOptions Tier(string tier) => Tiers.TryGetValue(tier, out var found) ? found : new KubernetesTierOptions();
}

/// <summary>A tier's place on the cluster: ResourceQuota, LimitRange defaults, nodeSelector and tolerations.</summary>
public sealed class KubernetesTierOptions
{
    /// <summary>ResourceQuota: CPU the tenant's pods may request and use, in all.</summary>
    [Required]
    public string Cpu { get; set; } = "2";

    /// <summary>ResourceQuota: memory the tenant's pods may request and use, in all.</summary>
    [Required]
    public string Memory { get; set; } = "2Gi";

    /// <summary>ResourceQuota: pods in the tenant's namespace.</summary>
    [Range(1, 1000)]
    public int Pods { get; set; } = 10;

    /// <summary>LimitRange: a container's CPU limit when it names none.</summary>
    [Required]
    public string ContainerCpu { get; set; } = "500m";

    /// <summary>LimitRange: a container's memory limit when it names none.</summary>
    [Required]
    public string ContainerMemory { get; set; } = "512Mi";

    /// <summary>LimitRange: a container's CPU request when it names none.</summary>
    [Required]
    public string ContainerCpuRequest { get; set; } = "100m";

    /// <summary>LimitRange: a container's memory request when it names none.</summary>
    [Required]
    public string ContainerMemoryRequest { get; set; } = "128Mi";

    /// <summary>Node labels the tier's pods must run on (dedicated nodes for premium, say).</summary>
    public Dictionary<string, string> NodeSelector { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Taints of those nodes that the tier's pods tolerate.</summary>
    public List<KubernetesToleration> Tolerations { get; set; } = [];
}

/// <summary>A toleration as Kubernetes writes it.</summary>
public sealed class KubernetesToleration
{
    [Required]
    public string Key { get; set; } = "";

    /// <summary><c>Equal</c> or <c>Exists</c>.</summary>
    [RegularExpression("^(Equal|Exists)$", ErrorMessage = "The operator is Equal or Exists.")]
    public string Operator { get; set; } = "Equal";

    public string? Value { get; set; }

    /// <summary><c>NoSchedule</c>, <c>PreferNoSchedule</c>, <c>NoExecute</c>, or empty for every effect.</summary>
    [RegularExpression("^(|NoSchedule|PreferNoSchedule|NoExecute)$", ErrorMessage = "The effect is NoSchedule, PreferNoSchedule or NoExecute.")]
    public string? Effect { get; set; }
}

/// <summary>Checks what data annotations cannot: one way to reach the cluster, names Kubernetes takes, quantities it parses. Only when the provider is in use.</summary>
internal sealed partial class KubernetesOptionsValidator(IOptions<LocalComputeOptions> compute) : IValidateOptions<KubernetesOptions>
{
    public ValidateOptionsResult Validate(string? name, KubernetesOptions options)
    {
        if (!compute.Value.OnKubernetes)
        {
            return ValidateOptionsResult.Skip;
        }

        var errors = new List<string>();
        const string s = KubernetesOptions.Section;
        if (options.InCluster == !string.IsNullOrWhiteSpace(options.Kubeconfig))
        {
            errors.Add($"{s}: set either InCluster=true (the control plane runs in a pod) or Kubeconfig (a kubeconfig file), not both and not neither.");
        }
        else if (!options.InCluster && !File.Exists(options.Kubeconfig))
        {
            errors.Add($"{s}:Kubeconfig: the file '{options.Kubeconfig}' does not exist.");
        }

        // A namespace is a DNS label of at most 63 characters; the slug (up to 40) follows the prefix.
        if (!DnsLabelPrefix().IsMatch(options.NamespacePrefix) || options.NamespacePrefix.Length > 20)
        {
            errors.Add($"{s}:NamespacePrefix: '{options.NamespacePrefix}' is lower-case letters, digits and '-', starts with a letter, at most 20 characters.");
        }

        foreach (var (key, value) in new[] { ("SharedNamespace", options.SharedNamespace), ("GatewayNamespace", options.GatewayNamespace) })
        {
            if (!DnsLabel().IsMatch(value ?? ""))
            {
                errors.Add($"{s}:{key}: '{value}' is not a namespace name (a DNS label: lower-case letters, digits and '-', at most 63 characters).");
            }
        }

        if (options.GatewayPodLabels.Count == 0)
        {
            errors.Add($"{s}:GatewayPodLabels: name at least one label of the gateway's pods; without it no pod could reach a tenant's pods.");
        }

        if (!options.ControlPlaneUrl.IsAbsoluteUri || options.ControlPlaneUrl.Scheme is not ("http" or "https"))
        {
            errors.Add($"{s}:ControlPlaneUrl: an absolute http(s) URL.");
        }

        for (var i = 0; i < options.DatabaseCidrs.Count; i++)
        {
            if (!System.Net.IPNetwork.TryParse(options.DatabaseCidrs[i], out _))
            {
                errors.Add($"{s}:DatabaseCidrs:{i}: '{options.DatabaseCidrs[i]}' is not an address range such as 10.0.0.0/16.");
            }
        }

        foreach (var (tier, t) in options.Tiers)
        {
            foreach (var (key, value) in new[]
            {
                ("Cpu", t.Cpu), ("Memory", t.Memory), ("ContainerCpu", t.ContainerCpu), ("ContainerMemory", t.ContainerMemory),
                ("ContainerCpuRequest", t.ContainerCpuRequest), ("ContainerMemoryRequest", t.ContainerMemoryRequest),
            })
            {
                if (!IsQuantity(value))
                {
                    errors.Add($"{s}:Tiers:{tier}:{key}: '{value}' is not a Kubernetes quantity (such as 500m, 2, 512Mi).");
                }
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static bool IsQuantity(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return false;
        }

        try
        {
            _ = new ResourceQuantity(value).ToDecimal();
            return true;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or OverflowException)
        {
            return false;
        }
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    private static partial Regex DnsLabel();

    [GeneratedRegex("^[a-z][-a-z0-9]*$")]
    private static partial Regex DnsLabelPrefix();
}
