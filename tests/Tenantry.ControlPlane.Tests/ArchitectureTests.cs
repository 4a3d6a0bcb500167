using System.Text.RegularExpressions;

namespace Tenantry.ControlPlane.Tests;

/// <summary>
/// The structure the sources keep: control-plane feature folders depend on each other one way
/// only, and endpoints hold no SQL (it lives in the feature's store).
/// </summary>
public sealed partial class ArchitectureTests
{
    private static readonly string Root = FindRepositoryRoot();
    private static readonly string ControlPlane = Path.Combine(Root, "src", "Tenantry.ControlPlane");

    [GeneratedRegex(@"^\s*using\s+(?:static\s+)?Tenantry\.ControlPlane\.(?<feature>[A-Za-z]+)\b", RegexOptions.Multiline)]
    private static partial Regex UsingFeature();

    [GeneratedRegex(@"\b(SELECT|INSERT\s+INTO|UPDATE\s+[a-z_]+\s+SET|DELETE\s+FROM)\b")]
    private static partial Regex SqlStatement();

    [Fact]
    public void Control_plane_feature_folders_form_no_namespace_cycle()
    {
        var features = Features();
        Assert.Superset(
            new HashSet<string>(["Audit", "Identity", "ObjectStorage", "Operations", "Policies", "Providers", "Routing", "Tenants"], StringComparer.Ordinal),
            features.ToHashSet(StringComparer.Ordinal));

        var graph = features.ToDictionary(f => f, f => DependenciesOf(f, features), StringComparer.Ordinal);
        var cycle = FindCycle(graph);
        Assert.True(cycle is null, $"Feature folders depend on each other in a cycle: {string.Join(" -> ", cycle ?? [])}");
    }

    [Fact]
    public void A_feature_that_uses_another_is_seen_as_depending_on_it()
    {
        // The check above would pass vacuously if it saw no dependencies at all.
        var features = Features();
        Assert.Contains("Operations", DependenciesOf("Tenants", features));
        Assert.Contains("Audit", DependenciesOf("Tenants", features));
    }

    [Fact]
    public void Endpoint_files_hold_no_sql()
    {
        var apis = Directory.EnumerateFiles(Path.Combine(Root, "src"), "*Api.cs", SearchOption.AllDirectories)
            .Where(p => !IsBuildOutput(p))
            .ToList();
        Assert.True(apis.Count >= 10, $"Expected the endpoint files under src, found {apis.Count}.");

        var offenders = apis
            .SelectMany(path => File.ReadLines(path).Select((line, i) => (path, line, number: i + 1)))
            .Where(x => SqlStatement().IsMatch(x.line))
            .Select(x => $"{Path.GetRelativePath(Root, x.path)}:{x.number}: {x.line.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "SQL belongs in the feature's store, not in its endpoints:\n" + string.Join('\n', offenders));
    }

    private static List<string> Features() =>
        [.. Directory.EnumerateDirectories(ControlPlane)
            .Select(Path.GetFileName)
            .OfType<string>()
            .Where(name => name is not ("bin" or "obj") && Directory.EnumerateFiles(Path.Combine(ControlPlane, name), "*.cs", SearchOption.AllDirectories).Any())
            .Order(StringComparer.Ordinal)];

    /// <summary>The other features a feature's sources name: by a using directive or a qualified name outside comments.</summary>
    private static HashSet<string> DependenciesOf(string feature, IReadOnlyCollection<string> features)
    {
        var qualified = new Regex(@"(?<![\w.])(?:Tenantry\.ControlPlane\.)?(?<feature>" + string.Join('|', features) + @")\.[A-Z]", RegexOptions.CultureInvariant);
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(ControlPlane, feature), "*.cs", SearchOption.AllDirectories).Where(p => !IsBuildOutput(p)))
        {
            var code = string.Join('\n', File.ReadLines(file).Where(line => !line.TrimStart().StartsWith("//", StringComparison.Ordinal)));
            foreach (Match m in UsingFeature().Matches(code))
            {
                found.Add(m.Groups["feature"].Value);
            }

            foreach (Match m in qualified.Matches(code))
            {
                found.Add(m.Groups["feature"].Value);
            }
        }

        found.IntersectWith(features);
        found.Remove(feature);
        return found;
    }

    private static List<string>? FindCycle(IReadOnlyDictionary<string, HashSet<string>> graph)
    {
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 1 = on the path, 2 = done
        var path = new List<string>();

        List<string>? Visit(string node)
        {
            state[node] = 1;
            path.Add(node);
            foreach (var next in graph[node].Order(StringComparer.Ordinal))
            {
                if (state.GetValueOrDefault(next) == 1)
                {
                    return [.. path[path.IndexOf(next)..], next];
                }

                if (state.GetValueOrDefault(next) == 0 && Visit(next) is { } cycle)
                {
                    return cycle;
                }
            }

            path.RemoveAt(path.Count - 1);
            state[node] = 2;
            return null;
        }

        foreach (var node in graph.Keys.Order(StringComparer.Ordinal))
        {
            if (state.GetValueOrDefault(node) == 0 && Visit(node) is { } cycle)
            {
                return cycle;
            }
        }

        return null;
    }

    private static bool IsBuildOutput(string path) =>
        path.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
        || path.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal);

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Tenantry.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Tenantry.slnx was not found above " + AppContext.BaseDirectory);
    }
}
