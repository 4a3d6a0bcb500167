using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Tenantry.Kubernetes.Tests;

/// <summary>
/// A Kubernetes API server at the HTTP level, on a loopback Kestrel port, that implements only what the
/// provider uses: server-side apply (<c>PATCH</c> with <c>application/apply-patch+yaml</c>, a field
/// manager, <c>force</c>), <c>GET</c> of objects and of pod and event lists, <c>DELETE</c> of a namespace
/// (which stays <c>Terminating</c> for a few reads, then is finalized with all it holds), and Deployment
/// status that turns ready once the Deployment is read after a change. Anything else is answered as the
/// real API answers it: a <c>Status</c> body with 404, 409, 403, 400 or 415.
/// Pods are made up from the Deployments: an image named in <see cref="FailImage"/> gives pods stuck with
/// that reason, so the provider's failure reporting meets the same fields a kubelet fills in.
/// </summary>
public sealed class ApiServerDouble : IAsyncDisposable
{
    /// <summary>Resource (plural) → kind, scope and API group path, for the kinds the provider uses.</summary>
    private static readonly Dictionary<string, (string Kind, string ApiVersion, string Prefix)> Resources = new(StringComparer.Ordinal)
    {
        ["namespaces"] = ("Namespace", "v1", "/api/v1"),
        ["secrets"] = ("Secret", "v1", "/api/v1"),
        ["services"] = ("Service", "v1", "/api/v1"),
        ["resourcequotas"] = ("ResourceQuota", "v1", "/api/v1"),
        ["limitranges"] = ("LimitRange", "v1", "/api/v1"),
        ["deployments"] = ("Deployment", "apps/v1", "/apis/apps/v1"),
        ["networkpolicies"] = ("NetworkPolicy", "networking.k8s.io/v1", "/apis/networking.k8s.io/v1"),
        ["horizontalpodautoscalers"] = ("HorizontalPodAutoscaler", "autoscaling/v2", "/apis/autoscaling/v2"),
    };

