using System.Net;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.Kubernetes;

/// <summary>
/// The few API calls the provider makes: server-side apply (field manager <c>tenantry</c>, forced, so the
/// control plane owns the fields it sets and adopts objects it made before a restart), reads, the
/// namespace's deletion, and waiting for a Deployment to be ready. API errors become step errors: the
/// ones retrying cannot fix (a refused manifest, a forbidden call, a pod that cannot start) are permanent.
/// </summary>
public sealed partial class KubernetesCluster(IKubernetes client, IOptions<KubernetesOptions> options, TimeProvider time, ILogger<KubernetesCluster> logger)
{
    public const string FieldManager = "tenantry";

    /// <summary>Container states a pod does not leave by waiting.</summary>
    private static readonly HashSet<string> StuckReasons = new(StringComparer.Ordinal)
    {
        "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "CrashLoopBackOff",
        "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
    };

    private KubernetesOptions O => options.Value;

    /// <summary>Applies one manifest made by <see cref="KubernetesManifests"/>.</summary>
    public async Task ApplyAsync(IKubernetesObject<V1ObjectMeta> manifest, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var patch = new V1Patch(KubernetesManifests.ToJson(manifest), V1Patch.PatchType.ApplyPatch);
        var name = manifest.Metadata.Name;
        var ns = manifest.Metadata.NamespaceProperty;
        await CallAsync(manifest.Kind, ns, name, async () =>
        {
            _ = manifest switch
            {
                V1Namespace => (object)await client.CoreV1.PatchNamespaceAsync(patch, name, fieldManager: FieldManager, force: true, cancellationToken: cancellationToken),
                V1NetworkPolicy => await client.NetworkingV1.PatchNamespacedNetworkPolicyAsync(patch, name, ns, fieldManager: FieldManager, force: true, cancellationToken: cancellationToken),
                V1ResourceQuota => await client.CoreV1.PatchNamespacedResourceQuotaAsync(patch, name, ns, fieldManager: FieldManager, force: true, cancellationToken: cancellationToken),
                V1LimitRange => await client.CoreV1.PatchNamespacedLimitRangeAsync(patch, name, ns, fieldManager: FieldManager, force: true, cancellationToken: cancellationToken),
                V1Secret => await client.CoreV1.PatchNamespacedSecretAsync(patch, name, ns, fieldManager: FieldManager, force: true, cancellationToken: cancellationToken),
                V1Deployment => await client.AppsV1.PatchNamespacedDeploymentAsync(patch, name, ns, fieldManager: FieldManager, force: true, cancellationToken: cancellationToken),
                V1Service => await client.CoreV1.PatchNamespacedServiceAsync(patch, name, ns, fieldManager: FieldManager, force: true, cancellationToken: cancellationToken),
                V2HorizontalPodAutoscaler => await client.AutoscalingV2.PatchNamespacedHorizontalPodAutoscalerAsync(patch, name, ns, fieldManager: FieldManager, force: true, cancellationToken: cancellationToken),
                _ => throw new ArgumentException($"No apply for {manifest.Kind}.", nameof(manifest)),
            };
            return true;
        });
        Log.Applied(logger, manifest.Kind, ns ?? "", name);
    }

    /// <summary>The namespace, or null when there is none.</summary>
    public Task<V1Namespace?> ReadNamespaceAsync(string name, CancellationToken cancellationToken) =>
        OrNullAsync("Namespace", null, name, () => client.CoreV1.ReadNamespaceAsync(name, cancellationToken: cancellationToken));

    public Task<V1Deployment?> ReadDeploymentAsync(string ns, string name, CancellationToken cancellationToken) =>
        OrNullAsync("Deployment", ns, name, () => client.AppsV1.ReadNamespacedDeploymentAsync(name, ns, cancellationToken: cancellationToken));

    /// <summary>
    /// Waits until the Deployment has seen its latest spec and every replica runs it and is ready. Fails at
    /// once when a pod is stuck (image pull, crash loop, bad configuration), and at the timeout with what the
    /// pods report (unschedulable, say).
    /// </summary>
    public async Task WaitReadyAsync(string ns, string name, CancellationToken cancellationToken)
    {
        var o = O;
        var deadline = time.GetUtcNow() + o.ReadyTimeout;
        var rounds = (int)Math.Min(100_000, (o.ReadyTimeout.Ticks / Math.Max(1, o.PollInterval.Ticks)) + 2);
        string? lastReason = null;
        for (var round = 0; round < rounds; round++)
        {
            var deployment = await ReadDeploymentAsync(ns, name, cancellationToken)
                ?? throw new InvalidOperationException($"Deployment {ns}/{name} does not exist.");
            if (IsReady(deployment))
            {
                return;
            }

            var (reason, stuck) = await PodProblemAsync(ns, name, cancellationToken);
            lastReason = reason ?? lastReason;
            if (stuck)
            {
                throw new PermanentStepException($"Deployment {ns}/{name} cannot become ready: {reason}");
            }

            if (time.GetUtcNow() >= deadline)
            {
                break;
            }

            await Task.Delay(o.PollInterval, time, cancellationToken);
        }

        throw new PermanentStepException(
            $"Deployment {ns}/{name} was not ready within {o.ReadyTimeout}: {lastReason ?? "its pods report nothing (are there nodes for them?)"}");
    }

