using System.Data.Common;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Tenantry.ControlPlane.Providers;

/// <summary>Database rows as JSON lines in an export archive (<c>database/{table}.jsonl</c>), the same for every engine.</summary>
internal static class ExportRows
{
    /// <summary>A writer for the table's entry; each row is one line.</summary>
    public static StreamWriter Entry(ZipArchive archive, string table) =>
        new(archive.CreateEntry($"database/{table}.jsonl", CompressionLevel.Fastest).Open(), new UTF8Encoding(false));

    public static Task WriteAsync(StreamWriter writer, DbDataReader reader) => writer.WriteLineAsync(Read(reader).ToJsonString(JsonSerializerOptions.Default));

    /// <summary>The current row: every column as text (bytes as base64, times in ISO 8601, numbers invariant), nulls as null.</summary>
    public static JsonObject Read(DbDataReader reader)
    {
        var row = new JsonObject();
        for (var i = 0; i < reader.FieldCount; i++)
        {
            row[reader.GetName(i)] = reader.IsDBNull(i) ? null : JsonValue.Create(reader.GetValue(i) switch
            {
                byte[] bytes => Convert.ToBase64String(bytes),
                DateTime d => d.ToString("O", CultureInfo.InvariantCulture),
                IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
                var v => v.ToString(),
            });
        }

        return row;
    }
}