    private readonly object _gate = new();
    private readonly Dictionary<(string Kind, string Ns, string Name), JsonObject> _objects = [];
    private readonly Dictionary<string, int> _terminating = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Reason, string Message, bool Unschedulable)> _failures = new(StringComparer.Ordinal);
    private readonly List<string> _requests = [];
    private readonly WebApplication _app;
    private long _uid;

    private ApiServerDouble(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    /// <summary>Reads of a deleted namespace before it is finalized (gone).</summary>
    public int FinalizeAfterReads { get; set; } = 2;

    /// <summary>While true, no Deployment turns ready (its rollout hangs, as on a cluster without room).</summary>
    public bool HoldReady { get; set; }

    /// <summary>Every request as <c>VERB Kind namespace/name</c> (or the path, for what is not a known object), in order.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_gate)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>The applies (kind and name) in order, for one namespace.</summary>
    public IReadOnlyList<string> Applies(string ns) =>
        [.. Requests.Where(r => r.StartsWith("PATCH ", StringComparison.Ordinal) && (r.EndsWith(" " + ns, StringComparison.Ordinal) || r.Contains(" " + ns + "/", StringComparison.Ordinal)))
            .Select(r => r.Split(' ')[1])];

    public static async Task<ApiServerDouble> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new ApiServerDouble(app);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        server.Url = new Uri(app.Urls.First());
        return server;
    }

    /// <summary>Pods of Deployments running <paramref name="image"/> get stuck with this reason (ImagePullBackOff, CrashLoopBackOff) or, unschedulable, are never placed.</summary>
    public void FailImage(string image, string reason, string message, bool unschedulable = false)
    {
        lock (_gate)
        {
            _failures[image] = (reason, message, unschedulable);
        }
    }

    /// <summary>A copy of a stored object, or null.</summary>
    public JsonObject? Find(string kind, string ns, string name)
    {
        lock (_gate)
        {
            return _objects.TryGetValue((kind, ns, name), out var o) ? (JsonObject)o.DeepClone() : null;
        }
    }

    public IReadOnlyList<JsonObject> All(string kind)
    {
        lock (_gate)
        {
            return [.. _objects.Where(o => o.Key.Kind == kind).Select(o => (JsonObject)o.Value.DeepClone())];
        }
    }

    /// <summary>Writes a kubeconfig that points at this server.</summary>
    public string WriteKubeconfig(string folder)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, "kubeconfig");
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: double
              cluster:
                server: {Url.ToString().TrimEnd('/')}
            users:
            - name: tester
              user:
                token: test-token
            contexts:
            - name: double
              context:
                cluster: double
                user: tester
            current-context: double
            """);
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        string body;
        using (var reader = new StreamReader(request.Body, Encoding.UTF8))
        {
            body = await reader.ReadToEndAsync();
        }

        int status;
        JsonObject answer;
        lock (_gate)
        {
            (status, answer) = Handle(request.Method, request.Path.Value ?? "/", request.Query, request.ContentType, body);
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(answer.ToJsonString());
    }

    private (int, JsonObject) Handle(string method, string path, IQueryCollection query, string? contentType, string body)
    {
        if (method == "GET" && (path.EndsWith("/pods", StringComparison.Ordinal) || path.EndsWith("/events", StringComparison.Ordinal)))
        {
            _requests.Add($"GET {path}");
            return List(path, query);
        }

        if (!TryRoute(path, out var resource, out var ns, out var name))
        {
            _requests.Add($"{method} {path}");
            return Status(404, "NotFound", "the server could not find the requested resource");
        }

        var (kind, apiVersion, _) = Resources[resource];
        _requests.Add($"{method} {kind} {(kind == "Namespace" ? name : name is null ? ns : $"{ns}/{name}")}");
        if (name is null)
        {
            return Status(404, "NotFound", "the server could not find the requested resource");
        }

        var key = (kind, kind == "Namespace" ? "" : ns!, name);
        return method switch
        {
            "GET" => Get(key),
            "PATCH" => Apply(key, kind, apiVersion, query, contentType, body),
            "DELETE" when kind == "Namespace" => DeleteNamespace(name),
            "DELETE" => Delete(key),
            _ => Status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"),
        };
    }

    private (int, JsonObject) Get((string Kind, string Ns, string Name) key)
    {
        if (key.Kind == "Namespace" && _terminating.TryGetValue(key.Name, out var left))
        {
            if (left <= 0)
            {
                Finalize(key.Name);
            }
            else
            {
                _terminating[key.Name] = left - 1;
            }
        }

        if (!_objects.TryGetValue(key, out var found))
        {
            return NotFound(key);
        }

        if (key.Kind == "Deployment")
        {
            Progress(found);
        }

        return (200, (JsonObject)found.DeepClone());
    }

    private (int, JsonObject) Apply((string Kind, string Ns, string Name) key, string kind, string apiVersion, IQueryCollection query, string? contentType, string body)
    {
        if (contentType is null || !contentType.StartsWith("application/apply-patch+yaml", StringComparison.Ordinal))
        {
            return Status(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (got {contentType})");
        }

        if (string.IsNullOrEmpty(query["fieldManager"]))
        {
            return Status(400, "BadRequest", "PATCH, fieldManager: Required value: is required for apply patch");
        }

        JsonObject applied;
        try
        {
            applied = JsonNode.Parse(body) as JsonObject ?? throw new JsonException("not an object");
        }
        catch (JsonException ex)
        {
            return Status(400, "BadRequest", $"error decoding YAML: {ex.Message}");
        }

        if ((string?)applied["kind"] != kind || (string?)applied["apiVersion"] != apiVersion)
        {
            return Status(400, "BadRequest", $"the API version in the data ({applied["apiVersion"]}) does not match the expected API version ({apiVersion}) or kind ({applied["kind"]} != {kind})");
        }

        var meta = applied["metadata"] as JsonObject;
        if ((string?)meta?["name"] != key.Name)
        {
            return Status(400, "BadRequest", $"the name of the object ({meta?["name"]}) does not match the name on the URL ({key.Name})");
        }

        if (kind != "Namespace")
        {
            if ((string?)meta!["namespace"] is { } given && given != key.Ns)
            {
                return Status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
            }

            if (!_objects.ContainsKey(("Namespace", "", key.Ns)))
            {
                return Status(404, "NotFound", $"namespaces \"{key.Ns}\" not found", "namespaces", key.Ns);
            }

            if (_terminating.ContainsKey(key.Ns))
            {
                return Status(403, "Forbidden", $"{kind.ToLowerInvariant()}s \"{key.Name}\" is forbidden: unable to create new content in namespace {key.Ns} because it is being terminated");
            }
        }
        else if (_terminating.ContainsKey(key.Name))
        {
            return Status(409, "Conflict", $"Operation cannot be fulfilled on namespaces \"{key.Name}\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.");
        }

        var manager = query["fieldManager"].ToString();
        var force = query["force"] == "true";
        _objects.TryGetValue(key, out var existing);
        var owner = (string?)existing?["metadata"]?["managedFields"]?[0]?["manager"];
        if (existing is not null && owner != manager && !force)
        {
            return Status(409, "Conflict", $"Apply failed with 1 conflict: conflict with \"{owner}\"");
        }

        var stored = (JsonObject)applied.DeepClone();
        var storedMeta = (JsonObject)stored["metadata"]!;
        storedMeta["uid"] = (string?)existing?["metadata"]?["uid"] ?? $"00000000-0000-0000-0000-{Interlocked.Increment(ref _uid):D12}";
        storedMeta["resourceVersion"] = Interlocked.Increment(ref _uid).ToString(System.Globalization.CultureInfo.InvariantCulture);
        storedMeta["managedFields"] = new JsonArray(new JsonObject { ["manager"] = manager, ["operation"] = "Apply" });
        if (kind != "Namespace")
        {
            storedMeta["namespace"] = key.Ns;
        }

        if (kind == "Namespace")
        {
            storedMeta["labels"] ??= new JsonObject();
            storedMeta["labels"]!["kubernetes.io/metadata.name"] = key.Name;
            stored["status"] = new JsonObject { ["phase"] = "Active" };
        }
        else if (kind == "Secret" && stored["stringData"] is JsonObject stringData)
        {
            // The API server keeps data only, base64.
            var data = stored["data"] as JsonObject ?? [];
            foreach (var (k, v) in stringData)
            {
                data[k] = Convert.ToBase64String(Encoding.UTF8.GetBytes((string?)v ?? ""));
            }

            stored.Remove("stringData");
            stored["data"] = data;
        }
        else if (kind == "Deployment")
        {
            var generation = (long?)existing?["metadata"]?["generation"] ?? 0;
            var changed = existing is null || !JsonNode.DeepEquals(existing["spec"], stored["spec"]);
            storedMeta["generation"] = changed ? generation + 1 : generation;
            stored["status"] = existing?["status"]?.DeepClone() ?? new JsonObject();
        }

        _objects[key] = stored;
        return (existing is null ? 201 : 200, (JsonObject)stored.DeepClone());
    }

    private (int, JsonObject) Delete((string Kind, string Ns, string Name) key)
    {
        if (!_objects.Remove(key, out var found))
        {
            return NotFound(key);
        }

        return (200, found);
    }

    private (int, JsonObject) DeleteNamespace(string name)
    {
        if (!_objects.TryGetValue(("Namespace", "", name), out var ns))
        {
            return NotFound(("Namespace", "", name));
        }

        if (!_terminating.ContainsKey(name))
        {
            _terminating[name] = FinalizeAfterReads;
            ns["metadata"]!["deletionTimestamp"] = "2026-01-01T00:00:00Z";
            ns["status"] = new JsonObject { ["phase"] = "Terminating" };
        }

        return (200, (JsonObject)ns.DeepClone());
    }

    private void Finalize(string ns)
    {
        _terminating.Remove(ns);
        foreach (var key in _objects.Keys.Where(k => k.Ns == ns || (k.Kind == "Namespace" && k.Name == ns)).ToList())
        {
            _objects.Remove(key);
        }

        _requests.Add($"FINALIZED Namespace {ns}");
    }

    /// <summary>The controller's work: a Deployment read after a change reports its pods ready, unless its image fails or readiness is held.</summary>
    private void Progress(JsonObject deployment)
    {
        var generation = (long?)deployment["metadata"]?["generation"] ?? 0;
        var replicas = (int?)deployment["spec"]?["replicas"] ?? 1;
        if (HoldReady || _failures.ContainsKey(ImageOf(deployment)))
        {
            var status = (JsonObject)(deployment["status"] ??= new JsonObject());
            status["observedGeneration"] = generation;
            status["updatedReplicas"] = 0;
            return;
        }

        deployment["status"] = new JsonObject
        {
            ["observedGeneration"] = generation,
            ["replicas"] = replicas,
            ["updatedReplicas"] = replicas,
            ["readyReplicas"] = replicas,
            ["availableReplicas"] = replicas,
        };
    }

    private static string ImageOf(JsonObject deployment) =>
        (string?)deployment["spec"]?["template"]?["spec"]?["containers"]?[0]?["image"] ?? "";

    private (int, JsonObject) ListPods(string ns, string? labelSelector)
    {
        var items = new JsonArray();
        foreach (var ((kind, objectNs, name), deployment) in _objects)
        {
            if (kind != "Deployment" || objectNs != ns || !Matches(deployment["spec"]?["template"]?["metadata"]?["labels"] as JsonObject, labelSelector))
            {
                continue;
            }

            var pod = $"{name}-7d9f8-x2k4q";
            var podStatus = new JsonObject { ["phase"] = "Running" };
            if (_failures.TryGetValue(ImageOf(deployment), out var failure))
            {
                podStatus["phase"] = "Pending";
                if (failure.Unschedulable)
                {
                    podStatus["conditions"] = new JsonArray(new JsonObject
                    {
                        ["type"] = "PodScheduled", ["status"] = "False", ["reason"] = failure.Reason, ["message"] = failure.Message,
                    });
                }
                else
                {
                    podStatus["containerStatuses"] = new JsonArray(new JsonObject
                    {
                        ["name"] = name, ["image"] = ImageOf(deployment), ["imageID"] = "", ["ready"] = false, ["restartCount"] = 3,
                        ["state"] = new JsonObject { ["waiting"] = new JsonObject { ["reason"] = failure.Reason, ["message"] = failure.Message } },
                    });
                }
            }

            items.Add(new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "Pod",
                ["metadata"] = new JsonObject { ["name"] = pod, ["namespace"] = ns, ["labels"] = deployment["spec"]?["template"]?["metadata"]?["labels"]?.DeepClone() },
                ["status"] = podStatus,
            });
        }

        return (200, new JsonObject { ["apiVersion"] = "v1", ["kind"] = "PodList", ["metadata"] = new JsonObject(), ["items"] = items });
    }

    private static bool Matches(JsonObject? labels, string? selector)
    {
        foreach (var term in (selector ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = term.Split('=', 2);
            if (parts.Length != 2 || (string?)labels?[parts[0]] != parts[1])
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryRoute(string path, out string resource, out string? ns, out string? name)
    {
        resource = "";
        ns = null;
        name = null;
        foreach (var (plural, (_, _, prefix)) in Resources)
        {
            if (!path.StartsWith(prefix + "/", StringComparison.Ordinal))
            {
                continue;
            }

            var rest = path[(prefix.Length + 1)..].Split('/');
            if (plural == "namespaces" && rest is ["namespaces", var nsName])
            {
                (resource, name) = (plural, nsName);
                return true;
            }

            if (rest is ["namespaces", var n, var r] && r == plural)
            {
                (resource, ns) = (plural, n);
                return true;
            }

            if (rest is ["namespaces", var n2, var r2, var objectName] && r2 == plural)
            {
                (resource, ns, name) = (plural, n2, objectName);
                return true;
            }
        }

        return false;
    }

    private static (int, JsonObject) NotFound((string Kind, string Ns, string Name) key)
    {
        var plural = Resources.First(r => r.Value.Kind == key.Kind).Key;
        var group = Resources[plural].ApiVersion.Contains('/', StringComparison.Ordinal) ? Resources[plural].ApiVersion.Split('/')[0] : "";
        return Status(404, "NotFound", $"{plural}{(group.Length > 0 ? "." + group : "")} \"{key.Name}\" not found", plural, key.Name, group);
    }

    private static (int, JsonObject) Status(int code, string reason, string message, string? kind = null, string? name = null, string? group = null)
    {
        var status = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = message,
            ["reason"] = reason,
            ["code"] = code,
        };
        if (kind is not null)
        {
            status["details"] = new JsonObject { ["name"] = name, ["group"] = group ?? "", ["kind"] = kind };
        }

        return (code, status);
    }

    /// <summary>Lists are the only calls without an object name; the provider lists pods and events.</summary>
    internal (int, JsonObject) List(string path, IQueryCollection query)
    {
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return parts is ["api", "v1", "namespaces", var ns, "pods"] ? ListPods(ns, query["labelSelector"])
            : parts is ["api", "v1", "namespaces", _, "events"] ? (200, new JsonObject { ["apiVersion"] = "v1", ["kind"] = "EventList", ["metadata"] = new JsonObject(), ["items"] = new JsonArray() })
            : Status(404, "NotFound", "the server could not find the requested resource");
    }
}
