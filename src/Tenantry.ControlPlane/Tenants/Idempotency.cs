using System.Data.Common;
using Microsoft.AspNetCore.Http;
using Tenantry.ControlPlane.Http;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Tenants;

public sealed record StoredResponse(int StatusCode, string? Location, string Body);

internal static class IdempotencyStore
{
    /// <summary>The tables this store owns, in the control-plane database.</summary>
    public static SchemaPart Schema { get; } = SchemaPart.Portable("Tenants", """

        CREATE TABLE IF NOT EXISTS idempotency_keys (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            status_code INTEGER NOT NULL,
            location TEXT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (scope, key)
        );
        """);

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
