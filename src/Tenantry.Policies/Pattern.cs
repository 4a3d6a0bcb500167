namespace Tenantry.Policies;

/// <summary>Where policy variables (<c>${aws:username}</c>) take their values from.</summary>
public interface IPolicyVariables
{
    /// <summary>The single value of <paramref name="key"/>; false when it is missing or multi-valued.</summary>
    bool TryGetVariable(string key, out string value);
}

/// <summary>
/// A compiled IAM pattern: literal text, <c>*</c> (any run), <c>?</c> (one character) and policy
/// variables. Compiled once per policy; matching allocates nothing and uses no regular expression.
/// A variable without a value (and without a default) makes the pattern match nothing.
/// </summary>
internal sealed class Pattern
{
    private readonly Token[][] _segments;
    private readonly bool _leadingStar;
    private readonly bool _trailingStar;
    private readonly bool _hasStar;
    private readonly StringComparison _comparison;
    private readonly bool _matchesNothing;

    // The two commonest shapes, matched without walking tokens: "literal*" (a prefix) and "literal".
    private readonly string? _prefix;
    private readonly string? _exact;

    private Pattern(string source, Token[][] segments, bool leadingStar, bool trailingStar, bool hasStar, bool ignoreCase, bool matchesNothing = false)
    {
        Source = source;
        _matchesNothing = matchesNothing;
        _segments = segments;
        _leadingStar = leadingStar;
        _trailingStar = trailingStar;
        _hasStar = hasStar;
        _comparison = ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        IsMatchAll = hasStar && segments.Length == 0 && !matchesNothing;
        if (!matchesNothing && segments is [[{ Kind: TokenKind.Literal } only]] && !leadingStar)
        {
            if (trailingStar)
            {
                _prefix = only.Text;
            }
            else if (!hasStar)
            {
                _exact = only.Text;
            }
        }
    }

    public string Source { get; }

    public bool IsMatchAll { get; }

    /// <param name="wildcards">Whether <c>*</c> and <c>?</c> are wildcards (Like operators, Action, Resource) or plain text (Equals operators).</param>
    /// <param name="variables">Whether <c>${…}</c> is a policy variable (documents of version 2012-10-17).</param>
    public static Pattern Compile(string source, bool ignoreCase, bool wildcards = true, bool variables = true)
    {
        ArgumentNullException.ThrowIfNull(source);
        var segments = new List<Token[]>();
        var current = new List<Token>();
        var literal = new System.Text.StringBuilder();
        bool leading = false, trailing = false, hasStar = false;

        void FlushLiteral()
        {
            if (literal.Length > 0)
            {
                current.Add(new Token(TokenKind.Literal, literal.ToString(), null));
                literal.Clear();
            }
        }

        for (var i = 0; i < source.Length; i++)
        {
            var c = source[i];
            if (wildcards && c == '*')
            {
                FlushLiteral();
                hasStar = true;
                if (current.Count == 0 && segments.Count == 0)
                {
                    leading = true;
                }
                else if (current.Count > 0)
                {
                    segments.Add([.. current]);
                    current.Clear();
                }

                trailing = true;
                continue;
            }

            trailing = false;
            if (wildcards && c == '?')
            {
                FlushLiteral();
                current.Add(new Token(TokenKind.One, "", null));
                continue;
            }

            if (variables && c == '$' && i + 1 < source.Length && source[i + 1] == '{' && PolicyVariable.TryRead(source, i, out var variable, out var end))
            {
                if (variable.Key is "*" or "?" or "$")
                {
                    literal.Append(variable.Key); // ${*}, ${?}, ${$}: the character itself, never a wildcard.
                }
                else
                {
                    FlushLiteral();
                    current.Add(new Token(TokenKind.Variable, variable.Key, variable.Default));
                }

                i = end;
                continue;
            }

            literal.Append(c);
        }

        FlushLiteral();
        if (current.Count > 0)
        {
            segments.Add([.. current]);
        }

        return new Pattern(source, [.. segments], leading, trailing && hasStar, hasStar, ignoreCase);
    }

