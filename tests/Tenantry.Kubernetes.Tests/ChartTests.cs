using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using YamlDotNet.Serialization;

namespace Tenantry.Kubernetes.Tests;

/// <summary>
/// The Helm chart in <c>deploy/helm/tenantry</c>, rendered by <see cref="ChartRenderer"/> (the template subset the
/// chart keeps to: <c>{{ .Values.x }}</c>, <c>{{ .Release.Name }}</c>, <c>{{ .Release.Namespace }}</c>, and
/// <c>{{- if .Values.x }}</c> … <c>{{- end }}</c> on lines of their own, as <c>helm template</c> renders them),
/// compared with the checked-in output, and every object read through KubernetesClient's typed models.
/// </summary>
public sealed partial class ChartTests
{
    private static readonly string Chart = Path.Combine(Path.GetDirectoryName(ManifestTests.GoldenFolder())!, "..", "..", "deploy", "helm", "tenantry");

    [Fact]
    public void The_chart_renders_as_checked_in()
    {
        var rendered = ChartRenderer.Render(Chart, "tenantry", "tenantry");
        var path = Path.Combine(ManifestTests.GoldenFolder(), "chart-default.yaml");
        if (Environment.GetEnvironmentVariable("TENANTRY_UPDATE_GOLDEN") == "1")
        {
            File.WriteAllText(path, rendered);
        }

        Assert.Equal(File.ReadAllText(path).ReplaceLineEndings("\n"), rendered);
    }

    [Fact]
    public void Every_rendered_object_survives_a_round_trip_through_the_typed_models()
    {
        var rendered = ChartRenderer.Render(Chart, "tenantry", "tenantry");
        var documents = rendered.Split("\n---\n", StringSplitOptions.RemoveEmptyEntries).Where(d => d.Contains("kind:", StringComparison.Ordinal)).ToList();
        var objects = KubernetesYaml.LoadAllFromString(rendered);
        Assert.Equal(documents.Count, objects.Count);
        Assert.Equal(
            ["Deployment", "Service", "Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret"],
            objects.Select(o => ((IKubernetesObject)o).Kind).ToList());
        for (var i = 0; i < objects.Count; i++)
        {
            var original = Generic(documents[i]);
            var back = Generic(KubernetesYaml.Serialize(objects[i]));
            Assert.True(JsonNode.DeepEquals(original, back), $"Object {i} ({((IKubernetesObject)objects[i]).Kind}) changed in a round trip:\n{original}\n---\n{back}");
        }
    }

    [Fact]
    public void Replicas_secrets_and_probes_come_from_the_values()
    {
        var objects = KubernetesYaml.LoadAllFromString(ChartRenderer.Render(Chart, "tenantry", "tenantry"));
        var deployments = objects.OfType<V1Deployment>().ToDictionary(d => d.Metadata.Name);
        var controlPlane = deployments["tenantry-control-plane"];
        var gateway = deployments["tenantry-gateway"];
        Assert.Equal(2, controlPlane.Spec.Replicas);
        Assert.Equal(2, gateway.Spec.Replicas);
        var cp = Assert.Single(controlPlane.Spec.Template.Spec.Containers);
        Assert.Equal("/readyz", cp.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/healthz", cp.LivenessProbe.HttpGet.Path);
        Assert.Equal("/healthz", Assert.Single(gateway.Spec.Template.Spec.Containers).LivenessProbe.HttpGet.Path);
        Assert.Equal(["gateway"], gateway.Spec.Template.Spec.Containers[0].Args);
        Assert.Equal("gateway", gateway.Spec.Template.Metadata.Labels["app.kubernetes.io/component"]);

        var secret = Assert.Single(objects.OfType<V1Secret>());
        Assert.Contains("operator-secret", secret.StringData.Keys);
        Assert.Contains("master-key", secret.StringData.Keys);
        foreach (var name in new[] { "Tenantry__OperatorSecret", "Tenantry__MasterKey", "Tenantry__Store" })
        {
            var env = cp.Env.Single(e => e.Name == name);
            Assert.Null(env.Value);
            Assert.Equal("tenantry-secrets", env.ValueFrom.SecretKeyRef.Name);
        }

        Assert.Equal("kubernetes", cp.Env.Single(e => e.Name == "Tenantry__Compute__Provider").Value);
        Assert.True(controlPlane.Spec.Template.Spec.SecurityContext.RunAsNonRoot);
    }

    [Fact]
    public void The_renderer_refuses_template_syntax_it_does_not_implement()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => ChartRenderer.RenderText("a: {{ .Values.x | quote }}\n", new Dictionary<object, object> { ["x"] = "1" }, "r", "n", "t.yaml"));
        Assert.Contains("t.yaml", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A YAML document as JSON with every scalar a string, so quoting and number formats do not count; empty values
    /// are left out (an empty <c>data</c> entry of a Secret reads back as no bytes, which the model writes as nothing).
    /// </summary>
    private static JsonNode? Generic(string yaml)
    {
        var value = new DeserializerBuilder().Build().Deserialize<object>(yaml);
        return ToJson(value);
    }

    private static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        IDictionary<object, object> map => new JsonObject(map.Where(kv => kv.Value is not null and not "").OrderBy(kv => kv.Key.ToString(), StringComparer.Ordinal)
            .Select(kv => KeyValuePair.Create(kv.Key.ToString()!, ToJson(kv.Value)))),
        IList<object> list => new JsonArray([.. list.Select(ToJson)]),
        _ => JsonValue.Create(value.ToString()),
    };
}

