namespace Tenantry.Policies;

/// <summary>Which policies a set holds a document for: their role in the evaluation.</summary>
public enum PolicyKind
{
    Identity,
    Session,
    Guardrail,
}

public enum Decision
{
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// <summary>A statement that matched the request, named by its policy and Sid.</summary>
public sealed record MatchedStatement(string Policy, PolicyKind Kind, string? Sid, PolicyEffect Effect, string Path);

/// <summary>
/// The fast answer: the decision and the statement that decided it (the first explicit deny; for
/// an allow, the identity statement that allowed). For an implicit deny, <see cref="MissingAllow"/>
/// says which kind of policy had no allowing statement.
/// </summary>
public readonly record struct PolicyDecision(Decision Decision, MatchedStatement? DecidedBy, PolicyKind? MissingAllow)
{
    public bool IsAllowed => Decision == Decision.Allow;
}

/// <summary>Every statement that matched, for the simulator and audits.</summary>
public sealed record PolicyExplanation(Decision Decision, IReadOnlyList<MatchedStatement> Matched, PolicyKind? MissingAllow);

/// <summary>A policy document compiled for evaluation under a name (e.g. <c>guardrail:no-deletes</c>).</summary>
public sealed class CompiledPolicy
{
    internal CompiledPolicy(string name, PolicyKind kind, PolicyDocument document)
    {
        Name = name;
        Kind = kind;
        Document = document;
        Statements = [.. document.Statements.Select(s => new CompiledStatement(s, new MatchedStatement(name, kind, s.Sid, s.Effect, s.Path), document.SupportsVariables))];
    }

    public string Name { get; }

    public PolicyKind Kind { get; }

    public PolicyDocument Document { get; }

    internal CompiledStatement[] Statements { get; }

    public static CompiledPolicy Compile(string name, PolicyKind kind, PolicyDocument document)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(document);
        return new CompiledPolicy(name, kind, document);
    }
}

internal sealed class CompiledStatement
{
    private readonly Pattern[] _actions;
    private readonly bool _notAction;
    private readonly Pattern[] _resources;
    private readonly bool _notResource;
    private readonly CompiledCondition[] _conditions;

    public CompiledStatement(PolicyStatement statement, MatchedStatement reference, bool variables)
    {
        Effect = statement.Effect;
        Reference = reference;
        // Actions are case-insensitive and never hold variables; resources are case-sensitive.
        _actions = [.. statement.Actions.Select(a => Pattern.Compile(a, ignoreCase: true, wildcards: true, variables: false))];
        _notAction = statement.NotAction;
        _resources = [.. statement.Resources.Select(r => Pattern.Compile(r, ignoreCase: false, wildcards: true, variables))];
        _notResource = statement.NotResource;
        _conditions = [.. statement.Conditions.Select(c => new CompiledCondition(c, variables))];
    }

    private CompiledStatement(CompiledStatement source, Pattern[] resources)
    {
        Effect = source.Effect;
        Reference = source.Reference;
        _actions = source._actions;
        _notAction = source._notAction;
        _resources = resources;
        _notResource = source._notResource;
        _conditions = [];
    }

    public PolicyEffect Effect { get; }

    public MatchedStatement Reference { get; }

    /// <summary>
    /// The same statement for one fixed context, in which its conditions held: without them, and
    /// with the policy variables in its resources replaced by their values.
    /// </summary>
    public CompiledStatement BoundTo(RequestContext context)
    {
        var resources = _resources.Select(r => r.Resolve(context)).ToArray();
        return _conditions.Length == 0 && resources.SequenceEqual(_resources) ? this : new CompiledStatement(this, resources);
    }

    public bool ConditionsHold(RequestContext context)
    {
        foreach (var condition in _conditions)
        {
            if (!condition.Evaluate(context))
            {
                return false;
            }
        }

        return true;
    }

    public bool AdmitsAction(string action) => AnyMatch(_actions, action, null) != _notAction;

    public bool Matches(in AccessRequest request) => AdmitsAction(request.Action) && MatchesResourceAndConditions(request.Resource, request.Context);

    /// <summary>Whether the resource and the conditions match (conditions read only the context).</summary>
    public bool MatchesResourceAndConditions(ReadOnlySpan<char> resource, RequestContext context)
    {
        if (_notResource)
        {
            // A NotResource entry whose variable has no value matches nothing, so it excludes nothing.
            if (AnyMatch(_resources, resource, context))
            {
                return false;
            }
        }
        else if (!AnyMatch(_resources, resource, context))
        {
            return false;
        }

        foreach (var condition in _conditions)
        {
            if (!condition.Evaluate(context))
            {
                return false;
            }
        }

        return true;
    }

