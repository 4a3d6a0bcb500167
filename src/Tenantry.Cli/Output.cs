using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Tenantry.Cli;

internal static class Json
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Print(JsonElement element) => JsonSerializer.Serialize(element, Options);

    public static string Str(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v.ValueKind switch
        {
            JsonValueKind.String => v.GetString()!,
            JsonValueKind.Null or JsonValueKind.Undefined => "",
            _ => v.GetRawText(),
        } : "";
}

/// <summary>Tables for people, JSON for scripts (<c>--output json</c>).</summary>
internal sealed class Output(TextWriter stdout, TextWriter stderr, bool json)
{
    public bool IsJson { get; } = json;

    public TextWriter Out { get; } = stdout;

    public TextWriter Err { get; } = stderr;

    public void Json(JsonElement element) => Out.WriteLine(Cli.Json.Print(element));

    public void Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string>> rows)
    {
        var all = rows.ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, all.Count == 0 ? 0 : all.Max(r => Cell(r, i).Length))).ToArray();
        Out.WriteLine(Line(headers, widths));
        foreach (var row in all)
        {
            Out.WriteLine(Line(row, widths));
        }
    }

    /// <summary>Any JSON list (an array, or a page's <c>items</c>) as a table of its scalar fields.</summary>
    public void Generic(JsonElement element)
    {
        var items = element.ValueKind == JsonValueKind.Array ? element
            : element.ValueKind == JsonValueKind.Object && element.TryGetProperty("items", out var i) && i.ValueKind == JsonValueKind.Array ? i
            : (JsonElement?)null;
        if (items is null)
        {
            KeyValues(element);
            return;
        }

        var rows = items.Value.EnumerateArray().ToList();
        var columns = rows.SelectMany(r => r.ValueKind == JsonValueKind.Object ? r.EnumerateObject().Where(p => p.Value.ValueKind is not (JsonValueKind.Object or JsonValueKind.Array)).Select(p => p.Name) : [])
            .Distinct(StringComparer.Ordinal).ToList();
        Table([.. columns.Select(c => c.ToUpperInvariant())], rows.Select(r => (IReadOnlyList<string>)[.. columns.Select(c => r.Str(c))]));
    }

    public void KeyValues(JsonElement element, string indent = "")
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            Out.WriteLine(indent + element);
            return;
        }

        var width = element.EnumerateObject().Select(p => p.Name.Length).DefaultIfEmpty(0).Max();
        foreach (var property in element.EnumerateObject())
        {
            if (property.Value.ValueKind == JsonValueKind.Object)
            {
                Out.WriteLine($"{indent}{property.Name}:");
                KeyValues(property.Value, indent + "  ");
            }
            else
            {
                var value = property.Value.ValueKind switch
                {
                    JsonValueKind.String => property.Value.GetString(),
                    JsonValueKind.Null => "",
                    _ => property.Value.GetRawText(),
                };
                Out.WriteLine($"{indent}{property.Name.PadRight(width)}  {value}".TrimEnd());
            }
        }
    }

    public static string Time(string iso) =>
        DateTimeOffset.TryParse(iso, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
            ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)
            : iso;

    private static string Cell(IReadOnlyList<string> row, int i) => i < row.Count ? row[i] : "";

    private static string Line(IReadOnlyList<string> cells, int[] widths)
    {
        var line = new StringBuilder();
        for (var i = 0; i < widths.Length; i++)
        {
            var cell = Cell(cells, i);
            line.Append(i == widths.Length - 1 ? cell : cell.PadRight(widths[i] + 2));
        }

        return line.ToString().TrimEnd();
    }
}
