using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Tenantry.Samples.Tests;

/// <summary>The sample's own verifier (standard-library Python, ES256 written by hand) against docs/tenant-context.md.</summary>
public sealed class NotesContextVectorTests
{
    [Fact]
    public async Task The_sample_gives_each_documented_test_vector_its_verdict()
    {
        var file = NotesSample.ContextResource("tenant-context-vectors.json");
        var vectors = JsonNode.Parse(File.ReadAllText(file))!;
        var at = DateTimeOffset.Parse(vectors["at"]!.GetValue<string>(), CultureInfo.InvariantCulture).ToUnixTimeSeconds();
        var doc = File.ReadAllText(Path.Combine(NotesSample.RepositoryRoot, "docs", "tenant-context.md"));

        var (exitCode, stdout, stderr) = await NotesInstance.RunAsync(
            new Dictionary<string, string>(),
            "--check-vectors", file, "--at", at.ToString(CultureInfo.InvariantCulture), "--app", vectors["audience"]!.GetValue<string>());

        var verdicts = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .ToDictionary(v => v.GetProperty("name").GetString()!, v => v.GetProperty("verdict").GetString(), StringComparer.Ordinal);
        var expected = vectors["vectors"]!.AsArray();
        Assert.Equal(expected.Count, verdicts.Count);
        foreach (var vector in expected)
        {
            var name = vector!["name"]!.GetValue<string>();
            Assert.True(verdicts.TryGetValue(name, out var verdict), $"no verdict for '{name}'");
            Assert.True(vector["verdict"]!.GetValue<string>() == verdict, $"{name}: expected {vector["verdict"]}, got {verdict}");
            Assert.Contains(vector["token"]!.GetValue<string>(), doc, StringComparison.Ordinal);
        }

        Assert.True(exitCode == 0, stderr);
    }

    [Fact]
    public async Task Later_than_the_documented_instant_every_vector_is_expired_or_refused()
    {
        var file = NotesSample.ContextResource("tenant-context-vectors.json");
        var vectors = JsonNode.Parse(File.ReadAllText(file))!;
        var later = DateTimeOffset.Parse(vectors["at"]!.GetValue<string>(), CultureInfo.InvariantCulture).AddSeconds(60).ToUnixTimeSeconds();

        var (exitCode, stdout, _) = await NotesInstance.RunAsync(
            new Dictionary<string, string>(), "--check-vectors", file, "--at", later.ToString(CultureInfo.InvariantCulture));

        var verdicts = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement.GetProperty("verdict").GetString()).ToList();
        Assert.Equal(vectors["vectors"]!.AsArray().Count, verdicts.Count);
        Assert.DoesNotContain("valid", verdicts);
        Assert.Equal(1, exitCode);
    }
}
