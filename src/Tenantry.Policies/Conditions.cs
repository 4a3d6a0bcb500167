using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Tenantry.Policies;

/// <summary>
/// One compiled operator/key pair. Values are parsed once; evaluation parses only the request's
/// own values and allocates nothing. Semantics follow the IAM condition operator reference:
/// several values are OR-ed; a missing key fails every operator but the negated ones,
/// <c>…IfExists</c>, <c>ForAllValues</c> (vacuously true) and <c>Null</c>.
/// </summary>
internal sealed class CompiledCondition
{
    private readonly ConditionOperator _op;
    private readonly SetQualifier _qualifier;
    private readonly bool _ifExists;
    private readonly bool _negated;
    private readonly Pattern[] _patterns = [];
    private readonly double[] _numbers = [];
    private readonly DateTimeOffset[] _dates = [];
    private readonly bool[] _bools = [];
    private readonly IPNetwork[] _networks = [];
    private readonly ArnPattern[] _arns = [];
    private readonly byte[][] _binaries = [];

    public CompiledCondition(PolicyCondition condition, bool variables)
    {
        Source = condition;
        Key = condition.Key;
        _op = condition.BaseOperator;
        _qualifier = condition.Qualifier;
        _ifExists = condition.IfExists;
        _negated = ConditionOperators.IsNegated(_op);
        var values = condition.Values;
        switch (_op)
        {
            case ConditionOperator.StringEquals or ConditionOperator.StringNotEquals:
                _patterns = [.. values.Select(v => Pattern.Compile(v, ignoreCase: false, wildcards: false, variables))];
                break;
            case ConditionOperator.StringEqualsIgnoreCase or ConditionOperator.StringNotEqualsIgnoreCase:
                _patterns = [.. values.Select(v => Pattern.Compile(v, ignoreCase: true, wildcards: false, variables))];
                break;
            case ConditionOperator.StringLike or ConditionOperator.StringNotLike:
                _patterns = [.. values.Select(v => Pattern.Compile(v, ignoreCase: false, wildcards: true, variables))];
                break;
            case >= ConditionOperator.NumericEquals and <= ConditionOperator.NumericGreaterThanEquals:
                _numbers = [.. values.Select(v => ConditionValues.TryNumber(v, out var n) ? n : throw new FormatException(v))];
                break;
            case >= ConditionOperator.DateEquals and <= ConditionOperator.DateGreaterThanEquals:
                _dates = [.. values.Select(v => ConditionValues.TryDate(v, out var d) ? d : throw new FormatException(v))];
                break;
            case ConditionOperator.Bool or ConditionOperator.Null:
                _bools = [.. values.Select(v => ConditionValues.TryBool(v, out var b) ? b : throw new FormatException(v))];
                break;
            case ConditionOperator.BinaryEquals:
                _binaries = [.. values.Select(Convert.FromBase64String)];
                break;
            case ConditionOperator.IpAddress or ConditionOperator.NotIpAddress:
                _networks = [.. values.Select(v => ConditionValues.TryNetwork(v, out var n) ? n : throw new FormatException(v))];
                break;
            default:
                _arns = [.. values.Select(v => new ArnPattern(v, variables))];
                break;
        }
    }

    public PolicyCondition Source { get; }

    public string Key { get; }

    public bool Evaluate(RequestContext context)
    {
        var present = context.TryGetValues(Key, out var values) && values.Length > 0;
        if (_op == ConditionOperator.Null)
        {
            foreach (var wantsMissing in _bools)
            {
                if (wantsMissing != present)
                {
                    return true;
                }
            }

            return false;
        }

        if (!present)
        {
            return _ifExists || _qualifier == SetQualifier.ForAllValues || (_qualifier == SetQualifier.None && _negated);
        }

        switch (_qualifier)
        {
            case SetQualifier.ForAllValues:
                foreach (var value in values)
                {
                    if (!Test(value, context))
                    {
                        return false;
                    }
                }

                return true;
            case SetQualifier.ForAnyValue:
                foreach (var value in values)
                {
                    if (Test(value, context))
                    {
                        return true;
                    }
                }

                return false;
            default:
                // A single-valued operator on several values: a positive one needs any value to
                // match; a negated one needs every value to differ.
                foreach (var value in values)
                {
                    var ok = Test(value, context);
                    if (_negated && !ok)
                    {
                        return false;
                    }

                    if (!_negated && ok)
                    {
                        return true;
                    }
                }

                return _negated;
        }
    }

    /// <summary>The operator applied to one request value: true when it matches any policy value (negated: none).</summary>
    private bool Test(string value, RequestContext context) => _negated ? !MatchesAny(value, context) : MatchesAny(value, context);

