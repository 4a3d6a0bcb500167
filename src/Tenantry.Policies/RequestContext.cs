namespace Tenantry.Policies;

/// <summary>
/// The condition keys of a request (<c>aws:username</c>, <c>aws:PrincipalTag/TenantId</c>,
/// <c>aws:TagKeys</c>…). Keys are case-insensitive, as in IAM; a key may hold several values.
/// Build one per principal and reuse it across requests.
/// </summary>
public sealed class RequestContext : IPolicyVariables
{
    private readonly Dictionary<string, string[]> _values;

    public RequestContext()
        : this(new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase))
    {
    }

    private RequestContext(Dictionary<string, string[]> values) => _values = values;

    public static RequestContext Empty { get; } = new();

    public int Count => _values.Count;

    public IEnumerable<KeyValuePair<string, string[]>> Values => _values;

    public RequestContext Set(string key, params string[] values)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(values);
        _values[key] = values;
        return this;
    }

    /// <summary>A copy with one more key: the principal's context stays shared and unchanged.</summary>
    public RequestContext With(string key, params string[] values) =>
        new RequestContext(new Dictionary<string, string[]>(_values, StringComparer.OrdinalIgnoreCase)).Set(key, values);

    /// <summary>A copy of the keys and values, independent of later changes to this one.</summary>
    public RequestContext Copy() => new(_values.ToDictionary(v => v.Key, v => v.Value.ToArray(), StringComparer.OrdinalIgnoreCase));

    public bool TryGetValues(string key, out string[] values) => _values.TryGetValue(key, out values!);

    public bool TryGetVariable(string key, out string value)
    {
        if (_values.TryGetValue(key, out var values) && values.Length == 1)
        {
            value = values[0];
            return true;
        }

        value = "";
        return false;
    }
}

/// <summary>What is asked: an action on a resource, with the context keys of the caller.</summary>
public readonly record struct AccessRequest(string Action, string Resource, RequestContext Context);
