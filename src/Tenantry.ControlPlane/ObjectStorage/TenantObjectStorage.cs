using System.Runtime.ExceptionServices;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Database;
using Tenantry.Policies;

namespace Tenantry.ControlPlane.ObjectStorage;

/// <summary>A call the policies refused; the API answers 403 with the deciding statement.</summary>
public sealed class StorageAccessDeniedException(string action, string resource, PolicyDecision decision)
    : Exception($"{decision.Decision}: {action} on {resource}")
{
    public string Action { get; } = action;

    public string Resource { get; } = resource;

    public PolicyDecision Decision { get; } = decision;
}

/// <summary>
/// Tenant object storage. Keys are full names (<c>tenants/{tenant}/…</c>, as in S3); every call is
/// validated, then authorised by the policy evaluator with the principal's role policy, its tier's
/// session policy and the guardrails — so a bug that names another tenant's key is refused like
/// an attack. Refusals are audited with tenant, action, resource and deciding statement.
/// </summary>
public interface ITenantObjectStorage
{
    Task<StoredObject> PutAsync(TenantPrincipal principal, string key, Stream content, CancellationToken cancellationToken = default);

    /// <summary>The object, or null when there is none (after authorisation: a denied read throws).</summary>
    Task<ObjectContent?> GetAsync(TenantPrincipal principal, string key, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<StoredObject>> ListAsync(TenantPrincipal principal, string prefix, int limit = TenantObjectStorage.MaxList, CancellationToken cancellationToken = default);

    Task<bool> DeleteAsync(TenantPrincipal principal, string key, CancellationToken cancellationToken = default);
}

internal sealed partial class TenantObjectStorage(
    IObjectStoreProvider provider, PolicyCatalog catalog, IControlPlaneDatabase db, TimeProvider time, ILogger<TenantObjectStorage> logger, TenantStorageUsage? usage = null)
    : ITenantObjectStorage
{
    public const int MaxList = 1000;

    /// <summary>
    /// Stores the object. Its bytes are held against the tenant's storage quota as they arrive, so a
    /// write that would pass it stops there (<see cref="StorageQuotaExceededException"/>) and nothing is kept.
    /// </summary>
    public async Task<StoredObject> PutAsync(TenantPrincipal principal, string key, Stream content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        var objectKey = await AuthoriseAsync(principal, PlatformPolicies.PutObject, key, prefix: false, cancellationToken);
        await RefuseExportsAsync(principal, PlatformPolicies.PutObject, objectKey, cancellationToken);
        if (usage is null || await usage.LimitAsync(principal.TenantId, cancellationToken) is null)
        {
            return await provider.PutAsync(objectKey, content, cancellationToken);
        }

        // The object it replaces is counted already: its size is credit the new bytes use first.
        var replaced = await SizeAsync(objectKey, cancellationToken);
        await using var counted = new QuotaStream(content, usage, principal.TenantId, principal.Slug, replaced);
        StoredObject stored;
        try
        {
            stored = await provider.PutAsync(objectKey, counted, cancellationToken);
        }
        catch
        {
            usage.Release(principal.TenantId, counted.Reserved);
            throw;
        }

        usage.Release(principal.TenantId, counted.UnusedCredit);
        return stored;
    }

    public Task<ObjectContent?> GetAsync(TenantPrincipal principal, string key, CancellationToken cancellationToken = default)
    {
        // Reads are the hot path: when authorisation completes at once (the usual case), the
        // provider's task is returned as is, with no state machine in between.
        var authorised = AuthoriseAsync(principal, PlatformPolicies.GetObject, key, prefix: false, cancellationToken);
        return authorised.IsCompletedSuccessfully ? provider.GetAsync(authorised.Result, cancellationToken) : GetAfterAsync(authorised, cancellationToken);
    }

    private async Task<ObjectContent?> GetAfterAsync(ValueTask<ObjectKey> authorised, CancellationToken cancellationToken) =>
        await provider.GetAsync(await authorised, cancellationToken);

    public async Task<IReadOnlyList<StoredObject>> ListAsync(TenantPrincipal principal, string prefix, int limit = MaxList, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, MaxList);
        var objectPrefix = await AuthoriseAsync(principal, PlatformPolicies.ListObjects, prefix, prefix: true, cancellationToken);
        return await provider.ListAsync(objectPrefix, limit, cancellationToken);
    }

    public async Task<bool> DeleteAsync(TenantPrincipal principal, string key, CancellationToken cancellationToken = default)
    {
        var objectKey = await AuthoriseAsync(principal, PlatformPolicies.DeleteObject, key, prefix: false, cancellationToken);
        await RefuseExportsAsync(principal, PlatformPolicies.DeleteObject, objectKey, cancellationToken);
        var size = usage is null || await usage.LimitAsync(principal.TenantId, cancellationToken) is null ? 0 : await SizeAsync(objectKey, cancellationToken);
        var deleted = await provider.DeleteAsync(objectKey, cancellationToken);
        if (deleted)
        {
            usage?.Release(principal.TenantId, size);
        }

        return deleted;
    }

    /// <summary>The stored size of the object (0 when there is none): what replacing or deleting it frees.</summary>
    private async Task<long> SizeAsync(ObjectKey key, CancellationToken cancellationToken)
    {
        await using var existing = await provider.GetAsync(key, cancellationToken);
        return existing?.Info.Size ?? 0;
    }

