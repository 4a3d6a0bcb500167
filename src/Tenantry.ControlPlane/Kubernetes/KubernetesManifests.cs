using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using k8s;
using k8s.Models;

namespace Tenantry.ControlPlane.Kubernetes;

/// <summary>A silo tenant's place on the cluster.</summary>
public sealed record TenantSpace(Guid TenantId, string Slug, string Tier, string Namespace);

/// <summary>
/// One app's workload: its Secret (the instance environment), Deployment and Service, in a tenant's
/// namespace (<see cref="Tenant"/> set) or the shared one.
/// </summary>
public sealed record AppWorkload(
    string Namespace, string App, string Release, string Image, string HealthPath, int Replicas,
    IReadOnlyDictionary<string, string> Environment, TenantSpace? Tenant);

/// <summary>
/// The manifests the provider applies, as KubernetesClient's typed models (so every field name is the
/// API's). Pure functions of their inputs: the same tenant and release give the same manifests,
/// which is what makes applying them again harmless.
/// </summary>
public static class KubernetesManifests
{
    public const string TenantLabel = "tenantry.dev/tenant";
    public const string SlugLabel = "tenantry.dev/slug";
    public const string TierLabel = "tenantry.dev/tier";
    public const string AppLabel = "tenantry.dev/app";
    public const string ReleaseLabel = "tenantry.dev/release";
    public const string EnvChecksumAnnotation = "tenantry.dev/env-checksum";
    public const string ManagedBy = "app.kubernetes.io/managed-by";
    public const string IsolationPolicy = "tenantry-isolation";
    public const string Quota = "tenantry-quota";
    public const string Limits = "tenantry-limits";

    /// <summary>The name Kubernetes gives every namespace as a label; it cannot be set or forged by its owner.</summary>
    public const string NamespaceNameLabel = "kubernetes.io/metadata.name";