    public bool IsMatch(string text, IPolicyVariables? variables) => IsMatch(text.AsSpan(), variables);

    public bool IsMatch(ReadOnlySpan<char> span, IPolicyVariables? variables)
    {
        if (IsMatchAll)
        {
            return true;
        }

        if (_prefix is not null)
        {
            return span.StartsWith(_prefix, _comparison);
        }

        if (_exact is not null)
        {
            return span.Equals(_exact, _comparison);
        }

        if (_matchesNothing)
        {
            return false;
        }

        int start = 0, end = span.Length, first = 0, last = _segments.Length;
        if (!_leadingStar)
        {
            if (last == 0 || !MatchAt(_segments[0], span, 0, end, variables, out var length))
            {
                return last == 0 && span.Length == 0;
            }

            start = length;
            first = 1;
            if (!_hasStar)
            {
                return start == end;
            }
        }

        if (!_trailingStar && last > first)
        {
            var length = Length(_segments[last - 1], variables);
            if (length < 0 || end - length < start || !MatchAt(_segments[last - 1], span, end - length, end, variables, out _))
            {
                return false;
            }

            end -= length;
            last--;
        }
        else if (!_trailingStar && start != end)
        {
            return false;
        }

        for (var s = first; s < last; s++)
        {
            var segment = _segments[s];
            var found = false;
            for (var at = start; at <= end; at++)
            {
                // A segment that starts with literal text can only match where that text is: jump there.
                if (segment[0].Kind == TokenKind.Literal)
                {
                    var next = span[at..end].IndexOf(segment[0].Text, _comparison);
                    if (next < 0)
                    {
                        break;
                    }

                    at += next;
                }

                if (MatchAt(segment, span, at, end, variables, out var length))
                {
                    start = at + length;
                    found = true;
                    break;
                }
            }

            if (!found)
            {
                return false;
            }
        }

        return start <= end;
    }