/// <summary>The template subset the chart uses, rendered as <c>helm template</c> renders it; anything else is refused.</summary>
public static partial class ChartRenderer
{
    public static string Render(string chart, string release, string ns)
    {
        var values = new DeserializerBuilder().Build().Deserialize<Dictionary<object, object>>(File.ReadAllText(Path.Combine(chart, "values.yaml")));
        var output = new StringBuilder();
        foreach (var template in Directory.GetFiles(Path.Combine(chart, "templates"), "*.yaml").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(template);
            foreach (var document in RenderText(File.ReadAllText(template).ReplaceLineEndings("\n"), values, release, ns, name).Split("\n---\n"))
            {
                output.Append("---\n# Source: tenantry/templates/").Append(name).Append('\n').Append(document.TrimEnd('\n')).Append('\n');
            }
        }

        return output.ToString();
    }

    public static string RenderText(string text, IDictionary<object, object> values, string release, string ns, string file)
    {
        var output = new StringBuilder();
        var conditions = new Stack<bool>();
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (If().Match(line) is { Success: true } open)
            {
                conditions.Push(Truthy(Lookup(values, open.Groups["path"].Value, file)));
                continue;
            }

            if (End().IsMatch(line))
            {
                if (!conditions.TryPop(out _))
                {
                    throw new InvalidOperationException($"{file}:{i + 1}: end without if.");
                }

                continue;
            }

            if (conditions.Any(c => !c))
            {
                continue;
            }

            var rendered = Action().Replace(line, m => m.Groups["expr"].Value switch
            {
                ".Release.Name" => release,
                ".Release.Namespace" => ns,
                var e when e.StartsWith(".Values.", StringComparison.Ordinal) => Scalar(Lookup(values, e[".Values.".Length..], file), e, file),
                var e => throw new InvalidOperationException($"{file}:{i + 1}: '{{{{ {e} }}}}' is not in the template subset the chart keeps to."),
            });
            if (rendered.Contains("{{", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"{file}:{i + 1}: '{rendered.Trim()}' is not in the template subset the chart keeps to.");
            }

            output.Append(rendered);
            if (i < lines.Length - 1)
            {
                output.Append('\n');
            }
        }

        return conditions.Count == 0 ? output.ToString() : throw new InvalidOperationException($"{file}: if without end.");
    }

    private static object? Lookup(IDictionary<object, object> values, string path, string file)
    {
        object? current = values;
        foreach (var part in path.Split('.'))
        {
            current = current is IDictionary<object, object> map && map.TryGetValue(part, out var next)
                ? next
                : throw new InvalidOperationException($"{file}: .Values.{path} is not in values.yaml.");
        }

        return current;
    }

    private static string Scalar(object? value, string expression, string file) => value switch
    {
        null => "",
        string s => s,
        IDictionary<object, object> or IList<object> => throw new InvalidOperationException($"{file}: {expression} is not a scalar."),
        _ => value.ToString()!,
    };

    private static bool Truthy(object? value) => value switch
    {
        null => false,
        string s => s.Length > 0 && s != "false" && s != "0",
        _ => true,
    };

    [GeneratedRegex(@"^\s*\{\{-?\s*if\s+\.Values\.(?<path>[A-Za-z0-9_.]+)\s*-?\}\}\s*$")]
    private static partial Regex If();

    [GeneratedRegex(@"^\s*\{\{-?\s*end\s*-?\}\}\s*$")]
    private static partial Regex End();

    [GeneratedRegex(@"\{\{\s*(?<expr>\.[A-Za-z][A-Za-z0-9_.]*)\s*\}\}")]
    private static partial Regex Action();
}
