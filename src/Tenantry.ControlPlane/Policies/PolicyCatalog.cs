using System.Collections.Concurrent;
using Tenantry.ControlPlane.Database;
using Tenantry.Policies;

namespace Tenantry.ControlPlane.Policies;

/// <summary>
/// The policies that apply to a principal, compiled once and kept with its context; <see cref="Bound"/>
/// has the conditions decided for that context (get, put and delete ask with it unchanged).
/// </summary>
public sealed record PrincipalPolicies(PolicySet Set, RequestContext Context)
{
    public BoundPolicySet Bound { get; } = Set.Bind(Context);
}

/// <summary>
/// Guardrails and tier templates read from the store and compiled, cached in memory. A change
/// through this process applies at once; one made by another replica within <see cref="MaxAge"/>.
/// </summary>
public sealed class PolicyCatalog(IControlPlaneDatabase db, TimeProvider time)
{
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);

    private Snapshot? _snapshot;

    /// <summary>The principal's policies; synchronous (no state machine) while the cached snapshot is fresh.</summary>
    public ValueTask<PrincipalPolicies> ForAsync(TenantPrincipal principal, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(principal);
        var snapshot = _snapshot;
        return snapshot is null || snapshot.IsStale
            ? ReloadThenForAsync(principal, cancellationToken)
            : new ValueTask<PrincipalPolicies>(For(snapshot, principal));
    }

    private async ValueTask<PrincipalPolicies> ReloadThenForAsync(TenantPrincipal principal, CancellationToken cancellationToken) =>
        For(await LoadAsync(cancellationToken), principal);

    private static PrincipalPolicies For(Snapshot snapshot, TenantPrincipal principal) =>
        snapshot.Principals.GetOrAdd(principal, static (p, s) => Build(s, p), snapshot);

    public async Task<IReadOnlyList<StoredPolicy>> GuardrailsAsync(CancellationToken cancellationToken = default) =>
        (await LoadAsync(cancellationToken)).Guardrails;

    /// <summary>The template text for a tier: the operator's, or the built-in default.</summary>
    public async Task<(string Document, bool IsDefault)> TemplateAsync(string tier, CancellationToken cancellationToken = default)
    {
        var snapshot = await LoadAsync(cancellationToken);
        return snapshot.Templates.TryGetValue(tier, out var stored) ? (stored.Document, false) : (PlatformPolicies.DefaultTemplate, true);
    }

    public async Task<IReadOnlyList<StoredPolicy>> TemplatesAsync(CancellationToken cancellationToken = default) =>
        [.. (await LoadAsync(cancellationToken)).Templates.Values.OrderBy(t => t.Name, StringComparer.Ordinal)];

    /// <summary>The session policy document of a tenant, from its tier's template.</summary>
    public async Task<string> SessionDocumentAsync(Guid tenantId, string slug, string tier, CancellationToken cancellationToken = default)
    {
        var (template, _) = await TemplateAsync(tier, cancellationToken);
        return PlatformPolicies.Render(template, slug, tenantId, tier);
    }

    public void Invalidate() => _snapshot = null;

    private async Task<Snapshot> LoadAsync(CancellationToken cancellationToken)
    {
        var rows = await db.ReadAsync(c => PolicyStore.ListAsync(c, null), cancellationToken);
        var guardrails = rows.Where(r => r.Kind == PolicyStore.GuardrailKind).ToList();
        var snapshot = new Snapshot(
            guardrails,
            rows.Where(r => r.Kind == PolicyStore.TemplateKind).ToDictionary(r => r.Name, StringComparer.Ordinal),
            [.. guardrails.Select(g => CompiledPolicy.Compile("guardrail:" + g.Name, PolicyKind.Guardrail, PolicyParser.ParseOrThrow(g.Document)))]);
        // Aged by a timer rather than by reading the clock on every storage call.
        snapshot.Expiry = time.CreateTimer(static s => ((Snapshot)s!).IsStale = true, snapshot, MaxAge, Timeout.InfiniteTimeSpan);
        var previous = Interlocked.Exchange(ref _snapshot, snapshot);
        previous?.Expiry?.Dispose();
        return snapshot;
    }

    private static PrincipalPolicies Build(Snapshot snapshot, TenantPrincipal principal)
    {
        var template = snapshot.Templates.TryGetValue(principal.Tier, out var stored) ? stored.Document : PlatformPolicies.DefaultTemplate;
        var session = PolicyParser.ParseOrThrow(PlatformPolicies.Render(template, principal.Slug, principal.TenantId, principal.Tier));
        var identity = PolicyParser.ParseOrThrow(PlatformPolicies.RolePolicy(principal.Role));
        var set = new PolicySet(
            [CompiledPolicy.Compile("role:" + principal.Role, PolicyKind.Identity, identity)],
            [CompiledPolicy.Compile("tier:" + principal.Tier, PolicyKind.Session, session)],
            snapshot.CompiledGuardrails);
        return new PrincipalPolicies(set, PlatformPolicies.Context(principal));
    }

    private sealed record Snapshot(
        IReadOnlyList<StoredPolicy> Guardrails,
        IReadOnlyDictionary<string, StoredPolicy> Templates,
        CompiledPolicy[] CompiledGuardrails)
    {
        public ConcurrentDictionary<TenantPrincipal, PrincipalPolicies> Principals { get; } = new(PrincipalComparer.Instance);

        /// <summary>Set <see cref="MaxAge"/> after loading; the next call then reloads.</summary>
        public bool IsStale
        {
            get => Volatile.Read(ref field);
            set => Volatile.Write(ref field, value);
        }

        public ITimer? Expiry { get; set; }
    }

    /// <summary>
    /// Looked up on every storage call: hashes the tenant id and the name only, where the record's
    /// own hash would hash all six fields; equality still compares all six.
    /// </summary>
    private sealed class PrincipalComparer : IEqualityComparer<TenantPrincipal>
    {
        public static readonly PrincipalComparer Instance = new();

        public bool Equals(TenantPrincipal? x, TenantPrincipal? y) => ReferenceEquals(x, y) || (x is not null && x.Equals(y));

        public int GetHashCode(TenantPrincipal obj) => HashCode.Combine(obj.TenantId, obj.Name);
    }
}
