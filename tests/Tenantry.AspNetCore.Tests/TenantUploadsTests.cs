using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Tenantry.AspNetCore;

namespace Tenantry.AspNetCore.Tests;

/// <summary>
/// The storage helper: names that are not plain file names are refused before a path is built, and an
/// app that uses it keeps each tenant's files in that tenant's folder (real Kestrel, gateway-signed context).
/// </summary>
public sealed class TenantUploadsTests
{
    private static readonly TenantContext Acme = new()
    {
        TenantId = Guid.CreateVersion7(), Slug = "acme", Tier = "basic", Isolation = IsolationModel.Pool, Subject = "u1", Roles = ["member"],
    };

    [Fact]
    public async Task Uploads_land_in_the_callers_tenant_folder_and_a_name_cannot_reach_another_tenants()
    {
        await using var app = await TenantApp.StartAsync(map: web => web.MapPut("/files/{name}", async (string name, HttpContext http, ITenantContext tenant) =>
        {
            string path;
            try
            {
                path = TenantUploads.UploadPath(TenantApp.DataDirOf(http), tenant, name);
            }
            catch (ArgumentException)
            {
                return Results.BadRequest();
            }

            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using var file = File.Create(path);
            await http.Request.Body.CopyToAsync(file);
            return Results.Created();
        }));
        var bravo = Acme with { TenantId = Guid.CreateVersion7(), Slug = "bravo" };

        using (var put = await app.SendAsync(HttpMethod.Put, "/files/report.txt", Acme, new StringContent("acme's")))
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }

        using (var put = await app.SendAsync(HttpMethod.Put, "/files/report.txt", bravo, new StringContent("bravo's")))
        {
            Assert.Equal(HttpStatusCode.Created, put.StatusCode);
        }

        Assert.Equal("acme's", await File.ReadAllTextAsync(Path.Combine(app.DataDir, "tenants", "acme", "uploads", "report.txt")));
        Assert.Equal("bravo's", await File.ReadAllTextAsync(Path.Combine(app.DataDir, "tenants", "bravo", "uploads", "report.txt")));

        // Encoded separators, control characters and hidden names reach the endpoint and get no path.
        foreach (var name in new[] { "..%2F..%2Fbravo%2Fuploads%2Freport.txt", "..%5C..%5Cbravo%5Cuploads%5Creport.txt", ".env", "x%00y", "%20lead" })
        {
            using var attack = await app.SendAsync(HttpMethod.Put, "/files/" + name, Acme, new StringContent("overwritten"));
            Assert.True(attack.StatusCode == HttpStatusCode.BadRequest, $"{name}: {(int)attack.StatusCode}");
        }

        // Dot segments are resolved before routing: they never name a file.
        foreach (var name in new[] { "..", "%2E%2E", "../../bravo/uploads/report.txt" })
        {
            using var attack = await app.SendAsync(HttpMethod.Put, "/files/" + name, Acme, new StringContent("overwritten"));
            Assert.True(attack.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{name}: {(int)attack.StatusCode}");
        }

        Assert.Equal("bravo's", await File.ReadAllTextAsync(Path.Combine(app.DataDir, "tenants", "bravo", "uploads", "report.txt")));
        Assert.Equal(["report.txt"], Directory.GetFiles(Path.Combine(app.DataDir, "tenants", "acme", "uploads")).Select(Path.GetFileName));
    }

    [Fact]
    public void A_tenant_whose_slug_is_not_a_plain_name_gets_no_path()
    {
        var root = Path.Combine(Path.GetTempPath(), "tenantry-storage-names");
        foreach (var slug in new[] { "..", "../bravo", "acme/../bravo", "" })
        {
            Assert.Throws<ArgumentException>(() => TenantUploads.UploadPath(root, Acme with { Slug = slug }, "invoice.pdf"));
        }

        Assert.Throws<ArgumentException>(() => TenantUploads.UploadPath(root, Acme, "orders", "..", "..", "bravo"));
        Assert.EndsWith(Path.Combine("tenants", "acme", "uploads", "orders", "42", "invoice.pdf"), TenantUploads.UploadPath(root, Acme, "orders", "42", "invoice.pdf"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("invoice.pdf", true)]
    [InlineData("Rechnung (2).pdf", true)]
    [InlineData("..", false)]
    [InlineData(".", false)]
    [InlineData("../x", false)]
    [InlineData("a/b", false)]
    [InlineData("a\\b", false)]
    [InlineData(".env", false)]
    [InlineData("a%2Fb", false)]
    [InlineData("x\0y", false)]
    [InlineData("x\ny", false)]
    [InlineData("", false)]
    [InlineData(" lead", false)]
    public void Storage_names_allow_plain_file_names_only(string name, bool safe)
    {
        Assert.Equal(safe, TenantUploads.IsSafeName(name));
        var root = Path.Combine(Path.GetTempPath(), "tenantry-storage-names");
        if (safe)
        {
            Assert.StartsWith(Path.Combine(root, "tenants", "acme", "uploads") + Path.DirectorySeparatorChar, TenantUploads.UploadPath(root, Acme, name), StringComparison.Ordinal);
        }
        else
        {
            Assert.Throws<ArgumentException>(() => TenantUploads.UploadPath(root, Acme, name));
        }
    }
}
