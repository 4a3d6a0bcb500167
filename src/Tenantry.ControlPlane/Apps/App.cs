namespace Tenantry.ControlPlane.Apps;

/// <summary>A registered application: what the gateway routes to it and how many shared instances serve pooled tenants.</summary>
public sealed record App
{
    /// <summary>The app's id: a slug.</summary>
    public required string Name { get; init; }

    /// <summary>Requests whose path starts with this prefix go to the app (kept in the forwarded path).</summary>
    public required string RoutePrefix { get; init; }

    public required string HealthPath { get; init; }

    /// <summary>Shared instances for pool and bridge tenants.</summary>
    public required int SharedInstances { get; init; }

    /// <summary>The version new tenants start on; null until the app's first release.</summary>
    public string? CurrentRelease { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public required DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>How to start one instance of a release as a local process.</summary>
public sealed record ReleaseProcess(string Command, IReadOnlyList<string> Args, string? WorkingDirectory, IReadOnlyDictionary<string, string> Env);

/// <summary>One forward-only migration of a release; <see cref="Checksum"/> is the SHA-256 of its SQL (line endings as LF).</summary>
public sealed record ReleaseMigration(string Id, string Sql, string Checksum);

/// <summary>SQL run once in each tenant's own scope after its migrations, when it first gets the app; <see cref="Checksum"/> as for a migration.</summary>
public sealed record ReleaseSeed(string Sql, string Checksum);

/// <summary>An immutable release of an app: the process (or image) to run and the migrations its tenants' databases need.</summary>
public sealed record AppRelease
{
    public required string App { get; init; }

    public required string Version { get; init; }

    public required ReleaseProcess Process { get; init; }

    public string? Image { get; init; }

    public required IReadOnlyList<ReleaseMigration> Migrations { get; init; }

    /// <summary>Optional per-tenant seed.</summary>
    public ReleaseSeed? Seed { get; init; }

    public required string CreatedBy { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Order of creation within the app (1 for its first release).</summary>
    public long Sequence { get; init; }
}
