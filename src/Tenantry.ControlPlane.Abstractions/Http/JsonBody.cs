using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Http;

/// <summary>Reads a JSON body and turns every way it can be wrong into a 400 that says where.</summary>
internal static class JsonBody
{
    public const int MaxBytes = 64 * 1024;

    /// <param name="maxBytes">The largest body taken: <see cref="MaxBytes"/> unless a call's bodies are larger by nature.</param>
    public static async Task<(T? Value, ApiError? Error)> ReadAsync<T>(HttpRequest request, int maxBytes = MaxBytes)
        where T : class
    {
        if (!request.HasJsonContentType() && !string.Equals(request.ContentType?.Split(';')[0].Trim(), "application/merge-patch+json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, new ApiError(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "The body must be JSON.", "Send Content-Type: application/json."));
        }

        if (request.ContentLength > maxBytes)
        {
            return (null, new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The body is too large.", $"At most {maxBytes} bytes."));
        }

        var options = request.HttpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        try
        {
            using var limited = new MemoryStream();
            await request.Body.CopyToAsync(limited, request.HttpContext.RequestAborted);
            if (limited.Length > maxBytes)
            {
                return (null, new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The body is too large.", $"At most {maxBytes} bytes."));
            }

            if (limited.Length == 0)
            {
                return (null, ApiError.BadRequest("The request body is empty; a JSON object is expected."));
            }

            // The serializer's own check (AllowDuplicateProperties) skips JsonObject bodies, whose converter throws a bare ArgumentException.
            if (DuplicateProperty(limited.GetBuffer().AsSpan(0, (int)limited.Length)) is { } duplicate)
            {
                return (null, new ApiError(
                    StatusCodes.Status400BadRequest, "duplicate-property", "A property is given more than once.",
                    $"The property '{duplicate.Name}' appears more than once at {duplicate.Path}; each property may be given once."));
            }

            limited.Position = 0;
            var value = await JsonSerializer.DeserializeAsync<T>(limited, options, request.HttpContext.RequestAborted);
            return value is null ? (null, ApiError.BadRequest("A JSON object is expected, not null.")) : (value, null);
        }
        catch (JsonException ex)
        {
            var where = ex.Path is { Length: > 0 } path ? $" at {path}" : "";
            var line = ex.LineNumber is { } l ? $" (line {l + 1}, position {ex.BytePositionInLine + 1})" : "";
            return (null, ApiError.BadRequest($"The body is not valid JSON for this call{where}{line}: {FirstSentence(ex.Message)}"));
        }
    }

    /// <summary>The first property repeated within one object, at any depth, with the JSON path of the object; null when there is none or the JSON is malformed (the serializer then says where).</summary>
    internal static (string Name, string Path)? DuplicateProperty(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });

        // One frame per open object (its names so far) or array (the index of its next element).
        var frames = new List<(HashSet<string>? Names, string? Property, int Index)>();
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        var name = reader.GetString()!;
                        var frame = frames[^1];
                        if (!frame.Names!.Add(name))
                        {
                            return (name, PathOf(frames));
                        }

                        frames[^1] = frame with { Property = name };
                        continue;
                    case JsonTokenType.StartObject:
                        frames.Add((new HashSet<string>(StringComparer.Ordinal), null, 0));
                        continue;
                    case JsonTokenType.StartArray:
                        frames.Add((null, null, 0));
                        continue;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        frames.RemoveAt(frames.Count - 1);
                        break;
                }

                // A value (or a container) ended: the enclosing array moves to its next element.
                if (frames.Count > 0 && frames[^1].Names is null)
                {
                    frames[^1] = frames[^1] with { Index = frames[^1].Index + 1 };
                }
            }
        }
        catch (JsonException)
        {
            return null;
        }

        return null;

        static string PathOf(List<(HashSet<string>? Names, string? Property, int Index)> frames)
        {
            var path = new System.Text.StringBuilder("$");
            for (var i = 0; i < frames.Count - 1; i++)
            {
                if (frames[i].Names is null)
                {
                    path.Append('[').Append(frames[i].Index).Append(']');
                }
                else
                {
                    path.Append('.').Append(frames[i].Property);
                }
            }

            return path.ToString();
        }
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(". ", StringComparison.Ordinal);
        return cut > 0 ? message[..(cut + 1)] : message;
    }
}
