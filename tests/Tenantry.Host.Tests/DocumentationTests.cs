using System.Collections;
using System.Reflection;
using System.Text.RegularExpressions;

namespace Tenantry.Host.Tests;

/// <summary>
/// Keeps the documentation true to the code: docs/configuration.md lists exactly the configuration keys
/// the options classes bind (and the few keys read straight from configuration), the README stays short,
/// and no link in the docs leaves the repository or points at a file that does not exist.
/// </summary>
public sealed partial class DocumentationTests
{
    private const string ConfigurationDoc = "docs/configuration.md";

    private static readonly string Root = RepositoryRoot();

    [Fact]
    public void The_configuration_table_lists_every_bound_key_and_nothing_else()
    {
        var documented = DocumentedKeys();
        var bound = BoundKeys();

        var missing = bound.Except(documented).Order(StringComparer.Ordinal).ToList();
        var extra = documented.Except(bound).Order(StringComparer.Ordinal).ToList();

        Assert.True(missing.Count == 0 && extra.Count == 0,
            $"{ConfigurationDoc} is out of step with the options classes."
            + (missing.Count == 0 ? "" : $"\nAdd a row (key, default, meaning) for each key the code binds:\n  {string.Join("\n  ", missing)}")
            + (extra.Count == 0 ? "" : $"\nRemove (or correct) each row no option binds:\n  {string.Join("\n  ", extra)}")
            + "\n(Dictionary entries are written {name}, list items N, e.g. Tenantry:Tiers:{tier}, Tenantry:Postgres:Servers:N:Name.)");
    }

    [Fact]
    public void The_readme_stays_under_30000_bytes()
    {
        var size = new FileInfo(Path.Combine(Root, "README.md")).Length;
        Assert.True(size <= 30_000, $"README.md is {size} bytes; keep it at most 30,000 and move reference material into docs/.");
    }

    [Fact]
    public void Links_in_the_docs_stay_inside_the_repository_and_resolve()
    {
        var files = new[] { "README.md", "benchmarks/README.md" }
            .Concat(Directory.EnumerateFiles(Path.Combine(Root, "docs"), "*.md").Select(f => Path.GetRelativePath(Root, f)))
            .ToList();
        Assert.Contains(files, f => f.EndsWith("architecture.md", StringComparison.Ordinal));

        var problems = new List<string>();
        foreach (var file in files)
        {
            var text = StripCode(File.ReadAllText(Path.Combine(Root, file)));
            foreach (Match link in Link().Matches(text))
            {
                var target = link.Groups["target"].Value.Trim().Trim('<', '>');
                if (LinkProblem(file, target) is { } problem)
                {
                    problems.Add($"{file}: ({target}) {problem}");
                }
            }
        }

        Assert.True(problems.Count == 0, "Links that leave the repository or point at nothing:\n  " + string.Join("\n  ", problems));
    }