    public static V1Namespace TenantNamespace(TenantSpace tenant)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        return new V1Namespace
        {
            ApiVersion = "v1",
            Kind = "Namespace",
            Metadata = new V1ObjectMeta
            {
                Name = tenant.Namespace,
                Labels = new Dictionary<string, string>
                {
                    [TenantLabel] = tenant.TenantId.ToString(),
                    [SlugLabel] = tenant.Slug,
                    [TierLabel] = tenant.Tier,
                    [ManagedBy] = "tenantry",
                },
            },
        };
    }

    public static V1Namespace SharedNamespace(string name) => new()
    {
        ApiVersion = "v1",
        Kind = "Namespace",
        Metadata = new V1ObjectMeta { Name = name, Labels = new Dictionary<string, string> { [TierLabel] = "shared", [ManagedBy] = "tenantry" } },
    };

    /// <summary>
    /// Default deny both ways, then: in from the gateway's pods and the namespace's own pods only; out to the
    /// cluster DNS, to the tenant's database on its port, and within the namespace.
    /// </summary>
    public static V1NetworkPolicy TenantNetworkPolicy(TenantSpace tenant, KubernetesOptions options, IReadOnlyList<string> databaseCidrs, int databasePort)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(databaseCidrs);
        var ownNamespace = new V1NetworkPolicyPeer { PodSelector = new V1LabelSelector() };
        var egress = new List<V1NetworkPolicyEgressRule>
        {
            new()
            {
                To = [new V1NetworkPolicyPeer
                {
                    NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { [NamespaceNameLabel] = "kube-system" } },
                    PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["k8s-app"] = "kube-dns" } },
                }],
                Ports = [new V1NetworkPolicyPort { Protocol = "UDP", Port = 53 }, new V1NetworkPolicyPort { Protocol = "TCP", Port = 53 }],
            },
            new() { To = [ownNamespace] },
        };
        if (databaseCidrs.Count > 0)
        {
            egress.Add(new V1NetworkPolicyEgressRule
            {
                To = [.. databaseCidrs.Select(c => new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = c } })],
                Ports = [new V1NetworkPolicyPort { Protocol = "TCP", Port = databasePort }],
            });
        }

        return new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = Meta(IsolationPolicy, tenant.Namespace, tenant),
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector(),
                PolicyTypes = ["Ingress", "Egress"],
                Ingress =
                [
                    new V1NetworkPolicyIngressRule { FromProperty = [GatewayPeer(options), ownNamespace] },
                ],
                Egress = egress,
            },
        };
    }

    /// <summary>The shared namespace admits the gateway's pods only; its instances reach the control plane and the pool, so egress stays open.</summary>
    public static V1NetworkPolicy SharedNetworkPolicy(KubernetesOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = Meta(IsolationPolicy, options.SharedNamespace, null),
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector(),
                PolicyTypes = ["Ingress"],
                Ingress = [new V1NetworkPolicyIngressRule { FromProperty = [GatewayPeer(options)] }],
            },
        };
    }

    public static V1ResourceQuota TenantQuota(TenantSpace tenant, KubernetesTierOptions tier)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(tier);
        return new V1ResourceQuota
        {
            ApiVersion = "v1",
            Kind = "ResourceQuota",
            Metadata = Meta(Quota, tenant.Namespace, tenant),
            Spec = new V1ResourceQuotaSpec
            {
                Hard = new Dictionary<string, ResourceQuantity>
                {
                    ["requests.cpu"] = new(tier.Cpu),
                    ["limits.cpu"] = new(tier.Cpu),
                    ["requests.memory"] = new(tier.Memory),
                    ["limits.memory"] = new(tier.Memory),
                    ["pods"] = new(tier.Pods.ToString(CultureInfo.InvariantCulture)),
                },
            },
        };
    }

    public static V1LimitRange TenantLimitRange(TenantSpace tenant, KubernetesTierOptions tier)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(tier);
        return new V1LimitRange
        {
            ApiVersion = "v1",
            Kind = "LimitRange",
            Metadata = Meta(Limits, tenant.Namespace, tenant),
            Spec = new V1LimitRangeSpec
            {
                Limits =
                [
                    new V1LimitRangeItem
                    {
                        Type = "Container",
                        DefaultProperty = new Dictionary<string, ResourceQuantity> { ["cpu"] = new(tier.ContainerCpu), ["memory"] = new(tier.ContainerMemory) },
                        DefaultRequest = new Dictionary<string, ResourceQuantity> { ["cpu"] = new(tier.ContainerCpuRequest), ["memory"] = new(tier.ContainerMemoryRequest) },
                    },
                ],
            },
        };
    }

    /// <summary>The instance environment of an app, as a Secret the Deployment reads with <c>envFrom</c>.</summary>
    public static V1Secret EnvironmentSecret(AppWorkload workload)
    {
        ArgumentNullException.ThrowIfNull(workload);
        return new V1Secret
        {
            ApiVersion = "v1",
            Kind = "Secret",
            Metadata = Meta(SecretName(workload.App), workload.Namespace, workload.Tenant, workload.App),
            Type = "Opaque",
            StringData = new SortedDictionary<string, string>(workload.Environment.ToDictionary(), StringComparer.Ordinal),
        };
    }

    public static V1Deployment Deployment(AppWorkload workload, KubernetesOptions options, KubernetesTierOptions? tier)
    {
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(options);
        var selector = Selector(workload);
        var podLabels = new Dictionary<string, string>(selector) { [ReleaseLabel] = LabelValue(workload.Release) };
        return new V1Deployment
        {
            ApiVersion = "apps/v1",
            Kind = "Deployment",
            Metadata = Meta(workload.App, workload.Namespace, workload.Tenant, workload.App),
            Spec = new V1DeploymentSpec
            {
                Replicas = workload.Replicas,
                Selector = new V1LabelSelector { MatchLabels = selector },
                // The old pods serve until a new one is ready: a release that never gets ready leaves them serving.
                Strategy = new V1DeploymentStrategy
                {
                    Type = "RollingUpdate",
                    RollingUpdate = new V1RollingUpdateDeployment { MaxUnavailable = 0, MaxSurge = 1 },
                },
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta
                    {
                        Labels = podLabels,
                        // A changed environment (a new release, a rotated key) rolls the pods, as a new image does.
                        Annotations = new Dictionary<string, string> { [EnvChecksumAnnotation] = Checksum(workload.Environment) },
                    },
                    Spec = new V1PodSpec
                    {
                        AutomountServiceAccountToken = false,
                        EnableServiceLinks = false,
                        SecurityContext = new V1PodSecurityContext { RunAsNonRoot = true, SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" } },
                        NodeSelector = tier is { NodeSelector.Count: > 0 } ? new Dictionary<string, string>(tier.NodeSelector) : null,
                        Tolerations = tier is { Tolerations.Count: > 0 }
                            ? [.. tier.Tolerations.Select(t => new V1Toleration { Key = t.Key, OperatorProperty = t.Operator, Value = t.Value, Effect = string.IsNullOrEmpty(t.Effect) ? null : t.Effect })]
                            : null,
                        Containers =
                        [
                            new V1Container
                            {
                                Name = workload.App,
                                Image = workload.Image,
                                Ports = [new V1ContainerPort { Name = "http", ContainerPort = options.ContainerPort, Protocol = "TCP" }],
                                EnvFrom = [new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = SecretName(workload.App) } }],
                                ReadinessProbe = new V1Probe { HttpGet = new V1HTTPGetAction { Path = workload.HealthPath, Port = "http" }, PeriodSeconds = 5 },
                                LivenessProbe = new V1Probe { HttpGet = new V1HTTPGetAction { Path = workload.HealthPath, Port = "http" }, PeriodSeconds = 10, FailureThreshold = 3 },
                                SecurityContext = new V1SecurityContext
                                {
                                    AllowPrivilegeEscalation = false,
                                    Capabilities = new V1Capabilities { Drop = ["ALL"] },
                                },
                            },
                        ],
                    },
                },
            },
        };
    }

    public static V1Service Service(AppWorkload workload, KubernetesOptions options)
    {
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(options);
        return new V1Service
        {
            ApiVersion = "v1",
            Kind = "Service",
            Metadata = Meta(workload.App, workload.Namespace, workload.Tenant, workload.App),
            Spec = new V1ServiceSpec
            {
                Type = "ClusterIP",
                Selector = Selector(workload),
                Ports = [new V1ServicePort { Name = "http", Port = options.ServicePort, TargetPort = "http", Protocol = "TCP" }],
            },
        };
    }

    /// <summary>The shared Deployment's autoscaler: the app's shared instances at least, on CPU.</summary>
    public static V2HorizontalPodAutoscaler SharedAutoscaler(AppWorkload workload, KubernetesOptions options)
    {
        ArgumentNullException.ThrowIfNull(workload);
        ArgumentNullException.ThrowIfNull(options);
        return new V2HorizontalPodAutoscaler
        {
            ApiVersion = "autoscaling/v2",
            Kind = "HorizontalPodAutoscaler",
            Metadata = Meta(workload.App, workload.Namespace, null, workload.App),
            Spec = new V2HorizontalPodAutoscalerSpec
            {
                ScaleTargetRef = new V2CrossVersionObjectReference { ApiVersion = "apps/v1", Kind = "Deployment", Name = workload.App },
                MinReplicas = Math.Max(1, workload.Replicas),
                MaxReplicas = Math.Max(options.SharedMaxReplicas, workload.Replicas),
                Metrics =
                [
                    new V2MetricSpec
                    {
                        Type = "Resource",
                        Resource = new V2ResourceMetricSource
                        {
                            Name = "cpu",
                            Target = new V2MetricTarget { Type = "Utilization", AverageUtilization = options.SharedCpuPercent },
                        },
                    },
                ],
            },
        };
    }

    /// <summary>The cluster DNS address of an app's Service, which the gateway routes to.</summary>
    public static string ServiceUrl(string ns, string app, int port) =>
        $"http://{app}.{ns}.svc.cluster.local:{port.ToString(CultureInfo.InvariantCulture)}";

    public static string SecretName(string app) => app + "-env";

    /// <summary>A manifest as the API server takes it in an apply patch: JSON (which is YAML), nulls left out.</summary>
    public static string ToJson(object manifest) => KubernetesJson.Serialize(manifest);

    private static Dictionary<string, string> Selector(AppWorkload workload) => new()
    {
        ["app.kubernetes.io/name"] = workload.App,
        [AppLabel] = workload.App,
    };

    private static V1LabelSelector GatewaySelector(KubernetesOptions options) =>
        new() { MatchLabels = new Dictionary<string, string>(options.GatewayPodLabels) };

    private static V1NetworkPolicyPeer GatewayPeer(KubernetesOptions options) => new()
    {
        NamespaceSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { [NamespaceNameLabel] = options.GatewayNamespace } },
        PodSelector = GatewaySelector(options),
    };

    private static V1ObjectMeta Meta(string name, string ns, TenantSpace? tenant, string? app = null)
    {
        var labels = new Dictionary<string, string> { [ManagedBy] = "tenantry" };
        if (tenant is not null)
        {
            labels[TenantLabel] = tenant.TenantId.ToString();
            labels[TierLabel] = tenant.Tier;
        }

        if (app is not null)
        {
            labels["app.kubernetes.io/name"] = app;
            labels[AppLabel] = app;
        }

        return new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = labels };
    }

    /// <summary>A release as a label value: at most 63 of <c>[A-Za-z0-9._-]</c> (a semantic version's <c>+</c> becomes <c>_</c>).</summary>
    private static string LabelValue(string value)
    {
        var clean = new string([.. value.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_')]);
        return clean.Length <= 63 ? clean : clean[..63];
    }

    private static string Checksum(IReadOnlyDictionary<string, string> environment)
    {
        var text = string.Join('\n', environment.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => e.Key + "=" + e.Value));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..16];
    }
}
