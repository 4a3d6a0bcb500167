using System.Globalization;
using System.Security;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Tenantry.Packaging.Tests;

/// <summary>
/// An app made the way an app team makes one: the repository's packages packed with <c>dotnet pack</c>
/// (<c>Tenantry.Packages.slnf</c>) into a folder, the <c>tenantry-app</c> template installed from that folder
/// into a private template hive (the user's template list is left alone), <c>dotnet new tenantry-app</c>,
/// then <c>dotnet build -c Release</c> against those packages only: a generated <c>nuget.config</c> maps
/// <c>Tenantry.*</c> to the folder and everything else to the sources this machine uses, with a package
/// cache of its own so no earlier build's Tenantry packages are taken. Everything lives in one temporary
/// folder, deleted on dispose. <see cref="Folder"/> is ready for <c>tenantry apps register</c>.
/// </summary>
public sealed partial class TemplateApp : IAsyncDisposable
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(10);

    private TemplateApp(string work, string folder, string name, string version)
    {
        WorkFolder = work;
        Folder = folder;
        Name = name;
        Version = version;
    }

    /// <summary>The temporary folder that holds the packages, the template hive, the package cache and the app.</summary>
    public string WorkFolder { get; }

    /// <summary>The app's folder: its project, <c>tenantry.app.json</c>, <c>migrations/</c> and the Release build.</summary>
    public string Folder { get; }

    /// <summary>The app's name in its manifest: the name Tenantry registers it under, and its token audience.</summary>
    public string Name { get; }

    /// <summary>The version of the packed packages (<c>Version</c> in Directory.Build.props).</summary>
    public string Version { get; }

    /// <summary>The folder the packages were packed into.</summary>
    public string PackagesFolder => Path.Combine(WorkFolder, "packages");

    /// <summary>The package cache the app's restore used (it holds nothing from before this run).</summary>
    public string PackageCache => Path.Combine(WorkFolder, "nuget-packages");

    public string ManifestPath => Path.Combine(Folder, "tenantry.app.json");

    /// <summary>The repository this test runs from.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>Packs the packages, installs the template, creates the app <paramref name="name"/> (a C# project name) and builds it in Release.</summary>
    public static async Task<TemplateApp> CreateAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var work = Path.Combine(Path.GetTempPath(), "tenantry-packaging-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            var version = PackageVersion();
            var packages = Path.Combine(work, "packages");
            var hive = Path.Combine(work, "template-hive");
            var folder = Path.Combine(work, name);
            var cache = Path.Combine(work, "nuget-packages");

            await DotnetCommand.RunAsync(RepositoryRoot, CommandTimeout, null,
                "pack", Path.Combine(RepositoryRoot, "Tenantry.Packages.slnf"), "-c", "Release", "-o", packages, "--disable-build-servers");
            await DotnetCommand.RunAsync(work, CommandTimeout, null,
                "new", "install", Path.Combine(packages, $"Tenantry.Templates.{version}.nupkg"), "--debug:custom-hive", hive);
            await DotnetCommand.RunAsync(work, CommandTimeout, null,
                "new", "tenantry-app", "-n", name, "-o", folder, "--debug:custom-hive", hive);

            await File.WriteAllTextAsync(Path.Combine(folder, "nuget.config"), await NuGetConfigAsync(work, packages, cache), cancellationToken);
            // NUGET_PACKAGES would win over the config's globalPackagesFolder.
            await DotnetCommand.RunAsync(folder, CommandTimeout, new Dictionary<string, string> { ["NUGET_PACKAGES"] = cache },
                "build", "-c", "Release", "--disable-build-servers");

            var manifest = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(folder, "tenantry.app.json"), cancellationToken))!.AsObject();
            return new TemplateApp(work, folder, manifest["name"]!.GetValue<string>(), version);
        }
        catch
        {
            DeleteQuietly(work);
            throw;
        }
    }

    /// <summary>The app's <c>tenantry.app.json</c>.</summary>
    public JsonObject ReadManifest() => JsonNode.Parse(File.ReadAllText(ManifestPath))!.AsObject();

    /// <summary>The app's migrations (<c>release.migrationsPath</c>), in their numbered order.</summary>
    public IReadOnlyList<string> MigrationFiles()
    {
        var path = Path.Combine(Folder, ReadManifest()["release"]!["migrationsPath"]!.GetValue<string>());
        return [.. Directory.EnumerateFiles(path, "*.sql").OrderBy(f => int.Parse(Path.GetFileName(f).Split('_')[0], CultureInfo.InvariantCulture))];
    }

    public ValueTask DisposeAsync()
    {
        DeleteQuietly(WorkFolder);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// A nuget.config that restores <c>Tenantry.*</c> from <paramref name="packages"/> only and every other
    /// package from this machine's package cache (as a local feed, so nothing is downloaded again) or
    /// its configured sources, into <paramref name="cache"/>.
    /// </summary>
    private static async Task<string> NuGetConfigAsync(string work, string packages, string cache)
    {
        var sources = new List<(string Key, string Value)> { ("tenantry-local", packages) };
        var locals = await DotnetCommand.RunAsync(work, CommandTimeout, null, "nuget", "locals", "global-packages", "--list");
        if (GlobalPackages().Match(locals) is { Success: true } global && Directory.Exists(global.Groups["path"].Value.Trim()))
        {
            sources.Add(("machine-package-cache", global.Groups["path"].Value.Trim()));
        }

        var listed = await DotnetCommand.RunAsync(work, CommandTimeout, null, "nuget", "list", "source");
        foreach (Match source in Source().Matches(listed))
        {
            sources.Add((source.Groups["name"].Value.Trim(), source.Groups["url"].Value.Trim()));
        }

        var xml = new StringBuilder();
        xml.AppendLine("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        xml.AppendLine("<configuration>");
        xml.AppendLine("  <config>");
        xml.AppendLine(CultureInfo.InvariantCulture, $"    <add key=\"globalPackagesFolder\" value=\"{Escape(cache)}\" />");
        xml.AppendLine("  </config>");
        xml.AppendLine("  <packageSources>");
        xml.AppendLine("    <clear />");
        foreach (var (key, value) in sources)
        {
            xml.AppendLine(CultureInfo.InvariantCulture, $"    <add key=\"{Escape(key)}\" value=\"{Escape(value)}\" />");
        }

        xml.AppendLine("  </packageSources>");
        xml.AppendLine("  <packageSourceMapping>");
        foreach (var (key, _) in sources)
        {
            xml.AppendLine(CultureInfo.InvariantCulture, $"    <packageSource key=\"{Escape(key)}\">");
            xml.AppendLine(key == "tenantry-local" ? "      <package pattern=\"Tenantry.*\" />" : "      <package pattern=\"*\" />");
            xml.AppendLine("    </packageSource>");
        }

        xml.AppendLine("  </packageSourceMapping>");
        xml.AppendLine("</configuration>");
        return xml.ToString();
    }

    private static string PackageVersion()
    {
        var props = File.ReadAllText(Path.Combine(RepositoryRoot, "Directory.Build.props"));
        return VersionProperty().Match(props) is { Success: true } m ? m.Groups[1].Value : throw new InvalidOperationException("Directory.Build.props sets no <Version>.");
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Tenantry.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No Tenantry.slnx above {AppContext.BaseDirectory}.");
    }

    private static string Escape(string value) => SecurityElement.Escape(value);

    private static void DeleteQuietly(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    [GeneratedRegex(@"<Version>([^<]+)</Version>")]
    private static partial Regex VersionProperty();

    [GeneratedRegex(@"^global-packages:\s*(?<path>.+)$", RegexOptions.Multiline)]
    private static partial Regex GlobalPackages();

    // `dotnet nuget list source`: "  1.  nuget.org [Enabled]" then the URL on the next line; disabled sources are left out.
    [GeneratedRegex(@"^\s*\d+\.\s+(?<name>.+?)\s+\[Enabled\]\s*\r?\n\s*(?<url>\S+)\s*$", RegexOptions.Multiline)]
    private static partial Regex Source();
}
