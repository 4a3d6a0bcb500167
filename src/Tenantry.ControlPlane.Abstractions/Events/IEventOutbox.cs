using System.Data.Common;
using System.Text.Json.Nodes;

namespace Tenantry.ControlPlane.Events;

/// <summary>
/// One fact the control plane publishes (docs/events.md): a CloudEvents 1.0 event once delivered.
/// <see cref="Key"/> is its id; an event whose key is already in the outbox is not written again.
/// </summary>
/// <param name="Type">A type of the catalog (<see cref="EventTypes"/>).</param>
/// <param name="TenantId">The tenant it is about (the CloudEvent's <c>subject</c>); null for none.</param>
/// <param name="Data">The event's <c>data</c>.</param>
/// <param name="Key">The event's id; a new one when null. Give one when the same fact may be raised twice.</param>
public sealed record OutboxEvent(string Type, Guid? TenantId, JsonObject Data, string? Key = null);

/// <summary>
/// The outbox of control-plane events. Every feature that changes state appends its event in the
/// transaction of the change, so an event is written exactly when its change commits; the Events
/// feature reads the outbox and delivers it (webhooks), at least once.
/// </summary>
public interface IEventOutbox
{
    /// <summary>Appends <paramref name="e"/> in <paramref name="transaction"/>; false when its key was already there.</summary>
    Task<bool> AppendAsync(DbConnection connection, DbTransaction transaction, OutboxEvent e, DateTimeOffset now);
}

/// <summary>The event types of the catalog (docs/events.md). Webhook filters name these, with <c>*</c> wildcards.</summary>
public static class EventTypes
{
    public const string TenantCreated = "tenant.created";
    public const string TenantActivated = "tenant.activated";
    public const string TenantSuspended = "tenant.suspended";
    public const string TenantReactivated = "tenant.reactivated";
    public const string TenantTierChanged = "tenant.tier-changed";
    public const string TenantMoved = "tenant.moved";
    public const string TenantOffboarding = "tenant.offboarding";
    public const string TenantOffboarded = "tenant.offboarded";
    public const string TenantFailed = "tenant.failed";
    public const string TenantRetrying = "tenant.retrying";
    public const string OperationSucceeded = "operation.succeeded";
    public const string OperationFailed = "operation.failed";
    public const string QuotaExceeded = "quota.exceeded";
    public const string InvoiceFinalized = "invoice.finalized";
    public const string WebhookDisabled = "webhook.disabled";

    /// <summary>Every type, in catalog order.</summary>
    public static IReadOnlyList<string> All { get; } =
    [
        TenantCreated, TenantActivated, TenantSuspended, TenantReactivated, TenantTierChanged, TenantMoved, TenantOffboarding, TenantOffboarded,
        TenantFailed, TenantRetrying, OperationSucceeded, OperationFailed, QuotaExceeded, InvoiceFinalized, WebhookDisabled,
    ];
}
