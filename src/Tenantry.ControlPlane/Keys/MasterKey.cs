using System.Security.Cryptography;
using System.Text;

namespace Tenantry.ControlPlane.Keys;

/// <summary>
/// The AEAD that seals every key kept in a shared store: AES-256-GCM under a key derived from
/// <c>Tenantry:MasterKey</c> with HKDF-SHA256. Each sealed value is bound to its name (associated
/// data), so a ciphertext copied onto another row does not open.
/// </summary>
internal sealed class MasterKey
{
    /// <summary>Shortest master key accepted: 32 characters (e.g. <c>openssl rand -base64 32</c> gives 44).</summary>
    public const int MinimumLength = 32;

    private const string Version = "v1.";
    private const int NonceSize = 12;
    private const int TagSize = 16;

    private readonly byte[] _key;

    public MasterKey(string secret)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        _key = HKDF.DeriveKey(
            HashAlgorithmName.SHA256,
            Encoding.UTF8.GetBytes(secret),
            32,
            Encoding.UTF8.GetBytes("tenantry-key-ring"),
            Encoding.UTF8.GetBytes("Tenantry key ring v1: AES-256-GCM"));
    }

    /// <summary><c>v1.</c> then base64 of nonce, tag and ciphertext.</summary>
    public string Seal(string name, byte[] plaintext)
    {
        var nonce = RandomNumberGenerator.GetBytes(NonceSize);
        var sealedBytes = new byte[NonceSize + TagSize + plaintext.Length];
        using var aes = new AesGcm(_key, TagSize);
        aes.Encrypt(nonce, plaintext, sealedBytes.AsSpan(NonceSize + TagSize), sealedBytes.AsSpan(NonceSize, TagSize), Encoding.UTF8.GetBytes(name));
        nonce.CopyTo(sealedBytes, 0);
        return Version + Convert.ToBase64String(sealedBytes);
    }

    /// <summary>The plaintext, or a <see cref="CryptographicException"/> when the value was sealed under another key or name, or altered.</summary>
    public byte[] Open(string name, string sealedValue)
    {
        if (!sealedValue.StartsWith(Version, StringComparison.Ordinal))
        {
            throw new CryptographicException($"The key '{name}' is not sealed in a known format.");
        }

        var bytes = Convert.FromBase64String(sealedValue[Version.Length..]);
        if (bytes.Length < NonceSize + TagSize)
        {
            throw new CryptographicException($"The key '{name}' is truncated.");
        }

        var plaintext = new byte[bytes.Length - NonceSize - TagSize];
        using var aes = new AesGcm(_key, TagSize);
        aes.Decrypt(bytes.AsSpan(0, NonceSize), bytes.AsSpan(NonceSize + TagSize), bytes.AsSpan(NonceSize, TagSize), plaintext, Encoding.UTF8.GetBytes(name));
        return plaintext;
    }
}
