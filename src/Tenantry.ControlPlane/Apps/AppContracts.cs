using System.Text.Json.Serialization;

namespace Tenantry.ControlPlane.Apps;

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateAppRequest(string? Name, string? RoutePrefix, string? HealthPath, SharedRequest? Shared);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record SharedRequest(int? Instances);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record CreateReleaseRequest(
    string? Version,
    ProcessRequest? Process,
    string? Image,
    IReadOnlyList<MigrationRequest?>? Migrations,
    string? MigrationsPath,
    string? Seed = null,
    string? SeedPath = null);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ProcessRequest(string? Command, IReadOnlyList<string?>? Args, string? WorkingDirectory, IReadOnlyDictionary<string, string?>? Env);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record MigrationRequest(string? Id, string? Sql);

public sealed record SharedResponse(int Instances);

public sealed record ProcessResponse(string Command, IReadOnlyList<string> Args, string? WorkingDirectory, IReadOnlyDictionary<string, string> Env);

/// <summary>A migration as the API shows it: its SQL stays in the registry, its checksum says whether it changed.</summary>
public sealed record MigrationResponse(string Id, string Checksum);

/// <summary>A release's seed as the API shows it: its checksum, not its SQL.</summary>
public sealed record SeedResponse(string Checksum);

public sealed record ReleaseResponse(
    string App,
    string Version,
    ProcessResponse Process,
    string? Image,
    IReadOnlyList<MigrationResponse> Migrations,
    string CreatedBy,
    DateTimeOffset CreatedAt,
    SeedResponse? Seed)
{
    public static ReleaseResponse From(AppRelease r) => new(
        r.App, r.Version, new ProcessResponse(r.Process.Command, r.Process.Args, r.Process.WorkingDirectory, r.Process.Env), r.Image,
        [.. r.Migrations.Select(m => new MigrationResponse(m.Id, m.Checksum))], r.CreatedBy, r.CreatedAt,
        r.Seed is null ? null : new SeedResponse(r.Seed.Checksum));
}

public sealed record AppResponse(
    string Name,
    string RoutePrefix,
    string HealthPath,
    SharedResponse Shared,
    ReleaseResponse? CurrentRelease,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt)
{
    public static AppResponse From(App app, AppRelease? current) => new(
        app.Name, app.RoutePrefix, app.HealthPath, new SharedResponse(app.SharedInstances),
        current is null ? null : ReleaseResponse.From(current), app.CreatedAt, app.UpdatedAt);
}
