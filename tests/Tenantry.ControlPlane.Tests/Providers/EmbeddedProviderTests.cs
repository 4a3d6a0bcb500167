using System.IO.Compression;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.ObjectStorage;
using Tenantry.ControlPlane.Providers;

namespace Tenantry.ControlPlane.Tests.Providers;

/// <summary>The embedded providers on real files: each call is idempotent and stays in its tenant's place.</summary>
public sealed class EmbeddedProviderTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-unit", Guid.NewGuid().ToString("N"));
    private readonly IOptions<TenantryOptions> _options;

    public EmbeddedProviderTests() => _options = Options.Create(new TenantryOptions { DataDir = _dir });

    private static TenantRef Tenant(string slug, IsolationModel model = IsolationModel.Pool) =>
        new(Guid.CreateVersion7(), slug, slug, "basic", model, $"admin@{slug}.test");

    [Fact]
    public async Task Pool_database_creation_twice_makes_one_row_and_delete_touches_only_that_tenant()
    {
        using var provider = new SqliteTenantDatabaseProvider(_options, TimeProvider.System, TenantAppSchema.Default);
        var a = Tenant("alpha");
        var b = Tenant("bravo");
        await provider.CreateAsync(a, default);
        await provider.CreateAsync(a, default);
        await provider.CreateAsync(b, default);
        Assert.Equal(1, await CountAsync("pool.db", a.Id));
        await provider.DeleteAsync(a, default);
        Assert.Equal(0, await CountAsync("pool.db", a.Id));
        Assert.Equal(1, await CountAsync("pool.db", b.Id));
    }

    [Fact]
    public async Task Pool_slug_held_by_another_tenant_is_a_permanent_failure()
    {
        using var provider = new SqliteTenantDatabaseProvider(_options, TimeProvider.System, TenantAppSchema.Default);
        await provider.CreateAsync(Tenant("same"), default);
        await Assert.ThrowsAsync<PermanentStepException>(() => provider.CreateAsync(Tenant("same"), default));
    }

    [Fact]
    public async Task Silo_database_file_belongs_to_its_tenant()
    {
        using var provider = new SqliteTenantDatabaseProvider(_options, TimeProvider.System, TenantAppSchema.Default);
        var silo = Tenant("siloed", IsolationModel.Silo);
        await provider.CreateAsync(silo, default);
        await provider.CreateAsync(silo, default);
        Assert.True(File.Exists(Path.Combine(_dir, "databases", "silo", "siloed.db")));
        await Assert.ThrowsAsync<PermanentStepException>(() => provider.CreateAsync(Tenant("siloed", IsolationModel.Silo), default));
        await provider.DeleteAsync(silo, default);
        await provider.DeleteAsync(silo, default);
        Assert.False(File.Exists(Path.Combine(_dir, "databases", "silo", "siloed.db")));
    }

    [Fact]
    public async Task Storage_is_provisioned_once_exported_and_deleted_but_exports_stay()
    {
        var storage = new LocalFolderStorageProvider(_options, new LocalObjectStore(_options));
        var t = Tenant("files");
        await storage.ProvisionAsync(t, default);
        await storage.ProvisionAsync(t, default);
        var root = Path.Combine(_dir, "tenants", "files");
        await File.WriteAllTextAsync(Path.Combine(root, "uploads", "a.txt"), "A");

        var path = await storage.SaveExportAsync(t, "export.zip", async stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            await storage.ExportAsync(t, zip, default);
        }, default);
        var again = await storage.SaveExportAsync(t, "export.zip", _ => throw new InvalidOperationException("an existing export is not rewritten"), default);
        Assert.Equal(path, again);
        using (var zip = ZipFile.OpenRead(path))
        {
            Assert.Equal(["files/uploads/a.txt"], zip.Entries.Select(e => e.FullName).ToArray());
        }

        await storage.DeleteAsync(t, default);
        Assert.False(Directory.Exists(Path.Combine(root, "uploads")));
        Assert.True(File.Exists(path));
    }

    [Fact]
    public async Task Storage_of_another_tenant_is_never_taken_over()
    {
        var storage = new LocalFolderStorageProvider(_options, new LocalObjectStore(_options));
        await storage.ProvisionAsync(Tenant("taken"), default);
        var ex = await Assert.ThrowsAsync<PermanentStepException>(() => storage.ProvisionAsync(Tenant("taken"), default));
        Assert.Contains("another tenant", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("/etc")]
    public async Task Slugs_that_climb_out_are_refused_by_the_providers_too(string slug)
    {
        var storage = new LocalFolderStorageProvider(_options, new LocalObjectStore(_options));
        await Assert.ThrowsAsync<PermanentStepException>(() => storage.ProvisionAsync(Tenant(slug), default));
        Assert.False(Directory.Exists(Path.Combine(_dir, "outside")));
    }

    private async Task<long> CountAsync(string file, Guid tenant)
    {
        await using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_dir, "databases", file)};Pooling=False");
        await c.OpenAsync();
        await using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM tenants WHERE tenant_id = $id";
        cmd.Parameters.AddWithValue("$id", tenant.ToString());
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