    private static bool AnyMatch(Pattern[] patterns, ReadOnlySpan<char> text, IPolicyVariables? variables)
    {
        foreach (var pattern in patterns)
        {
            if (pattern.IsMatch(text, variables))
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>
/// The policies that apply to a principal: identity policies, an optional session policy and
/// optional guardrails (SCP-like). Evaluation follows the IAM policy evaluation logic
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
/// an explicit deny in any policy wins; otherwise the request is allowed only when the guardrails
/// (if any) allow it, the session policy (if any) allows it and an identity policy allows it.
/// Immutable and thread-safe; build once, evaluate many times.
/// </summary>
public sealed class PolicySet
{
    private readonly CompiledStatement[] _identity;
    private readonly CompiledStatement[]? _session;
    private readonly CompiledStatement[]? _guardrails;

    // Per action, the statements whose Action/NotAction admits it: evaluation then skips the rest.
    private readonly ActionTable<Relevant> _byAction = new();

    public PolicySet(IEnumerable<CompiledPolicy> identity, IEnumerable<CompiledPolicy>? session = null, IEnumerable<CompiledPolicy>? guardrails = null)
    {
        ArgumentNullException.ThrowIfNull(identity);
        Identity = [.. identity];
        Session = session is null ? [] : [.. session];
        Guardrails = guardrails is null ? [] : [.. guardrails];
        _identity = [.. Identity.SelectMany(p => p.Statements)];
        _session = Session.Count == 0 ? null : [.. Session.SelectMany(p => p.Statements)];
        _guardrails = Guardrails.Count == 0 ? null : [.. Guardrails.SelectMany(p => p.Statements)];
    }

    public IReadOnlyList<CompiledPolicy> Identity { get; }

    public IReadOnlyList<CompiledPolicy> Session { get; }

    public IReadOnlyList<CompiledPolicy> Guardrails { get; }

    /// <summary>The decision and its deciding statement; allocates nothing.</summary>
    public PolicyDecision Evaluate(in AccessRequest request)
    {
        ArgumentNullException.ThrowIfNull(request.Action);
        ArgumentNullException.ThrowIfNull(request.Resource);
        ArgumentNullException.ThrowIfNull(request.Context);
        return Decide(RelevantTo(request.Action), request.Resource, request.Context);
    }

    /// <summary>
    /// This set bound to one request context (a principal's), whose conditions are then decided
    /// once per action instead of on every request. See <see cref="BoundPolicySet"/>.
    /// </summary>
    public BoundPolicySet Bind(RequestContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new BoundPolicySet(this, context);
    }

    internal static PolicyDecision Decide(Relevant relevant, ReadOnlySpan<char> resource, RequestContext context)
    {
        if ((First(relevant.GuardrailDenies, resource, context) ?? First(relevant.SessionDenies, resource, context) ?? First(relevant.IdentityDenies, resource, context)) is { } deny)
        {
            return new PolicyDecision(Decision.ExplicitDeny, deny, null);
        }

        if (relevant.GuardrailAllows is not null && First(relevant.GuardrailAllows, resource, context) is null)
        {
            return new PolicyDecision(Decision.ImplicitDeny, null, PolicyKind.Guardrail);
        }

        if (relevant.SessionAllows is not null && First(relevant.SessionAllows, resource, context) is null)
        {
            return new PolicyDecision(Decision.ImplicitDeny, null, PolicyKind.Session);
        }

        return First(relevant.IdentityAllows, resource, context) is { } allow
            ? new PolicyDecision(Decision.Allow, allow, null)
            : new PolicyDecision(Decision.ImplicitDeny, null, PolicyKind.Identity);
    }

    /// <summary>The decision with every statement that matched (denies when denied, allows when allowed).</summary>
    public PolicyExplanation Explain(in AccessRequest request)
    {
        var decision = Evaluate(request);
        var matched = new List<MatchedStatement>();
        var effect = decision.Decision == Decision.ExplicitDeny ? PolicyEffect.Deny : PolicyEffect.Allow;
        foreach (var statements in new[] { _identity, _session, _guardrails })
        {
            if (statements is null)
            {
                continue;
            }

            foreach (var statement in statements)
            {
                if (statement.Effect == effect && statement.Matches(request))
                {
                    matched.Add(statement.Reference);
                }
            }
        }

        return new PolicyExplanation(decision.Decision, matched, decision.MissingAllow);
    }

    internal Relevant RelevantTo(string action) => _byAction.Get(action, this, static (set, a) => new Relevant(
        Filter(set._identity, a, PolicyEffect.Deny), Filter(set._identity, a, PolicyEffect.Allow)!,
        Filter(set._session, a, PolicyEffect.Deny), Filter(set._session, a, PolicyEffect.Allow),
        Filter(set._guardrails, a, PolicyEffect.Deny), Filter(set._guardrails, a, PolicyEffect.Allow)));

    /// <summary>
    /// The statements of one effect that can match the action. A policy kind that is absent stays
    /// null, so a session policy or guardrail that is present but allows nothing still denies.
    /// </summary>
    private static CompiledStatement[]? Filter(CompiledStatement[]? statements, string action, PolicyEffect effect) =>
        statements is null ? null : [.. statements.Where(s => s.Effect == effect && s.AdmitsAction(action))];

    internal sealed record Relevant(
        CompiledStatement[]? IdentityDenies, CompiledStatement[] IdentityAllows,
        CompiledStatement[]? SessionDenies, CompiledStatement[]? SessionAllows,
        CompiledStatement[]? GuardrailDenies, CompiledStatement[]? GuardrailAllows)
    {
        /// <summary>The statements whose conditions hold in <paramref name="context"/>, stripped of them.</summary>
        public Relevant Bind(RequestContext context) => new(
            Keep(IdentityDenies, context), Keep(IdentityAllows, context)!,
            Keep(SessionDenies, context), Keep(SessionAllows, context),
            Keep(GuardrailDenies, context), Keep(GuardrailAllows, context));

        private static CompiledStatement[]? Keep(CompiledStatement[]? statements, RequestContext context) =>
            statements is null ? null : [.. statements.Where(s => s.ConditionsHold(context)).Select(s => s.BoundTo(context))];
    }

    /// <summary>The first statement that matches resource and conditions (its action is known to match).</summary>
    private static MatchedStatement? First(CompiledStatement[]? statements, ReadOnlySpan<char> resource, RequestContext context)
    {
        if (statements is null)
        {
            return null;
        }

        foreach (var statement in statements)
        {
            if (statement.MatchesResourceAndConditions(resource, context))
            {
                return statement.Reference;
            }
        }

        return null;
    }
}

/// <summary>
/// A <see cref="PolicySet"/> bound to one request context, typically a principal's. Conditions
/// only read the context, so with the context fixed each statement's conditions have one answer:
/// they are decided once per action, and an evaluation only matches the action and the resource.
/// The decision is exactly the set's for a request with this context — time or source-IP
/// conditions included, since their keys are in the context or not once and for all. Requests
/// whose context differs (a listing's <c>storage:prefix</c>, a request's own time or address) go
/// to <see cref="PolicySet.Evaluate"/>. The context is copied, so later changes to it do not apply.
/// </summary>
public sealed class BoundPolicySet
{
    private readonly PolicySet _set;
    private readonly ActionTable<PolicySet.Relevant> _byAction = new();

    internal BoundPolicySet(PolicySet set, RequestContext context)
    {
        _set = set;
        Context = context.Copy();
    }

    /// <summary>The context every evaluation of this set uses.</summary>
    public RequestContext Context { get; }

    /// <summary>The decision for the action on the resource, with <see cref="Context"/>; allocates nothing.</summary>
    public PolicyDecision Evaluate(string action, string resource)
    {
        ArgumentNullException.ThrowIfNull(resource);
        return Evaluate(action, resource.AsSpan());
    }

    /// <summary>
    /// The same for a resource name the caller has composed in a buffer, so a hot path need not
    /// allocate the name as a string just to have it matched.
    /// </summary>
    public PolicyDecision Evaluate(string action, ReadOnlySpan<char> resource)
    {
        ArgumentNullException.ThrowIfNull(action);
        return PolicySet.Decide(RelevantTo(action), resource, Context);
    }

    private PolicySet.Relevant RelevantTo(string action) =>
        _byAction.Get(action, this, static (bound, a) => bound._set.RelevantTo(a).Bind(bound.Context));
}

/// <summary>
/// What a set keeps per action. Actions are a small, fixed vocabulary, so the table stays small (it
/// is bounded anyway); the platform asks with the same few constant strings, found by reference
/// first without hashing. The recent list is replaced whole, so readers never see it torn.
/// </summary>
internal sealed class ActionTable<T>
    where T : class
{
    private const int MaxActions = 512;
    private const int MaxRecent = 8;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, T> _byAction = new(StringComparer.OrdinalIgnoreCase);
    private (string Action, T Value)[] _recent = [];

    public T Get<TState>(string action, TState state, Func<TState, string, T> build)
    {
        var recent = Volatile.Read(ref _recent);
        foreach (var entry in recent)
        {
            if (ReferenceEquals(entry.Action, action))
            {
                return entry.Value;
            }
        }

        if (!_byAction.TryGetValue(action, out var value))
        {
            value = build(state, action);
            if (_byAction.Count < MaxActions)
            {
                _byAction.TryAdd(action, value);
            }
        }

        if (recent.Length < MaxRecent)
        {
            Volatile.Write(ref _recent, [.. recent, (action, value)]);
        }

        return value;
    }
}
