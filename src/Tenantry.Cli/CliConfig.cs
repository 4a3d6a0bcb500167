using System.Text.Json;

namespace Tenantry.Cli;

/// <summary>What <c>tenantry login</c> remembers: the server and a token (0600, in the user's config folder).</summary>
internal sealed record CliConfig(string? Url, string? Token, DateTimeOffset? ExpiresAt)
{
    public const string DefaultUrl = "http://127.0.0.1:5080";

    public static string Path =>
        Environment.GetEnvironmentVariable("TENANTRY_CONFIG") is { Length: > 0 } path
            ? path
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData), "tenantry", "config.json");

    public static CliConfig Load()
    {
        try
        {
            return File.Exists(Path) ? JsonSerializer.Deserialize<CliConfig>(File.ReadAllText(Path), Json.Options) ?? Empty : Empty;
        }
        catch (JsonException)
        {
            throw new CliException(ExitCodes.Usage, $"{Path} is not a valid tenantry config; delete it and run `tenantry login`.");
        }
    }

    public static CliConfig Empty { get; } = new(null, null, null);

    public void Save()
    {
        var path = Path;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            // The token is a credential: readable by its owner only.
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temp, options))
        {
            JsonSerializer.Serialize(stream, this, Json.Options);
        }

        File.Move(temp, path, overwrite: true);
    }
}
