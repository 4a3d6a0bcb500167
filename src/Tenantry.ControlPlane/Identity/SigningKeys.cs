using System.Security.Cryptography;
using Microsoft.IdentityModel.Tokens;

namespace Tenantry.ControlPlane.Identity;

/// <summary>The token issuer's RSA keys, wherever they are kept (the data dir, or a shared store).</summary>
public interface ITokenKeys
{
    RsaSecurityKey Signing { get; }

    RsaSecurityKey Encryption { get; }
}

/// <summary>RSA keys of the token issuer, kept as 0600 PEM files so tokens outlive a restart.</summary>
internal static class SigningKeys
{
    public static RsaSecurityKey LoadOrCreate(string dataPath, string name)
    {
        var path = Path.Combine(dataPath, "keys", name + ".pem");
        var rsa = RSA.Create();
        if (File.Exists(path))
        {
            rsa.ImportFromPem(File.ReadAllText(path));
        }
        else
        {
            rsa.KeySize = 2048;
            DataDirectory.WriteSecret(path, rsa.ExportPkcs8PrivateKeyPem());
        }

        return WithKeyId(rsa);
    }

    /// <summary>The key with its id: the first 16 characters of its public key's SHA-256, base64url.</summary>
    public static RsaSecurityKey WithKeyId(RSA rsa)
    {
        var kid = Base64UrlEncoder.Encode(SHA256.HashData(rsa.ExportSubjectPublicKeyInfo()))[..16];
        return new RsaSecurityKey(rsa) { KeyId = kid };
    }
}