    private bool MatchesAny(string value, RequestContext context)
    {
        switch (_op)
        {
            case <= ConditionOperator.StringNotLike:
                foreach (var pattern in _patterns)
                {
                    if (pattern.IsMatch(value, context))
                    {
                        return true;
                    }
                }

                return false;
            case >= ConditionOperator.NumericEquals and <= ConditionOperator.NumericGreaterThanEquals:
                if (!ConditionValues.TryNumber(value, out var number))
                {
                    return false;
                }

                foreach (var n in _numbers)
                {
                    if (Compare(number.CompareTo(n)))
                    {
                        return true;
                    }
                }

                return false;
            case >= ConditionOperator.DateEquals and <= ConditionOperator.DateGreaterThanEquals:
                if (!ConditionValues.TryDate(value, out var date))
                {
                    return false;
                }

                foreach (var d in _dates)
                {
                    if (Compare(date.CompareTo(d)))
                    {
                        return true;
                    }
                }

                return false;
            case ConditionOperator.Bool:
                return ConditionValues.TryBool(value, out var b) && Array.IndexOf(_bools, b) >= 0;
            case ConditionOperator.BinaryEquals:
                Span<byte> buffer = stackalloc byte[256];
                if (!Convert.TryFromBase64String(value, buffer, out var written))
                {
                    return false;
                }

                foreach (var binary in _binaries)
                {
                    if (buffer[..written].SequenceEqual(binary))
                    {
                        return true;
                    }
                }

                return false;
            case ConditionOperator.IpAddress or ConditionOperator.NotIpAddress:
                if (!IPAddress.TryParse(value, out var address))
                {
                    return false;
                }

                foreach (var network in _networks)
                {
                    if (network.Contains(address))
                    {
                        return true;
                    }
                }

                return false;
            default:
                foreach (var arn in _arns)
                {
                    if (arn.IsMatch(value, context))
                    {
                        return true;
                    }
                }

                return false;
        }
    }

    /// <summary>Reads the comparison of request value against policy value for the operator.</summary>
    private bool Compare(int order) => _op switch
    {
        ConditionOperator.NumericEquals or ConditionOperator.DateEquals => order == 0,
        ConditionOperator.NumericNotEquals or ConditionOperator.DateNotEquals => order == 0, // negation applied by Test
        ConditionOperator.NumericLessThan or ConditionOperator.DateLessThan => order < 0,
        ConditionOperator.NumericLessThanEquals or ConditionOperator.DateLessThanEquals => order <= 0,
        ConditionOperator.NumericGreaterThan or ConditionOperator.DateGreaterThan => order > 0,
        _ => order >= 0,
    };
}

/// <summary>Parsing of condition values shared by the compiler, the validator and evaluation.</summary>
public static class ConditionValues
{
    public static bool TryNumber(string text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    /// <summary>ISO 8601 (<c>2026-01-01T00:00:00Z</c>, <c>2026-01-01</c>) or epoch seconds, as IAM accepts.</summary>
    public static bool TryDate(string text, out DateTimeOffset value)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > 0 && char.IsAsciiDigit(text[0]) && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var epoch))
        {
            if (epoch is >= 0 and <= 253402300799)
            {
                value = DateTimeOffset.FromUnixTimeSeconds(epoch);
                return true;
            }

            value = default;
            return false;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value)
            && text.Length >= 10 && text[4] == '-';
    }

    public static bool TryBool(string text, out bool value)
    {
        if (string.Equals(text, "true", StringComparison.OrdinalIgnoreCase))
        {
            value = true;
            return true;
        }

        value = false;
        return string.Equals(text, "false", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>A CIDR block (<c>203.0.113.0/24</c>, <c>2001:db8::/32</c>) or one address.</summary>
    public static bool TryNetwork(string text, out IPNetwork network)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Contains('/', StringComparison.Ordinal))
        {
            // IAM accepts host bits set (10.1.2.3/8); IPNetwork.TryParse does not, so mask them.
            var slash = text.IndexOf('/', StringComparison.Ordinal);
            if (IPAddress.TryParse(text.AsSpan(0, slash), out var address)
                && int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var bits)
                && bits <= (address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128))
            {
                var bytes = address.GetAddressBytes();
                for (var i = 0; i < bytes.Length; i++)
                {
                    var keep = Math.Clamp(bits - (i * 8), 0, 8);
                    bytes[i] &= (byte)(0xFF << (8 - keep));
                }

                network = new IPNetwork(new IPAddress(bytes), bits);
                return true;
            }

            network = default;
            return false;
        }

        if (IPAddress.TryParse(text, out var single))
        {
            network = new IPNetwork(single, single.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }

        network = default;
        return false;
    }
}

/// <summary>
/// ARN matching for the Arn operators: six colon-separated parts compared part by part, each
/// with <c>*</c>/<c>?</c> wildcards (ArnEquals and ArnLike behave alike, as in IAM).
/// </summary>
internal sealed class ArnPattern
{
    private readonly Pattern[] _parts;

    public ArnPattern(string source, bool variables)
    {
        var parts = source.Split(':', 6);
        _parts = parts.Length == 6 ? [.. parts.Select(p => Pattern.Compile(p, ignoreCase: false, wildcards: true, variables))] : [];
    }

    public bool IsMatch(string arn, IPolicyVariables variables)
    {
        if (_parts.Length != 6)
        {
            return false;
        }

        var rest = arn.AsSpan();
        for (var i = 0; i < 5; i++)
        {
            var colon = rest.IndexOf(':');
            if (colon < 0 || !_parts[i].IsMatch(rest[..colon], variables))
            {
                return false;
            }

            rest = rest[(colon + 1)..];
        }

        return _parts[5].IsMatch(rest, variables);
    }
}