    /// <summary>
    /// The pattern with its variables replaced by their values in <paramref name="variables"/>, as
    /// literal text (a value's <c>*</c> or <c>?</c> is no wildcard, as when matching); it then
    /// matches exactly what this pattern matches with those variables, without reading them again.
    /// A variable without a value gives a pattern that matches nothing. (A pattern with an empty
    /// value in a segment of its own comes back as it is, still reading the variables.)
    /// </summary>
    public Pattern Resolve(IPolicyVariables? variables)
    {
        if (!_segments.Any(segment => segment.Any(t => t.Kind == TokenKind.Variable)))
        {
            return this;
        }

        var segments = new Token[_segments.Length][];
        for (var s = 0; s < _segments.Length; s++)
        {
            var tokens = new List<Token>();
            foreach (var token in _segments[s])
            {
                var resolved = token;
                if (token.Kind == TokenKind.Variable)
                {
                    if (!TryResolve(token, variables, out var value))
                    {
                        return new Pattern(Source, [], false, false, false, _comparison == StringComparison.OrdinalIgnoreCase, matchesNothing: true);
                    }

                    resolved = new Token(TokenKind.Literal, value, null);
                }

                if (resolved.Kind == TokenKind.Literal && tokens.Count > 0 && tokens[^1].Kind == TokenKind.Literal)
                {
                    tokens[^1] = new Token(TokenKind.Literal, tokens[^1].Text + resolved.Text, null);
                }
                else
                {
                    tokens.Add(resolved);
                }
            }

            // A segment reduced to empty text (an empty value) is left to the variable-reading
            // matcher, which this pattern still is: the caller passes the same variables anyway.
            if (tokens.All(t => t.Kind == TokenKind.Literal && t.Text.Length == 0))
            {
                return this;
            }

            segments[s] = [.. tokens.Where(t => t.Kind != TokenKind.Literal || t.Text.Length > 0)];
        }

        return new Pattern(Source, segments, _leadingStar, _trailingStar, _hasStar, _comparison == StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Whether any variable of the pattern has no value (the pattern then matches nothing).</summary>
    public bool HasUnresolvedVariable(IPolicyVariables? variables)
    {
        foreach (var segment in _segments)
        {
            foreach (var token in segment)
            {
                if (token.Kind == TokenKind.Variable && !TryResolve(token, variables, out _))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private bool MatchAt(Token[] segment, ReadOnlySpan<char> text, int at, int end, IPolicyVariables? variables, out int length)
    {
        var p = at;
        length = 0;
        foreach (var token in segment)
        {
            switch (token.Kind)
            {
                case TokenKind.One:
                    if (p >= end)
                    {
                        return false;
                    }

                    p++;
                    break;
                case TokenKind.Literal:
                    if (end - p < token.Text.Length || !text.Slice(p, token.Text.Length).Equals(token.Text, _comparison))
                    {
                        return false;
                    }

                    p += token.Text.Length;
                    break;
                default:
                    if (!TryResolve(token, variables, out var value) || end - p < value.Length || !text.Slice(p, value.Length).Equals(value, _comparison))
                    {
                        return false;
                    }

                    p += value.Length;
                    break;
            }
        }

        length = p - at;
        return true;
    }

    private static int Length(Token[] segment, IPolicyVariables? variables)
    {
        var length = 0;
        foreach (var token in segment)
        {
            if (token.Kind == TokenKind.Variable)
            {
                if (!TryResolve(token, variables, out var value))
                {
                    return -1;
                }

                length += value.Length;
            }
            else
            {
                length += token.Kind == TokenKind.One ? 1 : token.Text.Length;
            }
        }

        return length;
    }

    private static bool TryResolve(Token token, IPolicyVariables? variables, out string value)
    {
        if (variables is not null && variables.TryGetVariable(token.Text, out value!))
        {
            return true;
        }

        value = token.Default!;
        return token.Default is not null;
    }

    public override string ToString() => Source;

    private enum TokenKind : byte
    {
        Literal,
        One,
        Variable,
    }

    private readonly record struct Token(TokenKind Kind, string Text, string? Default);
}

/// <summary>A <c>${key}</c> or <c>${key, 'default'}</c> reference inside a policy string.</summary>
public readonly record struct PolicyVariable(string Key, string? Default)
{
    /// <summary>Reads the variable starting at <paramref name="start"/> (the <c>$</c>); <paramref name="end"/> is its closing brace.</summary>
    public static bool TryRead(string text, int start, out PolicyVariable variable, out int end)
    {
        ArgumentNullException.ThrowIfNull(text);
        variable = default;
        end = text.IndexOf('}', start + 2);
        if (end < 0)
        {
            return false;
        }

        var inner = text.AsSpan(start + 2, end - start - 2);
        var comma = inner.IndexOf(',');
        if (comma < 0)
        {
            var key = inner.Trim();
            if (key.IsEmpty)
            {
                return false;
            }

            variable = new PolicyVariable(key.ToString(), null);
            return true;
        }

        var name = inner[..comma].Trim();
        var fallback = inner[(comma + 1)..].Trim();
        if (name.IsEmpty || fallback.Length < 2 || fallback[0] != '\'' || fallback[^1] != '\'')
        {
            return false;
        }

        variable = new PolicyVariable(name.ToString(), fallback[1..^1].ToString());
        return true;
    }
}

/// <summary>IAM wildcard matching (<c>*</c>, <c>?</c>) for callers outside the evaluator.</summary>
public static class Wildcards
{
    public static bool IsMatch(string pattern, string text, bool ignoreCase)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Pattern.Compile(pattern, ignoreCase, wildcards: true, variables: false).IsMatch(text, null);
    }
}
