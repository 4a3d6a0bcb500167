using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.AppMigrations;
using Tenantry.ControlPlane.Jobs;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.Operations;

/// <summary>
/// Runs one named step against the providers. Returns the change to the tenant's
/// <c>resources</c> (a key set to null is removed), or null when resources stay as they are.
/// </summary>
internal sealed class StepExecutor(
    ITenantDatabaseProvider databases,
    ITenantStorageProvider storage,
    ITenantComputeProvider compute,
    ITenantIdentityProvider identity,
    INotificationProvider notifications,
    CurrentReleases releases,
    IJobQueues jobs,
    IOptions<TenantryOptions> options,
    TimeProvider time,
    IEnumerable<IOperationSteps> kinds)
{
    private readonly Dictionary<OperationKind, IOperationSteps> _kinds = kinds.ToDictionary(k => k.Kind);

    /// <summary>Undoes a failed operation of a kind that rolls back; false when no feature runs the kind.</summary>
    public async Task<bool> RollBackAsync(Operation op, Tenant tenant, string failedStep, CancellationToken ct)
    {
        if (!_kinds.TryGetValue(op.Kind, out var kind))
        {
            return false;
        }

        await kind.RollBackAsync(op, tenant, failedStep, ct);
        return true;
    }

    public async Task<JsonObject?> ExecuteAsync(Operation op, Tenant tenant, string step, CancellationToken ct)
    {
        if (_kinds.TryGetValue(op.Kind, out var kind))
        {
            return await kind.ExecuteAsync(op, tenant, step, ct);
        }

        var t = new TenantRef(tenant.Id, tenant.Slug, tenant.Name, tenant.Tier, tenant.Isolation, tenant.AdminEmail);
        switch (step)
        {
            case StepNames.Validate:
                Validate(tenant);
                return null;
            case StepNames.CreateDatabase:
            {
                // The database, then every registered app's current release in it (both idempotent, so a retried step repeats nothing).
                var database = await databases.CreateAsync(t, ct);
                if (await releases.ApplyToNewTenantAsync(t, ct) is { } apps)
                {
                    database["apps"] = apps;
                }

                return new JsonObject { ["database"] = database };
            }
            case StepNames.ProvisionStorage:
                return new JsonObject { ["storage"] = await storage.ProvisionAsync(t, ct) };
            case StepNames.ProvisionQueue:
                await jobs.ProvisionAsync(tenant.Id, ct);
                return new JsonObject { ["queue"] = new JsonObject { ["engine"] = jobs.Engine } };
            case StepNames.ConfigureIdentity:
                return new JsonObject { ["identity"] = await identity.ConfigureAsync(t, ct) };
            case StepNames.DeployCompute:
                return new JsonObject { ["compute"] = await compute.DeployAsync(t, ct) };
            case StepNames.Notify:
                await NotifyAsync(op, tenant, t, ct);
                return null;
            case StepNames.ExportData:
                return new JsonObject { ["export"] = await ExportAsync(op, tenant, t, ct) };
            case StepNames.RevokeAccess:
                await identity.SetAccessAsync(t, enabled: false, ct);
                await compute.SetRoutingAsync(t, enabled: false, ct);
                return null;
            case StepNames.RestoreAccess:
                await identity.SetAccessAsync(t, enabled: true, ct);
                await compute.SetRoutingAsync(t, enabled: true, ct);
                return null;
            case StepNames.DeleteCompute:
                await compute.DeleteAsync(t, ct);
                return new JsonObject { ["compute"] = null };
            case StepNames.DeleteQueue:
                // The export (export-data) holds the jobs that were not done; deleting twice finds nothing.
                await jobs.DeleteAsync(tenant.Id, ct);
                return new JsonObject { ["queue"] = null };
            case StepNames.DeleteStorage:
                await storage.DeleteAsync(t, ct);
                return new JsonObject { ["storage"] = null };
            case StepNames.DeleteDatabase:
                await databases.DeleteAsync(t, ct);
                return new JsonObject { ["database"] = null };
            case StepNames.Archive:
                return new JsonObject { ["archive"] = Archive(tenant) };
            default:
                throw new PermanentStepException($"Unknown step '{step}'.");
        }
    }

    private void Validate(Tenant tenant)
    {
        if (!options.Value.Tiers.TryGetValue(tenant.Tier, out var isolation) || !WireNames.TryParseIsolation(isolation, out var model))
        {
            throw new PermanentStepException($"Tier '{tenant.Tier}' is not in the tier catalog.");
        }

        if (model != tenant.Isolation)
        {
            throw new PermanentStepException($"Tier '{tenant.Tier}' now maps to {model.ToWire()} isolation, not {tenant.Isolation.ToWire()}.");
        }

        if (TenantRules.CheckSlug(tenant.Slug) is { } problem)
        {
            throw new PermanentStepException(problem);
        }
    }

    /// <summary>Tells the tenant's admin: a welcome (with a one-time invitation link) after onboarding, a notice after suspension or reactivation.</summary>
    private Task NotifyAsync(Operation op, Tenant tenant, TenantRef t, CancellationToken ct)
    {
        var kind = op.Kind switch
        {
            OperationKind.Onboard => NotificationKinds.Welcome,
            OperationKind.Suspend => NotificationKinds.Suspended,
            OperationKind.Reactivate => NotificationKinds.Reactivated,
            _ => throw new PermanentStepException($"A {op.Kind.ToWire()} operation sends no notification."),
        };
        var payload = new JsonObject
        {
            ["to"] = tenant.AdminEmail,
            ["tenantId"] = tenant.Id.ToString(),
            ["slug"] = tenant.Slug,
            ["operationId"] = op.Id.ToString(),
        };
        return notifications.NotifyAsync(t, $"{op.Id}:{StepNames.Notify}", kind, payload, ct);
    }

    private async Task<JsonObject> ExportAsync(Operation op, Tenant tenant, TenantRef t, CancellationToken ct)
    {
        var name = $"{tenant.Slug}-export-{op.Id:N}.zip";
        var path = await storage.SaveExportAsync(
            t,
            name,
            async stream =>
            {
                using var archive = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
                var manifest = archive.CreateEntry("tenant.json", CompressionLevel.Fastest);
                await using (var entry = manifest.Open())
                {
                    await JsonSerializer.SerializeAsync(
                        entry,
                        new JsonObject
                        {
                            ["id"] = tenant.Id.ToString(),
                            ["slug"] = tenant.Slug,
                            ["name"] = tenant.Name,
                            ["tier"] = tenant.Tier,
                            ["isolation"] = tenant.Isolation.ToWire(),
                            ["adminEmail"] = tenant.AdminEmail,
                            ["config"] = tenant.Config.DeepClone(),
                            ["createdAt"] = tenant.CreatedAt,
                            ["exportedAt"] = time.GetUtcNow(),
                        },
                        cancellationToken: ct);
                }

                await ExportJobsAsync(tenant.Id, archive, ct);
                await databases.ExportAsync(t, archive, ct);
                await storage.ExportAsync(t, archive, ct);
            },
            ct);
        return new JsonObject { ["path"] = path, ["bytes"] = new FileInfo(path).Length };
    }

    /// <summary>The jobs not yet done (queued, leased, dead-lettered), one JSON object a line, in enqueue order.</summary>
    private async Task ExportJobsAsync(Guid tenantId, ZipArchive archive, CancellationToken ct)
    {
        var open = await jobs.OpenJobsAsync(tenantId, ct);
        var entry = archive.CreateEntry("jobs.jsonl", CompressionLevel.Fastest);
        await using var stream = entry.Open();
        foreach (var job in open)
        {
            await JsonSerializer.SerializeAsync(stream, JobsApi.ToResponse(job), cancellationToken: ct);
            stream.WriteByte((byte)'\n');
        }
    }

    private JsonObject Archive(Tenant tenant)
    {
        var path = tenant.Resources["export"]?["path"]?.GetValue<string>();
        if (path is null || !File.Exists(path))
        {
            throw new PermanentStepException("The export archive is missing; retry the operation from export-data.");
        }

        using var stream = File.OpenRead(path);
        return new JsonObject
        {
            ["path"] = path,
            ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(stream)),
            ["archivedAt"] = time.GetUtcNow(),
        };
    }
}
