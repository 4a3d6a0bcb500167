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

    public static async Task<(T? Value, ApiError? Error)> ReadAsync<T>(HttpRequest request)
        where T : class
    {
        if (!request.HasJsonContentType() && !string.Equals(request.ContentType?.Split(';')[0].Trim(), "application/merge-patch+json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, new ApiError(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "The body must be JSON.", "Send Content-Type: application/json."));
        }

        if (request.ContentLength > MaxBytes)
        {
            return (null, new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The body is too large.", $"At most {MaxBytes} bytes."));
        }

        var options = request.HttpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        try
        {
            using var limited = new MemoryStream();
            await request.Body.CopyToAsync(limited, request.HttpContext.RequestAborted);
            if (limited.Length > MaxBytes)
            {
                return (null, new ApiError(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "The body is too large.", $"At most {MaxBytes} bytes."));
            }

            if (limited.Length == 0)
            {
                return (null, ApiError.BadRequest("The request body is empty; a JSON object is expected."));
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

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(". ", StringComparison.Ordinal);
        return cut > 0 ? message[..(cut + 1)] : message;
    }
}
