namespace Tenantry.FunctionalTests.Objects;

/// <summary>
/// Object keys that try to leave the tenant's prefix or hide something from the validator, as they
/// appear in a URL path: every caller (operator or tenant token) must get a 400 problem for each.
/// </summary>
public static class ObjectKeyAttacks
{
    public static TheoryData<string> InUrl() =>
    [
        "a%2F..%2F..%2Fother-tenant%2Fsecret.txt",
        "%252e%252e/%252e%252e/other-tenant/secret.txt",
        "..%2F..%2Fother-tenant%2Fx",
        "a%5C..%5Cb",
        "a%5C..%5C..%5Cother-tenant%5Csecret.txt",
        "a%01b",
        "a//b",
        ".tenant-id",
    ];
}