    /// <summary>Deletes the namespace (and with it all it holds) and waits until the API server no longer has it.</summary>
    public async Task DeleteNamespaceAsync(string name, CancellationToken cancellationToken)
    {
        var o = O;
        try
        {
            await CallAsync("Namespace", null, name, () => client.CoreV1.DeleteNamespaceAsync(name, propagationPolicy: "Foreground", cancellationToken: cancellationToken));
        }
        catch (KubernetesApiException ex) when (ex.Status == HttpStatusCode.NotFound)
        {
            return;
        }

        var deadline = time.GetUtcNow() + o.DeleteTimeout;
        var rounds = (int)Math.Min(100_000, (o.DeleteTimeout.Ticks / Math.Max(1, o.PollInterval.Ticks)) + 2);
        for (var round = 0; round < rounds; round++)
        {
            var found = await ReadNamespaceAsync(name, cancellationToken);
            if (found is null)
            {
                Log.NamespaceGone(logger, name);
                return;
            }

            if (time.GetUtcNow() >= deadline)
            {
                break;
            }

            await Task.Delay(o.PollInterval, time, cancellationToken);
        }

        // Retried: finalizers (volumes, say) may still be at work.
        throw new TimeoutException($"Namespace {name} is still {(await ReadNamespaceAsync(name, cancellationToken))?.Status?.Phase ?? "there"} after {o.DeleteTimeout}.");
    }

    internal static bool IsReady(V1Deployment deployment)
    {
        var want = deployment.Spec?.Replicas ?? 1;
        var s = deployment.Status;
        if (s is null || (s.ObservedGeneration ?? 0) < (deployment.Metadata.Generation ?? 0))
        {
            return false;
        }

        // Old pods still running (being replaced) count in Replicas; ready means only the new ones are left.
        return (s.UpdatedReplicas ?? 0) >= want && (s.AvailableReplicas ?? 0) >= want && (s.Replicas ?? 0) <= want;
    }

    /// <summary>What the Deployment's pods report: a reason (with the message) and whether waiting can fix it.</summary>
    private async Task<(string? Reason, bool Stuck)> PodProblemAsync(string ns, string app, CancellationToken cancellationToken)
    {
        var pods = await CallAsync("Pod", ns, app, () => client.CoreV1.ListNamespacedPodAsync(ns, labelSelector: $"{KubernetesManifests.AppLabel}={app}", cancellationToken: cancellationToken));
        foreach (var pod in pods.Items)
        {
            foreach (var container in (pod.Status?.InitContainerStatuses ?? []).Concat(pod.Status?.ContainerStatuses ?? []))
            {
                if (container.State?.Waiting is { Reason: { } reason } waiting && StuckReasons.Contains(reason))
                {
                    return ($"pod {pod.Metadata.Name}: {reason}: {waiting.Message ?? await LastWarningAsync(ns, pod.Metadata.Name, cancellationToken) ?? "no message"}", true);
                }
            }

            if (pod.Status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled" && c.Status == "False") is { } unscheduled)
            {
                return ($"pod {pod.Metadata.Name}: {unscheduled.Reason ?? "Unschedulable"}: {unscheduled.Message ?? await LastWarningAsync(ns, pod.Metadata.Name, cancellationToken) ?? "no message"}", false);
            }
        }

        return (null, false);
    }

    /// <summary>The newest Warning event about the pod: what the kubelet or scheduler said.</summary>
    private async Task<string?> LastWarningAsync(string ns, string pod, CancellationToken cancellationToken)
    {
        var events = await CallAsync("Event", ns, pod, () => client.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: $"involvedObject.name={pod}", cancellationToken: cancellationToken));
        return events.Items.Where(e => e.Type == "Warning").OrderBy(e => e.LastTimestamp ?? e.EventTime ?? DateTime.MinValue).LastOrDefault() is { } last
            ? $"{last.Reason}: {last.Message}"
            : null;
    }

    private static async Task<T?> OrNullAsync<T>(string kind, string? ns, string name, Func<Task<T>> call)
        where T : class
    {
        try
        {
            return await CallAsync(kind, ns, name, call);
        }
        catch (KubernetesApiException ex) when (ex.Status == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private static async Task<T> CallAsync<T>(string kind, string? ns, string name, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (HttpOperationException ex)
        {
            var status = ex.Response.StatusCode;
            var message = StatusMessage(ex.Response.Content) ?? ex.Message;
            var what = ns is null ? $"{kind} {name}" : $"{kind} {ns}/{name}";
            var text = $"Kubernetes API: {what}: {(int)status} {message}";
            // Conflicts, throttling and server errors pass; a refused or forbidden request does not.
            if (status is HttpStatusCode.BadRequest or HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized
                or HttpStatusCode.UnprocessableEntity or HttpStatusCode.UnsupportedMediaType or HttpStatusCode.MethodNotAllowed)
            {
                throw new PermanentStepException(text);
            }

            throw new KubernetesApiException(status, text, ex);
        }
    }

    /// <summary>The message of an API <c>Status</c> body.</summary>
    private static string? StatusMessage(string? content)
    {
        if (string.IsNullOrWhiteSpace(content))
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(content);
            return doc.RootElement.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Applied {Kind} {Namespace}/{Name}")]
        public static partial void Applied(ILogger logger, string kind, string @namespace, string name);

        [LoggerMessage(2, LogLevel.Information, "Namespace {Namespace} is gone")]
        public static partial void NamespaceGone(ILogger logger, string @namespace);
    }
}

/// <summary>An API error that retrying may fix (a conflict, a throttled or failing server).</summary>
public sealed class KubernetesApiException(HttpStatusCode status, string message, Exception inner) : Exception(message, inner)
{
    public HttpStatusCode Status { get; } = status;
}
