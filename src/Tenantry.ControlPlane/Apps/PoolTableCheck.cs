using System.Text;
using System.Text.RegularExpressions;

namespace Tenantry.ControlPlane.Apps;

/// <summary>
/// The pool model's rule for a release's migrations: every table a migration creates has a
/// <c>tenant_id</c> column, so pooled tenants' rows can be told apart and filtered. A lexical
/// check of <c>CREATE TABLE</c> statements: comments and string literals are blanked first, so a
/// <c>tenant_id</c> in a comment does not count and a <c>CREATE TABLE</c> in one is not checked;
/// a table constraint that names <c>tenant_id</c> is not a column, nor is a quoted name of another case.
/// </summary>
public static partial class PoolTableCheck
{
    public const string TenantColumn = "tenant_id";

    private const string Identifier = @"(?:""(?:[^""]|"""")+""|[A-Za-z_][A-Za-z0-9_$]*)";

    [GeneratedRegex(@"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?<name>" + Identifier + @"(?:\s*\.\s*" + Identifier + "){0,2})", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex CreateTable();

    [GeneratedRegex(@"^\s*(?<column>" + Identifier + ")", RegexOptions.CultureInvariant)]
    private static partial Regex FirstToken();

    [GeneratedRegex(@"\btenant_id\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex TenantIdWord();

    /// <summary>The tables the SQL creates without a <c>tenant_id</c> column, as named in the SQL (quotes removed).</summary>
    public static IReadOnlyList<string> TablesWithoutTenantId(string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        var code = Blank(sql);
        var missing = new List<string>();
        foreach (Match match in CreateTable().Matches(code))
        {
            var rest = match.Index + match.Length;
            while (rest < code.Length && char.IsWhiteSpace(code[rest]))
            {
                rest++;
            }

            var hasColumn = rest < code.Length && code[rest] == '('
                ? Elements(code, rest).Any(IsTenantColumn)
                : TenantIdWord().IsMatch(Statement(code, rest)); // CREATE TABLE … AS SELECT …: the select must carry it
            if (!hasColumn)
            {
                missing.Add(Unquote(match.Groups["name"].Value));
            }
        }

        return missing;
    }

    private static bool IsTenantColumn(string element)
    {
        var token = FirstToken().Match(element);
        if (!token.Success)
        {
            return false;
        }

        // A quoted name keeps its case ("Tenant_Id" is another column); a bare one folds.
        var column = token.Groups["column"].Value;
        return column.StartsWith('"')
            ? string.Equals(Unquote(column), TenantColumn, StringComparison.Ordinal)
            : string.Equals(column, TenantColumn, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The top-level comma-separated elements of the parenthesised list opening at <paramref name="open"/>.</summary>
    private static List<string> Elements(string code, int open)
    {
        var elements = new List<string>();
        var depth = 0;
        var start = open + 1;
        for (var i = open; i < code.Length; i++)
        {
            switch (code[i])
            {
                case '(':
                    depth++;
                    break;
                case ')':
                    depth--;
                    if (depth == 0)
                    {
                        elements.Add(code[start..i]);
                        return elements;
                    }

                    break;
                case ',' when depth == 1:
                    elements.Add(code[start..i]);
                    start = i + 1;
                    break;
            }
        }

        elements.Add(code[start..]);
        return elements;
    }

    private static string Statement(string code, int from)
    {
        var end = code.IndexOf(';', from);
        return end < 0 ? code[from..] : code[from..end];
    }

    private static string Unquote(string name) =>
        Regex.Replace(name, @"\s+", "").Replace("\"\"", "\u0000", StringComparison.Ordinal).Replace("\"", "", StringComparison.Ordinal).Replace('\u0000', '"');

    /// <summary>The SQL with comments, string literals and dollar-quoted bodies replaced by spaces; quoted identifiers stay.</summary>
    internal static string Blank(string sql)
    {
        var text = new StringBuilder(sql.Length);
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            var next = i + 1 < sql.Length ? sql[i + 1] : '\0';
            if (c == '-' && next == '-')
            {
                var end = sql.IndexOf('\n', i);
                i = Skip(text, end < 0 ? sql.Length : end, i);
            }
            else if (c == '/' && next == '*')
            {
                var end = sql.IndexOf("*/", i + 2, StringComparison.Ordinal);
                i = Skip(text, end < 0 ? sql.Length : end + 2, i);
            }
            else if (c == '\'')
            {
                var end = i + 1;
                while (end < sql.Length && !(sql[end] == '\'' && (end + 1 >= sql.Length || sql[end + 1] != '\'')))
                {
                    end += sql[end] == '\'' ? 2 : 1;
                }

                i = Skip(text, Math.Min(end + 1, sql.Length), i);
            }
            else if (c == '"')
            {
                var end = sql.IndexOf('"', i + 1);
                end = end < 0 ? sql.Length : end + 1;
                text.Append(sql, i, end - i);
                i = end;
            }
            else if (c == '$' && DollarTag(sql, i) is { } tag)
            {
                var end = sql.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                i = Skip(text, end < 0 ? sql.Length : end + tag.Length, i);
            }
            else
            {
                text.Append(c);
                i++;
            }
        }

        return text.ToString();
    }

    private static int Skip(StringBuilder text, int end, int start)
    {
        text.Append(' ', end - start);
        return end;
    }

    /// <summary>The PostgreSQL dollar-quote tag (<c>$$</c> or <c>$name$</c>) starting at <paramref name="i"/>, if one does.</summary>
    private static string? DollarTag(string sql, int i)
    {
        if (i > 0 && (char.IsLetterOrDigit(sql[i - 1]) || sql[i - 1] == '_'))
        {
            return null;
        }

        var end = i + 1;
        while (end < sql.Length && (char.IsLetterOrDigit(sql[end]) || sql[end] == '_'))
        {
            end++;
        }

        return end < sql.Length && sql[end] == '$' && !char.IsDigit(sql[Math.Min(i + 1, end)]) ? sql[i..(end + 1)] : null;
    }
}