    [Fact]
    public void Every_test_the_threat_model_names_exists()
    {
        var sources = Directory.EnumerateFiles(Path.Combine(Root, "tests"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(File.ReadAllText)
            .ToList();
        var named = TestReference().Matches(File.ReadAllText(Path.Combine(Root, "docs", "security.md")))
            .Select(m => (Class: m.Groups["class"].Value, Method: m.Groups["method"].Value))
            .Distinct()
            .ToList();
        Assert.True(named.Count > 50, $"only {named.Count} tests named in docs/security.md");

        var missing = named
            .Where(t => !sources.Any(s => Regex.IsMatch(s, $@"\bclass\s+{t.Class}\b") && (t.Method == "*" || s.Contains(" " + t.Method + "(", StringComparison.Ordinal))))
            .Select(t => $"{t.Class}.{t.Method}")
            .ToList();
        Assert.True(missing.Count == 0, "docs/security.md names tests that do not exist:\n  " + string.Join("\n  ", missing));
    }

    private static string? LinkProblem(string file, string target)
    {
        if (target.Length == 0)
        {
            return "is empty";
        }

        if (Scheme().IsMatch(target) || target.StartsWith("//", StringComparison.Ordinal))
        {
            return "points outside the repository (docs link only to files of the repository)";
        }

        var path = target.Split('#')[0];
        if (path.Length == 0)
        {
            return null; // An anchor in the same file.
        }

        if (path.StartsWith('/'))
        {
            return "is absolute; use a path relative to the file";
        }

        var resolved = Path.GetFullPath(Path.Combine(Root, Path.GetDirectoryName(file) ?? "", Uri.UnescapeDataString(path)));
        if (!resolved.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal) && resolved != Root)
        {
            return "leaves the repository";
        }

        return File.Exists(resolved) || Directory.Exists(resolved) ? null : "names no file of the repository";
    }

    /// <summary>The keys in the first column of docs/configuration.md's tables, placeholders normalised.</summary>
    private static HashSet<string> DocumentedKeys()
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Path.Combine(Root, ConfigurationDoc)))
        {
            var cells = line.Split('|');
            if (cells.Length > 2 && line.TrimStart().StartsWith('|') && FirstCode().Match(cells[1]) is { Success: true } key
                && key.Groups[1].Value.StartsWith("Tenantry:", StringComparison.Ordinal))
            {
                keys.Add(Placeholder().Replace(key.Groups[1].Value, "{}"));
            }
        }

        Assert.NotEmpty(keys);
        return keys;
    }

    /// <summary>
    /// Every key the code reads: the properties of each options class bound with <c>BindConfiguration</c>
    /// (found in the sources, so a new options class is checked without touching this test), and keys read
    /// straight from <c>IConfiguration</c>.
    /// </summary>
    private static HashSet<string> BoundKeys()
    {
        var types = TenantryTypes();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        var bindings = 0;
        foreach (var source in Directory.EnumerateFiles(Path.Combine(Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Concat(Directory.EnumerateFiles(Path.Combine(Root, "samples"), "*.cs", SearchOption.AllDirectories)))
        {
            if (source.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                || source.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            {
                continue;
            }

            var text = File.ReadAllText(source);
            foreach (Match binding in Binding().Matches(text))
            {
                var options = Single(types, binding.Groups["type"].Value, source);
                var section = binding.Groups["section"].Value;
                var sectionName = section.StartsWith('"')
                    ? section.Trim('"')
                    : (string)Single(types, section[..section.LastIndexOf('.')].Split('.')[^1], source)
                        .GetField(section[(section.LastIndexOf('.') + 1)..], BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)!
                        .GetRawConstantValue()!;
                AddKeys(keys, sectionName, options, depth: 0);
                bindings++;
            }

            foreach (Match read in DirectRead().Matches(text))
            {
                keys.Add(read.Groups["key"].Value);
            }
        }

        Assert.True(bindings >= 8, $"Only {bindings} BindConfiguration calls were found under src/; the source scan is broken.");
        return keys;
    }

    private static void AddKeys(HashSet<string> keys, string prefix, Type type, int depth)
    {
        Assert.True(depth < 8, $"{prefix}: options nest too deep (a cycle?)");
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetIndexParameters().Length > 0 || property.Name == "EqualityContract")
            {
                continue;
            }

            var settable = property.SetMethod is { IsPublic: true };
            var collection = ElementOf(property.PropertyType);
            if (!settable && collection is null)
            {
                continue; // Computed from other settings (DataPath, EffectiveBurst…), not bound.
            }

            var key = $"{prefix}:{property.Name}";
            if (collection is not null)
            {
                var (segment, element) = collection.Value;
                key += ":" + segment;
                if (IsLeaf(element))
                {
                    keys.Add(key);
                }
                else
                {
                    AddKeys(keys, key, element, depth + 1);
                }
            }
            else if (IsLeaf(property.PropertyType))
            {
                keys.Add(key);
            }
            else
            {
                AddKeys(keys, key, property.PropertyType, depth + 1);
            }
        }
    }

    /// <summary>The placeholder segment and element type of a bound collection: <c>{}</c> for a dictionary, <c>N</c> for a list.</summary>
    private static (string Segment, Type Element)? ElementOf(Type type)
    {
        if (type == typeof(string) || !typeof(IEnumerable).IsAssignableFrom(type))
        {
            return null;
        }

        var dictionary = type.GetInterfaces().Append(type)
            .FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>));
        if (dictionary is not null)
        {
            return ("{}", dictionary.GetGenericArguments()[1]);
        }

        var enumerable = type.GetInterfaces().Append(type)
            .First(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>));
        return ("N", enumerable.GetGenericArguments()[0]);
    }

    private static bool IsLeaf(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal) || t == typeof(TimeSpan)
            || t == typeof(Uri) || t == typeof(Guid) || t == typeof(DateTimeOffset) || t == typeof(DateTime);
    }

    private static Type Single(IReadOnlyList<Type> types, string name, string source)
    {
        var found = types.Where(t => t.Name == name).ToList();
        Assert.True(found.Count == 1, $"{Path.GetRelativePath(Root, source)} binds '{name}', found {found.Count} types of that name in the Tenantry assemblies.");
        return found[0];
    }

    /// <summary>Every type of the host's own assemblies (Tenantry.* and the sample app).</summary>
    private static List<Type> TenantryTypes()
    {
        var seen = new Dictionary<string, Assembly>(StringComparer.Ordinal);
        var pending = new Queue<Assembly>([typeof(Program).Assembly]);
        while (pending.TryDequeue(out var assembly))
        {
            if (!seen.TryAdd(assembly.GetName().Name!, assembly))
            {
                continue;
            }

            foreach (var reference in assembly.GetReferencedAssemblies())
            {
                if (reference.Name is { } name && (name.StartsWith("Tenantry.", StringComparison.Ordinal) || name.StartsWith("Orders.", StringComparison.Ordinal)))
                {
                    pending.Enqueue(Assembly.Load(reference));
                }
            }
        }

        return [.. seen.Values.SelectMany(a => a.GetTypes())];
    }

    /// <summary>Fenced code blocks and inline code hold no links.</summary>
    private static string StripCode(string markdown) => InlineCode().Replace(Fence().Replace(markdown, ""), "");

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Tenantry.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (Tenantry.slnx) is not above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"AddOptions<(?<type>\w+)>\(\)\s*\.BindConfiguration\((?<section>""[^""]+""|[\w.]+)\)")]
    private static partial Regex Binding();

    [GeneratedRegex(@"(?:GetValue(?:<[^>]*>)?\(|\[)""(?<key>Tenantry:[A-Za-z0-9:]+)""")]
    private static partial Regex DirectRead();

    [GeneratedRegex(@"`([^`]+)`")]
    private static partial Regex FirstCode();

    [GeneratedRegex(@"`(?:(?<class>[A-Z]\w*)\.(?<method>[A-Za-z]\w*_\w*)|(?<class>[A-Z]\w*Tests)\.(?<method>\*))(?:\([^`]*\))?`")]
    private static partial Regex TestReference();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Placeholder();

    [GeneratedRegex(@"!?\[[^\]\n]*\]\((?<target>[^)\s]*)(?:\s+""[^""]*"")?\)|^\s*\[[^\]\n]+\]:\s*(?<target>\S+)|<(?<target>[a-z][a-z0-9+.-]*:[^>\s]+)>", RegexOptions.Multiline)]
    private static partial Regex Link();

    [GeneratedRegex(@"^[a-zA-Z][a-zA-Z0-9+.-]*:")]
    private static partial Regex Scheme();

    [GeneratedRegex(@"^(```|~~~).*?^\1[^\n]*$", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex Fence();

    [GeneratedRegex(@"`[^`\n]*`")]
    private static partial Regex InlineCode();
}
