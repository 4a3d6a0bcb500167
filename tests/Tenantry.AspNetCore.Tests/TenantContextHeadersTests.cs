using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Tenantry.AspNetCore;

namespace Tenantry.AspNetCore.Tests;

/// <summary>The signed tenant context on its own: what the gateway writes reads back, anything else does not.</summary>
public sealed class TenantContextHeadersTests
{
    private static readonly TenantContext Acme = new()
    {
        TenantId = Guid.CreateVersion7(), Slug = "acme", Tier = "basic", Isolation = IsolationModel.Pool, Subject = "u1", Roles = ["member"],
    };

    [Fact]
    public void A_signed_context_reads_back_and_any_changed_field_is_refused()
    {
        var signer = new TenantContextHeaders(RandomNumberGenerator.GetBytes(32));
        var headers = new HeaderDictionary();
        signer.Write((n, v) => headers[n] = v, Acme);
        var read = signer.Read(headers);
        Assert.NotNull(read);
        Assert.Equal(Acme.TenantId, read.TenantId);
        Assert.Equal(["member"], read.Roles);

        foreach (var (name, value) in new[]
        {
            (TenantContextHeaders.TenantId, Guid.CreateVersion7().ToString()),
            (TenantContextHeaders.Slug, "mega"),
            (TenantContextHeaders.Tier, "premium"),
            (TenantContextHeaders.Isolation, "silo"),
            (TenantContextHeaders.Roles, "admin"),
            (TenantContextHeaders.Subject, "someone-else"),
        })
        {
            var tampered = new HeaderDictionary(headers.ToDictionary(h => h.Key, h => h.Value));
            tampered[name] = value;
            Assert.Null(signer.Read(tampered));
        }

        var twice = new HeaderDictionary(headers.ToDictionary(h => h.Key, h => h.Value));
        twice.Append(TenantContextHeaders.TenantId, Guid.CreateVersion7().ToString());
        Assert.Null(signer.Read(twice));
        Assert.Null(new TenantContextHeaders(RandomNumberGenerator.GetBytes(32)).Read(headers));

        // Signatures that are not base64, cut short, padded out or empty.
        var good = headers[TenantContextHeaders.Signature].ToString();
        foreach (var forged in new[] { "not base64!", good[..^4], good + "AAAA", "", Convert.ToBase64String(new byte[32]) })
        {
            var tampered = new HeaderDictionary(headers.ToDictionary(h => h.Key, h => h.Value));
            tampered[TenantContextHeaders.Signature] = forged;
            Assert.Null(signer.Read(tampered));
        }

        // The same signer, used again from other threads (each keeps its own HMAC), still agrees.
        Parallel.For(0, 64, _ => Assert.NotNull(signer.Read(headers)));
    }
}
