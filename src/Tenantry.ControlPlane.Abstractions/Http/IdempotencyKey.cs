using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Tenantry.ControlPlane.Http;

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
