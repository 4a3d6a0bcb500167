using System.Text;
using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Keys;

/// <summary>The Data Protection key ring in the control-plane store, so every replica reads the same keys.</summary>
internal sealed class StoreXmlRepository(IControlPlaneDatabase db, TimeProvider time) : IXmlRepository
{
    // Data Protection calls the repository synchronously; the store's calls are asynchronous.
    public IReadOnlyCollection<XElement> GetAllElements() =>
        [.. KeyStore.DataProtectionKeysAsync(db).GetAwaiter().GetResult().Select(xml => XElement.Parse(xml))];

    public void StoreElement(XElement element, string friendlyName) =>
        KeyStore.AddDataProtectionKeyAsync(db, friendlyName, element, time.GetUtcNow()).GetAwaiter().GetResult();
}

/// <summary>Seals each Data Protection key's XML with the master key before it reaches the store.</summary>
internal sealed class MasterKeyXmlEncryptor(MasterKey master) : IXmlEncryptor
{
    public const string ElementName = "sealedByMasterKey";
    public const string Purpose = "Tenantry.DataProtectionKey";

    public EncryptedXmlInfo Encrypt(XElement plaintextElement)
    {
        ArgumentNullException.ThrowIfNull(plaintextElement);
        var xml = Encoding.UTF8.GetBytes(plaintextElement.ToString(SaveOptions.DisableFormatting));
        return new EncryptedXmlInfo(new XElement(ElementName, master.Seal(Purpose, xml)), typeof(MasterKeyXmlDecryptor));
    }
}

/// <summary>
/// Opens what <see cref="MasterKeyXmlEncryptor"/> sealed. Data Protection creates it by type name from the
/// stored XML, handing it the application's services.
/// </summary>
internal sealed class MasterKeyXmlDecryptor(IServiceProvider services) : IXmlDecryptor
{
    public XElement Decrypt(XElement encryptedElement)
    {
        ArgumentNullException.ThrowIfNull(encryptedElement);
        var secret = services.GetRequiredService<IOptions<TenantryOptions>>().Value.MasterKey;
        if (string.IsNullOrEmpty(secret))
        {
            throw new InvalidOperationException("Tenantry:MasterKey is needed to read the Data Protection keys in the store.");
        }

        var xml = new MasterKey(secret).Open(MasterKeyXmlEncryptor.Purpose, encryptedElement.Value);
        return XElement.Parse(Encoding.UTF8.GetString(xml));
    }
}
