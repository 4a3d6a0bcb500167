using Tenantry.ControlPlane.ObjectStorage;

namespace Tenantry.ControlPlane.Tests.Objects;

public sealed class ObjectKeysTests
{
    [Theory]
    [InlineData("tenants/acme/../beta/x")]
    [InlineData("tenants/acme/a/../../beta/x")]
    [InlineData("tenants/acme/./x")]
    [InlineData("tenants/acme/..")]
    [InlineData("tenants/../tenants/beta/x")]
    [InlineData("/tenants/acme/x")]
    [InlineData("//tenants/acme/x")]
    [InlineData("C:/tenants/acme/x")]
    [InlineData("~/tenants/acme/x")]
    [InlineData("tenants/acme\\..\\beta\\x")]
    [InlineData("tenants/acme/a\\b")]
    [InlineData("tenants/acme/%2e%2e/beta/x")]
    [InlineData("tenants/acme/%2E%2E%2Fbeta%2Fx")]
    [InlineData("tenants/acme/..%2fbeta/x")]
    [InlineData("tenants/acme/%252e%252e/beta/x")]
    [InlineData("tenants/acme/a%5c..%5cbeta")]
    [InlineData("tenants/acme/a%00b")]
    [InlineData("tenants/acme/a\u0000b")]
    [InlineData("tenants/acme/a\nb")]
    [InlineData("tenants/acme/a\u007fb")]
    [InlineData("tenants/acme/a\u0085b")]
    [InlineData("tenants/acme/\uff0e\uff0e/beta/x")]
    [InlineData("tenants/acme/a//b")]
    [InlineData("tenants/acme/a/")]
    [InlineData("tenants/acme/")]
    [InlineData("tenants/acme")]
    [InlineData("tenants/Acme/x")]
    [InlineData("tenant/acme/x")]
    [InlineData("acme/x")]
    [InlineData("")]
    [InlineData("tenants/acme/.tenant-id")]
    [InlineData("tenants/acme/.tenant-id.tmp")]
    public void Traversal_and_malformed_keys_are_refused(string key) =>
        Assert.Throws<InvalidObjectKeyException>(() => ObjectKeys.Parse(key));

    [Fact]
    public void Lone_surrogates_are_refused()
    {
        Assert.Throws<InvalidObjectKeyException>(() => ObjectKeys.Parse("tenants/acme/" + new string('\ud800', 1) + "x"));
        Assert.Throws<InvalidObjectKeyException>(() => ObjectKeys.Parse("tenants/acme/x" + new string('\udc00', 1)));
        Assert.Equal("\ud83d\ude00", ObjectKeys.Parse("tenants/acme/\ud83d\ude00").Path);
    }

    [Fact]
    public void Over_long_keys_and_segments_are_refused()
    {
        Assert.Throws<InvalidObjectKeyException>(() => ObjectKeys.Parse("tenants/acme/" + string.Join('/', Enumerable.Repeat(new string('a', 100), 11))));
        Assert.Throws<InvalidObjectKeyException>(() => ObjectKeys.Parse("tenants/acme/" + new string('a', 256)));
        Assert.Throws<InvalidObjectKeyException>(() => ObjectKeys.Parse("tenants/acme/" + string.Concat(Enumerable.Repeat("é", 128)))); // 256 bytes
        ObjectKeys.Parse("tenants/acme/" + new string('a', 255));
    }

    [Theory]
    [InlineData("tenants/acme/a.txt", "acme", "a.txt")]
    [InlineData("tenants/acme/uploads/2026/report v1.pdf", "acme", "uploads/2026/report v1.pdf")]
    [InlineData("tenants/acme/a..b/c.", "acme", "a..b/c.")]
    [InlineData("tenants/acme/100%25 done", "acme", "100%25 done")]
    [InlineData("tenants/acme/caf\u0065\u0301.txt", "acme", "caf\u00e9.txt")]
    [InlineData("tenants/acme/日本/ファイル", "acme", "日本/ファイル")]
    public void Valid_keys_are_accepted_and_normalised(string key, string slug, string path)
    {
        var parsed = ObjectKeys.Parse(key);
        Assert.Equal(slug, parsed.Slug);
        Assert.Equal(path, parsed.Path);
    }

    [Theory]
    [InlineData("tenants/acme/", "")]
    [InlineData("tenants/acme/uploads/", "uploads/")]
    [InlineData("tenants/acme/up", "up")]
    public void Listing_prefixes_may_be_empty_or_end_with_a_slash(string prefix, string path) =>
        Assert.Equal(path, ObjectKeys.ParsePrefix(prefix).Path);

    [Theory]
    [InlineData("tenants/acme/../")]
    [InlineData("tenants/acme//")]
    [InlineData("tenants/")]
    public void Bad_listing_prefixes_are_refused(string prefix) =>
        Assert.Throws<InvalidObjectKeyException>(() => ObjectKeys.ParsePrefix(prefix));
}