    /// <summary>
    /// Validates the key, then asks the evaluator; both kinds of refusal are audited. Completes
    /// synchronously unless the policy catalog has to be (re)loaded or a refusal is audited.
    /// </summary>
    internal ValueTask<ObjectKey> AuthoriseAsync(TenantPrincipal principal, string action, string key, bool prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(principal);
        ObjectKey objectKey;
        try
        {
            objectKey = prefix ? ObjectKeys.ParsePrefix(key) : ObjectKeys.Parse(key);
        }
        catch (InvalidObjectKeyException ex)
        {
            return KeyRefusedAsync(principal, action, key, ex, cancellationToken);
        }

        var policies = catalog.ForAsync(principal, cancellationToken);
        return policies.IsCompletedSuccessfully
            ? Decide(principal, action, objectKey, prefix, policies.Result, cancellationToken)
            : DecideAfterAsync(principal, action, objectKey, prefix, policies, cancellationToken);
    }

    private async ValueTask<ObjectKey> DecideAfterAsync(TenantPrincipal principal, string action, ObjectKey objectKey, bool prefix, ValueTask<PrincipalPolicies> policies, CancellationToken cancellationToken) =>
        await Decide(principal, action, objectKey, prefix, await policies, cancellationToken);

    private ValueTask<ObjectKey> Decide(TenantPrincipal principal, string action, ObjectKey objectKey, bool prefix, PrincipalPolicies policies, CancellationToken cancellationToken)
    {
        // A listing adds its prefix to the context; the other calls ask with the principal's own,
        // whose conditions the bound set has decided already, and the resource name composed on
        // the stack (a key is at most 1024 characters): an allowed read allocates nothing here.
        PolicyDecision decision;
        if (prefix)
        {
            decision = policies.Set.Evaluate(new AccessRequest(action, ObjectResourceName.Of(objectKey), policies.Context.With("storage:prefix", objectKey.FullKey)));
        }
        else
        {
            var length = ObjectResourceName.Length(objectKey);
            var buffer = length <= 1200 ? stackalloc char[length] : new char[length];
            decision = policies.Bound.Evaluate(action, ObjectResourceName.Write(objectKey, buffer));
        }

        return decision.IsAllowed
            ? new ValueTask<ObjectKey>(objectKey)
            : DeniedAsync(principal, action, ObjectResourceName.Of(objectKey), decision, cancellationToken);
    }

    private async ValueTask<ObjectKey> KeyRefusedAsync(TenantPrincipal principal, string action, string key, InvalidObjectKeyException refusal, CancellationToken cancellationToken)
    {
        Log.KeyRefused(logger, principal.TenantId, action, refusal.Reason);
        await AuditAsync(principal, action, "rejected", new JsonObject
        {
            ["key"] = key is { Length: > 300 } ? key[..300] + "…" : key,
            ["reason"] = refusal.Reason,
        }, cancellationToken);
        ExceptionDispatchInfo.Throw(refusal);
        return default;
    }

    private async Task RefuseExportsAsync(TenantPrincipal principal, string action, ObjectKey key, CancellationToken cancellationToken)
    {
        var path = key.PathSpan;
        if (path.SequenceEqual(ObjectKeys.ExportsFolder) || path.StartsWith(ObjectKeys.ExportsFolder + "/", StringComparison.Ordinal))
        {
            const string reason = "exports/ holds the platform's data exports; it is read-only.";
            await AuditAsync(principal, action, "rejected", new JsonObject { ["key"] = key.FullKey, ["reason"] = reason }, cancellationToken);
            throw new InvalidObjectKeyException(reason);
        }
    }

    private async ValueTask<ObjectKey> DeniedAsync(TenantPrincipal principal, string action, string resource, PolicyDecision decision, CancellationToken cancellationToken)
    {
        Log.Denied(logger, principal.TenantId, action, resource, decision.Decision, decision.DecidedBy?.Policy, decision.DecidedBy?.Sid);
        await AuditAsync(principal, action, "denied", new JsonObject
        {
            ["resource"] = resource,
            ["decision"] = decision.Decision.ToString(),
            ["policy"] = decision.DecidedBy?.Policy,
            ["sid"] = decision.DecidedBy?.Sid,
            ["statement"] = decision.DecidedBy?.Path,
            ["missingAllow"] = decision.MissingAllow?.ToString().ToLowerInvariant(),
            ["principal"] = principal.Name,
            ["role"] = principal.Role,
        }, cancellationToken);
        throw new StorageAccessDeniedException(action, resource, decision);
    }

    private Task AuditAsync(TenantPrincipal principal, string action, string outcome, JsonObject detail, CancellationToken cancellationToken) =>
        db.WriteAsync((c, tx) => AuditLog.AppendAsync(c, tx, new AuditEvent
        {
            Id = Guid.NewGuid(),
            Time = time.GetUtcNow(),
            Actor = principal.Name,
            TenantId = principal.TenantId,
            Action = action,
            Outcome = outcome,
            Detail = detail,
        }), cancellationToken);

    private static partial class Log
    {
        [LoggerMessage(EventId = 7001, Level = LogLevel.Warning, Message = "Storage {Action} on {Resource} for tenant {TenantId}: {Decision} by {Policy}/{Sid}")]
        public static partial void Denied(ILogger logger, Guid tenantId, string action, string resource, Decision decision, string? policy, string? sid);

        [LoggerMessage(EventId = 7002, Level = LogLevel.Warning, Message = "Storage {Action} for tenant {TenantId} refused: {Reason}")]
        public static partial void KeyRefused(ILogger logger, Guid tenantId, string action, string reason);
    }
}
