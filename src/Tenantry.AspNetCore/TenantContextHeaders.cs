using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Tenantry.AspNetCore;

/// <summary>
/// The headers the gateway sets for the upstream app, and their signature. The gateway strips any
/// incoming header of this family, so a client cannot choose its tenant; the HMAC (a key shared by
/// the gateway and its apps) means a request that did not come through the gateway is refused too.
/// </summary>
public sealed class TenantContextHeaders
{
    public const string TenantId = "X-Tenant-Id";
    public const string Slug = "X-Tenant-Slug";
    public const string Tier = "X-Tenant-Tier";
    public const string Isolation = "X-Tenant-Isolation";
    public const string Subject = "X-Tenant-Subject";
    public const string Roles = "X-Tenant-Roles";
    public const string Signature = "X-Tenant-Signature";

    /// <summary>Every header of the family; the gateway removes them all from incoming requests.</summary>
    public static readonly string[] All = [TenantId, Slug, Tier, Isolation, Subject, Roles, Signature];

    private readonly byte[] _key;

    // One HMAC per thread and key, reset after each use: a one-shot HMACSHA256.HashData builds and
    // frees its OpenSSL context (and the key schedule) on every call, twice per proxied request.
    [ThreadStatic]
    private static (byte[] Key, IncrementalHash Hmac)? t_hmac;

    public TenantContextHeaders(byte[] key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length < 32)
        {
            throw new ArgumentException("The tenant-context key needs at least 32 bytes.", nameof(key));
        }

        _key = key;
    }

    /// <summary>Reads the key file, creating it (32 random bytes, base64, mode 0600) when it does not exist.</summary>
    public static byte[] LoadOrCreateKey(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var stream = new FileStream(temp, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
            }

            try
            {
                File.Move(temp, path, overwrite: false);
            }
            catch (IOException)
            {
                // Another process made it first; use theirs.
                File.Delete(temp);
            }
        }

        return Convert.FromBase64String(File.ReadAllText(path).Trim());
    }

    /// <summary>Sets the context headers (and their signature) on an outgoing request.</summary>
    public void Write(Action<string, string> set, TenantContext context)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(context);
        var id = context.TenantId.ToString();
        var isolation = context.Isolation.ToWire();
        var roles = string.Join(',', context.Roles);
        set(TenantId, id);
        set(Slug, context.Slug);
        set(Tier, context.Tier);
        set(Isolation, isolation);
        set(Subject, context.Subject);
        set(Roles, roles);
        set(Signature, Sign(id, context.Slug, context.Tier, isolation, context.Subject, roles));
    }

    /// <summary>The verified context, or null when a header is missing, malformed or the signature does not match.</summary>
    public TenantContext? Read(IHeaderDictionary headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (!One(headers, TenantId, out var id) || !One(headers, Slug, out var slug) || !One(headers, Tier, out var tier)
            || !One(headers, Isolation, out var isolation) || !One(headers, Subject, out var subject) || !One(headers, Roles, out var roles)
            || !One(headers, Signature, out var signature))
        {
            return null;
        }

        Span<byte> expected = stackalloc byte[HMACSHA256.HashSizeInBytes];
        Span<byte> presented = stackalloc byte[HMACSHA256.HashSizeInBytes + 3];
        Mac(id, slug, tier, isolation, subject, roles, expected);
        if (!Convert.TryFromBase64String(signature, presented, out var length) || length != expected.Length
            || !CryptographicOperations.FixedTimeEquals(expected, presented[..length])
            || !Guid.TryParse(id, out var tenantId) || !WireNames.TryParseIsolation(isolation, out var model))
        {
            return null;
        }

        return new TenantContext
        {
            TenantId = tenantId,
            Slug = slug,
            Tier = tier,
            Isolation = model,
            Subject = subject,
            Roles = roles.Length == 0 ? [] : roles.Split(','),
        };
    }

    private string Sign(string id, string slug, string tier, string isolation, string subject, string roles)
    {
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        Mac(id, slug, tier, isolation, subject, roles, mac);
        return Convert.ToBase64String(mac);
    }

    private void Mac(string id, string slug, string tier, string isolation, string subject, string roles, Span<byte> destination)
    {
        // Newline-separated: no field may contain one (header values cannot).
        var payload = Encoding.UTF8.GetBytes(string.Join('\n', "v1", id, slug, tier, isolation, subject, roles));
        var hmac = t_hmac is { } cached && ReferenceEquals(cached.Key, _key) ? cached.Hmac : NewHmac();
        hmac.AppendData(payload);
        hmac.GetHashAndReset(destination);
    }

    private IncrementalHash NewHmac()
    {
        t_hmac?.Hmac.Dispose();
        var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key);
        t_hmac = (_key, hmac);
        return hmac;
    }

    private static bool One(IHeaderDictionary headers, string name, out string value)
    {
        var values = headers.TryGetValue(name, out var v) ? v : StringValues.Empty;
        value = values.Count == 1 ? values[0] ?? "" : "";
        return values.Count == 1;
    }
}
