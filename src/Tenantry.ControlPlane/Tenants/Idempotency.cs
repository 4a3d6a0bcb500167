using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Tenants;

/// <summary>
/// An <c>Idempotency-Key</c> and the request it was first used with. The stored response is
/// written in the same transaction as the work, so a replay can never see half of it.
/// </summary>
public sealed record IdempotencyKey(string Scope, string Key, string RequestHash)
{
    public const string Header = "Idempotency-Key";

    public static (IdempotencyKey? Key, ApiError? Error) From(HttpRequest request, string actor, string canonicalBody)
    {
        var value = request.Headers[Header].ToString();
        if (value.Length == 0)
        {
            return (null, null);
        }

        if (value.Length > 255 || value.Any(c => c is < ' ' or > '~'))
        {
            return (null, ApiError.Validation(Header, "An Idempotency-Key is 1-255 printable ASCII characters."));
        }

        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{request.Method} {request.Path}\n{canonicalBody}")));
        return (new IdempotencyKey(actor, value, hash), null);
    }
}

public sealed record StoredResponse(int StatusCode, string? Location, string Body);

internal static class IdempotencyStore
{
    /// <summary>The stored response for this key, or an error when the key was used for another request.</summary>
    public static async Task<(StoredResponse? Response, ApiError? Error)> FindAsync(DbConnection c, DbTransaction tx, IdempotencyKey key)
    {
        var rows = await c.QueryAsync(
            "SELECT request_hash, status_code, location, body FROM idempotency_keys WHERE scope = @scope AND key = @key",
            tx,
            r => (Hash: r.GetString(0), Response: new StoredResponse(r.GetInt32(1), r.ReadStringOrNull(2), r.GetString(3))),
            ("@scope", key.Scope), ("@key", key.Key));
        if (rows.Count == 0)
        {
            return (null, null);
        }

        return rows[0].Hash == key.RequestHash
            ? (rows[0].Response, null)
            : (null, new ApiError(
                StatusCodes.Status422UnprocessableEntity,
                "idempotency-key-reused",
                "The Idempotency-Key was used for a different request.",
                $"The key '{key.Key}' was first sent with another method, path or body; use a new key for a new request."));
    }

    public static Task SaveAsync(DbConnection c, DbTransaction tx, IdempotencyKey key, StoredResponse response, DateTimeOffset now) => c.ExecuteAsync(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, location, body, created_at) VALUES (@scope, @key, @hash, @status, @location, @body, @now)",
        tx,
        ("@scope", key.Scope), ("@key", key.Key), ("@hash", key.RequestHash), ("@status", response.StatusCode),
        ("@location", response.Location), ("@body", response.Body), ("@now", now));
}
