using System.Security.Cryptography;
using Microsoft.IdentityModel.Tokens;
using Tenantry.ControlPlane.Keys;

namespace Tenantry.ControlPlane.Identity;

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

        return KeyRing.WithKeyId(rsa);
    }
}
