using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Tenantry.ControlPlane.Apps;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.AppMigrations;

/// <summary>
/// The registered apps' current releases applied to tenants: to a new tenant at onboarding (its
/// migrations, then its seed), and to the whole fleet by a fleet migration.
/// </summary>
internal sealed class CurrentReleases(IAppRegistry apps, IReleaseMigrator migrator)
{
    /// <summary>
    /// For onboarding's database step: every app's current release, migrations then seed; safe to
    /// run again after a crash (both are recorded). Throws on the first failure, as a step does;
    /// null when no app has a release.
    /// </summary>
    public async Task<JsonObject?> ApplyToNewTenantAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var releases = await apps.CurrentReleasesAsync(cancellationToken);
        if (releases.Count == 0)
        {
            return null;
        }

        var summary = new JsonObject();
        foreach (var release in releases)
        {
            var migrated = await migrator.ApplyAsync(tenant, release, cancellationToken);
            if (!migrated.Succeeded)
            {
                throw Failure(migrated.Error!, migrated.Retryable);
            }

            if (migrated.Outcome == ReleaseMigrationOutcome.NoDatabase)
            {
                throw new InvalidOperationException($"The tenant's database is not reachable yet for {release.App} {release.Version}.");
            }

            var seeded = await migrator.SeedAsync(tenant, release, cancellationToken);
            if (!seeded.Succeeded)
            {
                throw Failure(seeded.Error!, seeded.Retryable);
            }

            summary[release.App] = new JsonObject
            {
                ["release"] = release.Version,
                ["migrations"] = release.Migrations.Count,
                ["seeded"] = seeded.Outcome is ReleaseSeedOutcome.Seeded or ReleaseSeedOutcome.AlreadySeeded,
            };
        }

        return summary;
    }

    /// <summary>Every app's current release applied to every tenant given; a failed tenant does not stop the others.</summary>
    public async Task<IReadOnlyList<(AppRelease Release, IReadOnlyList<ReleaseMigrationResult> Results)>> ApplyToFleetAsync(
        IReadOnlyList<TenantRef> tenants, int parallelism, CancellationToken cancellationToken)
    {
        var reports = new List<(AppRelease, IReadOnlyList<ReleaseMigrationResult>)>();
        foreach (var release in await apps.CurrentReleasesAsync(cancellationToken))
        {
            reports.Add((release, await migrator.ApplyAsync(tenants, release, parallelism, cancellationToken: cancellationToken)));
        }

        return reports;
    }

    // Broken SQL stays broken however often it is retried; an unreachable database may come back.
    private static Exception Failure(string error, bool retryable) =>
        retryable ? new InvalidOperationException(error) : new PermanentStepException(error);
}

public static class AppMigrationsServiceCollectionExtensions
{
    /// <summary>The release migrator, the scratch check of new releases, and what onboarding and fleet migrations use of them.</summary>
    public static IServiceCollection AddTenantryAppMigrations(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<IReleaseMigrator, ReleaseMigrator>();
        services.TryAddSingleton<IReleaseValidator, ScratchReleaseValidator>();
        services.TryAddSingleton<CurrentReleases>();
        return services;
    }
}
