using System.Net;
using k8s;
using k8s.Models;
using Tenantry.ControlPlane.Kubernetes;

namespace Tenantry.Kubernetes.Tests;

/// <summary>
/// The tenant's NetworkPolicy, read with the semantics of the NetworkPolicy API (a peer with a namespace
/// selector and a pod selector needs both to match; a pod selector alone means the policy's own namespace;
/// a policy type with no rule that admits a peer denies it). Each case tries to get in or out another way.
/// </summary>
public sealed class NetworkPolicyTests
{
    private static readonly TenantSpace Acme = new(Guid.CreateVersion7(), "acme", "premium", "tenant-acme");

    private sealed record Pod(string Namespace, Dictionary<string, string> NamespaceLabels, Dictionary<string, string> Labels);

    private static Pod In(string ns, Dictionary<string, string>? labels = null, Dictionary<string, string>? nsLabels = null) =>
        new(ns, new Dictionary<string, string>(nsLabels ?? []) { [KubernetesManifests.NamespaceNameLabel] = ns }, labels ?? []);

    private static readonly Dictionary<string, string> GatewayLabels = new() { ["app.kubernetes.io/name"] = "tenantry", ["app.kubernetes.io/component"] = "gateway" };

    private static V1NetworkPolicy Policy()
    {
        // Through JSON and back, as the API server receives it.
        var o = ManifestTests.Options();
        return KubernetesJson.Deserialize<V1NetworkPolicy>(KubernetesManifests.ToJson(KubernetesManifests.TenantNetworkPolicy(Acme, o, ["10.20.0.0/16"], 5432)));
    }

    [Fact]
    public void Gateway_pods_are_admitted()
    {
        Assert.True(Admits(Policy(), In("tenantry", GatewayLabels)));
    }

    [Fact]
    public void Pods_of_the_tenants_own_namespace_are_admitted()
    {
        Assert.True(Admits(Policy(), In("tenant-acme", new() { ["app.kubernetes.io/name"] = "orders" })));
    }

    [Fact]
    public void Another_tenants_pods_are_refused()
    {
        Assert.False(Admits(Policy(), In("tenant-globex", new() { ["app.kubernetes.io/name"] = "orders" })));
    }

    [Fact]
    public void A_pod_that_copies_the_gateway_labels_in_another_namespace_is_refused()
    {
        Assert.False(Admits(Policy(), In("tenant-globex", GatewayLabels)));
        Assert.False(Admits(Policy(), In("default", GatewayLabels)));
    }

    [Fact]
    public void Other_pods_of_the_gateway_namespace_are_refused()
    {
        Assert.False(Admits(Policy(), In("tenantry", new() { ["app.kubernetes.io/name"] = "tenantry", ["app.kubernetes.io/component"] = "control-plane" })));
    }

    [Fact]
    public void A_namespace_that_copies_the_tenant_labels_is_refused()
    {
        var tenantLabels = new Dictionary<string, string> { [KubernetesManifests.TenantLabel] = Acme.TenantId.ToString(), [KubernetesManifests.TierLabel] = "premium" };
        Assert.False(Admits(Policy(), In("tenant-acme-copy", new() { ["app.kubernetes.io/name"] = "orders" }, tenantLabels)));
    }

    [Fact]
    public void Egress_reaches_dns_the_database_and_the_own_namespace_only()
    {
        var policy = Policy();
        Assert.True(Allows(policy, In("kube-system", new() { ["k8s-app"] = "kube-dns" }), null, 53, "UDP"));
        Assert.True(Allows(policy, null, IPAddress.Parse("10.20.0.5"), 5432, "TCP"));
        Assert.True(Allows(policy, In("tenant-acme", new() { ["app.kubernetes.io/name"] = "orders" }), null, 8080, "TCP"));
        Assert.False(Allows(policy, null, IPAddress.Parse("10.20.0.5"), 22, "TCP"));
        Assert.False(Allows(policy, null, IPAddress.Parse("10.30.0.5"), 5432, "TCP"));
        Assert.False(Allows(policy, null, IPAddress.Parse("169.254.169.254"), 80, "TCP"));
        Assert.False(Allows(policy, In("tenant-globex", new() { ["app.kubernetes.io/name"] = "orders" }), null, 8080, "TCP"));
        Assert.False(Allows(policy, In("kube-system", new() { ["k8s-app"] = "metrics-server" }), null, 53, "UDP"));
    }

    [Fact]
    public void The_policy_selects_every_pod_of_the_namespace_both_ways()
    {
        var policy = Policy();
        Assert.Empty(policy.Spec.PodSelector.MatchLabels ?? new Dictionary<string, string>());
        Assert.Equal(["Ingress", "Egress"], policy.Spec.PolicyTypes);
    }

    private static bool Admits(V1NetworkPolicy policy, Pod from) =>
        policy.Spec.PolicyTypes.Contains("Ingress")
        && (policy.Spec.Ingress ?? []).Any(rule => rule.FromProperty is { Count: > 0 } peers && peers.Any(p => PeerMatches(policy, p, from, null)));

    private static bool Allows(V1NetworkPolicy policy, Pod? to, IPAddress? ip, int port, string protocol) =>
        policy.Spec.PolicyTypes.Contains("Egress")
        && (policy.Spec.Egress ?? []).Any(rule =>
            (rule.Ports is not { Count: > 0 } || rule.Ports.Any(p => (p.Protocol ?? "TCP") == protocol && (p.Port is null || p.Port.Value == port.ToString(System.Globalization.CultureInfo.InvariantCulture))))
            && rule.To is { Count: > 0 } peers && peers.Any(p => PeerMatches(policy, p, to, ip)));

    private static bool PeerMatches(V1NetworkPolicy policy, V1NetworkPolicyPeer peer, Pod? pod, IPAddress? ip)
    {
        if (peer.IpBlock is { } block)
        {
            return ip is not null && IPNetwork.Parse(block.Cidr).Contains(ip) && !(block.Except ?? []).Any(e => IPNetwork.Parse(e).Contains(ip));
        }

        if (pod is null)
        {
            return false;
        }

        var namespaceOk = peer.NamespaceSelector is { } ns ? Selects(ns, pod.NamespaceLabels) : pod.Namespace == policy.Metadata.NamespaceProperty;
        var podOk = peer.PodSelector is not { } ps || Selects(ps, pod.Labels);
        return namespaceOk && podOk;
    }

    private static bool Selects(V1LabelSelector selector, Dictionary<string, string> labels)
    {
        Assert.Null(selector.MatchExpressions);
        return (selector.MatchLabels ?? new Dictionary<string, string>()).All(l => labels.TryGetValue(l.Key, out var v) && v == l.Value);
    }
}
