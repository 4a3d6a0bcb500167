namespace Tenantry.ControlPlane.Events;

/// <summary>
/// The catalog of event types (docs/events.md) and the filters webhooks subscribe with: a type, or a
/// pattern with <c>*</c> standing for any run of characters (<c>tenant.*</c>, <c>*.failed</c>, <c>*</c>).
/// </summary>
public static class EventCatalog
{
    public const int MaxFilters = 50;
    public const int MaxFilterLength = 100;

    public static IReadOnlyDictionary<string, string> Types { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [EventTypes.TenantCreated] = "A tenant was accepted and its onboarding started (status provisioning).",
        [EventTypes.TenantActivated] = "Onboarding finished: the tenant is active.",
        [EventTypes.TenantSuspended] = "The tenant was suspended: its users, clients and routes are off.",
        [EventTypes.TenantReactivated] = "A suspended tenant is active again.",
        [EventTypes.TenantTierChanged] = "The tenant's tier changed.",
        [EventTypes.TenantMoved] = "The tenant moved to another cell (its data on the cell's servers).",
        [EventTypes.TenantOffboarding] = "Offboarding started: the tenant's data is being exported and removed.",
        [EventTypes.TenantOffboarded] = "Offboarding finished: the tenant's data is archived and its resources removed.",
        [EventTypes.TenantFailed] = "An operation failed and left the tenant failed; it can be retried or offboarded.",
        [EventTypes.TenantRetrying] = "A failed operation is retried: the tenant is back in the status the operation runs in.",
        [EventTypes.OperationSucceeded] = "An operation (onboarding, suspension, reactivation, offboarding) finished.",
        [EventTypes.OperationFailed] = "An operation failed at a step.",
        [EventTypes.QuotaExceeded] = "The tenant's usage passed a soft quota of its plan this month (once per meter and month).",
        [EventTypes.InvoiceFinalized] = "An invoice was finalized: its lines and total no longer change.",
        [EventTypes.WebhookDisabled] = "A webhook endpoint kept failing and was disabled.",
    };

    /// <summary>What is wrong with a filter, or null: a type of the catalog, or a pattern that matches at least one.</summary>
    public static string? CheckFilter(string? filter)
    {
        if (string.IsNullOrWhiteSpace(filter) || filter.Length > MaxFilterLength || filter.Any(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '.' or '-' or '*' or '_')))
        {
            return $"'{filter}' is not an event type: lowercase letters, digits, '.', '-', '_' and '*' as a wildcard, at most {MaxFilterLength} characters.";
        }

        return Types.Keys.Any(t => Matches(filter, t))
            ? null
            : $"'{filter}' matches no event type of the catalog (GET /v1/events/types): {string.Join(", ", Types.Keys)}.";
    }

    public static bool MatchesAny(IEnumerable<string> filters, string type) => filters.Any(f => Matches(f, type));

    /// <summary>Glob match where <c>*</c> is any run of characters and everything else is literal.</summary>
    public static bool Matches(string filter, string type)
    {
        ArgumentNullException.ThrowIfNull(filter);
        ArgumentNullException.ThrowIfNull(type);
        int f = 0, t = 0, star = -1, mark = 0;
        while (t < type.Length)
        {
            if (f < filter.Length && filter[f] == '*')
            {
                star = f++;
                mark = t;
            }
            else if (f < filter.Length && filter[f] == type[t])
            {
                f++;
                t++;
            }
            else if (star >= 0)
            {
                f = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (f < filter.Length && filter[f] == '*')
        {
            f++;
        }

        return f == filter.Length;
    }
}
