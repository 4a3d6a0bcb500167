using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.ObjectStorage;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Providers;
using Tenantry.ControlPlane.Database;
using Tenantry.Policies;

namespace Tenantry.ControlPlane.Tests.Objects;

/// <summary>
/// Attacks on tenant storage through the real evaluator and a real SQLite store, run against each
/// provider: local folders and S3 (a private s3rver).
/// </summary>
public abstract class TenantStorageContract : IDisposable
{
    private protected readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-unit", Guid.NewGuid().ToString("N"));
    private protected readonly SqliteDatabase _db;
    private protected readonly PolicyCatalog _catalog;
    private protected readonly TenantObjectStorage _storage;
    private protected readonly TenantPrincipal _acme = new(Guid.NewGuid(), "acme", "basic", "alice@acme.test", TenantPrincipal.AdminRole, TenantPrincipal.UserType);
    private protected readonly TenantPrincipal _beta = new(Guid.NewGuid(), "beta", "basic", "bob@beta.test", TenantPrincipal.AdminRole, TenantPrincipal.UserType);

    private protected TenantStorageContract(Func<string, IObjectStoreProvider> provider)
    {
        Directory.CreateDirectory(_dir);
        _db = new SqliteDatabase(Path.Combine(_dir, "control.db"), ControlPlaneSchema.Sqlite);
        _catalog = new PolicyCatalog(_db, TimeProvider.System);
        Provider = provider(_dir);
        _storage = new TenantObjectStorage(Provider, _catalog, _db, TimeProvider.System, NullLogger<TenantObjectStorage>.Instance);
    }

    private protected IObjectStoreProvider Provider { get; }

    private protected static MemoryStream Body(string text) => new(Encoding.UTF8.GetBytes(text));

    private protected async Task<string> ReadAsync(TenantPrincipal principal, string key)
    {
        await using var content = await _storage.GetAsync(principal, key);
        Assert.NotNull(content);
        using var reader = new StreamReader(content.Stream);
        return await reader.ReadToEndAsync();
    }

    private protected Task<List<AuditEvent>> AuditAsync() => _db.ReadAsync(c => AuditLog.ListAsync(c, null, 0, 1000));

    [Fact]
    public async Task Tenant_puts_reads_lists_and_deletes_its_own_objects_on_disk()
    {
        var stored = await _storage.PutAsync(_acme, "tenants/acme/uploads/a.txt", Body("hello"));
        Assert.Equal("tenants/acme/uploads/a.txt", stored.Key);
        Assert.Equal(5, stored.Size);
        await _storage.PutAsync(_acme, "tenants/acme/b.txt", Body("b"));
        Assert.Equal("hello", await ReadAsync(_acme, "tenants/acme/uploads/a.txt"));
        Assert.Equal(["tenants/acme/b.txt", "tenants/acme/uploads/a.txt"], (await _storage.ListAsync(_acme, "tenants/acme/")).Select(o => o.Key));
        Assert.Equal(["tenants/acme/uploads/a.txt"], (await _storage.ListAsync(_acme, "tenants/acme/up")).Select(o => o.Key));
        Assert.True(await _storage.DeleteAsync(_acme, "tenants/acme/uploads/a.txt"));
        Assert.False(await _storage.DeleteAsync(_acme, "tenants/acme/uploads/a.txt"));
        Assert.Null(await _storage.GetAsync(_acme, "tenants/acme/uploads/a.txt"));
    }

    [Fact]
    public async Task Another_tenant_prefix_is_denied_by_the_session_policy_and_audited()
    {
        await _storage.PutAsync(_beta, "tenants/beta/secret.txt", Body("beta's"));
        var denied = await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.GetAsync(_acme, "tenants/beta/secret.txt"));
        Assert.Equal(Decision.ImplicitDeny, denied.Decision.Decision);
        Assert.Equal(PolicyKind.Session, denied.Decision.MissingAllow);
        await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.PutAsync(_acme, "tenants/beta/secret.txt", Body("overwritten")));
        await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.ListAsync(_acme, "tenants/beta/"));
        await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.DeleteAsync(_acme, "tenants/beta/secret.txt"));
        Assert.Equal("beta's", await ReadAsync(_beta, "tenants/beta/secret.txt"));

        var audit = (await AuditAsync()).Where(e => e.Outcome == "denied").ToList();
        Assert.Equal(4, audit.Count);
        var first = audit[0];
        Assert.Equal(_acme.TenantId, first.TenantId);
        Assert.Equal("storage:GetObject", first.Action);
        Assert.Equal("trn:tenantry:storage::beta:tenants/beta/secret.txt", first.Detail!["resource"]!.GetValue<string>());
        Assert.Equal("ImplicitDeny", first.Detail["decision"]!.GetValue<string>());
        Assert.Equal("session", first.Detail["missingAllow"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("tenants/acme/../beta/secret.txt")]
    [InlineData("tenants/acme/%2e%2e/beta/secret.txt")]
    [InlineData("tenants/acme/..%2Fbeta%2Fsecret.txt")]
    [InlineData("tenants/acme\\..\\beta\\secret.txt")]
    [InlineData("/tenants/beta/secret.txt")]
    [InlineData("tenants/acme/\uff0e\uff0e/beta/secret.txt")]
    public async Task Traversal_variants_are_refused_before_reaching_the_files_and_audited(string key)
    {
        await _storage.PutAsync(_beta, "tenants/beta/secret.txt", Body("beta's"));
        await Assert.ThrowsAsync<InvalidObjectKeyException>(() => _storage.GetAsync(_acme, key));
        await Assert.ThrowsAsync<InvalidObjectKeyException>(() => _storage.PutAsync(_acme, key, Body("x")));
        await Assert.ThrowsAsync<InvalidObjectKeyException>(() => _storage.DeleteAsync(_acme, key));
        Assert.Equal("beta's", await ReadAsync(_beta, "tenants/beta/secret.txt"));
        var rejected = (await AuditAsync()).Where(e => e.Outcome == "rejected").ToList();
        Assert.Equal(3, rejected.Count);
        Assert.All(rejected, e => Assert.Equal(_acme.TenantId, e.TenantId));
    }

    [Fact]
    public async Task Session_policy_narrowed_to_read_only_refuses_writes_and_deletes()
    {
        await _storage.PutAsync(_acme, "tenants/acme/a.txt", Body("v1"));
        await _db.WriteAsync((c, tx) => PolicyStore.PutTemplateAsync(c, tx, "basic",
            """{"Version":"2012-10-17","Statement":{"Sid":"ReadOnly","Effect":"Allow","Action":["storage:GetObject","storage:ListObjects"],"Resource":"trn:tenantry:storage::${tenant}:tenants/${tenant}/*"}}""",
            DateTimeOffset.UtcNow));
        _catalog.Invalidate();

        Assert.Equal("v1", await ReadAsync(_acme, "tenants/acme/a.txt"));
        Assert.Single(await _storage.ListAsync(_acme, "tenants/acme/"));
        var put = await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.PutAsync(_acme, "tenants/acme/a.txt", Body("v2")));
        Assert.Equal(PolicyKind.Session, put.Decision.MissingAllow);
        await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.DeleteAsync(_acme, "tenants/acme/a.txt"));
        Assert.Equal("v1", await ReadAsync(_acme, "tenants/acme/a.txt"));
        Assert.Equal(2, (await AuditAsync()).Count(e => e.Outcome == "denied"));
    }

    [Fact]
    public async Task Guardrail_deny_holds_even_when_the_tier_policy_allows_and_names_the_statement()
    {
        await _storage.PutAsync(_acme, "tenants/acme/a.txt", Body("v1"));
        await _db.WriteAsync((c, tx) => PolicyStore.ReplaceGuardrailsAsync(c, tx,
        [
            ("full-access", """{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"""),
            ("no-deletes", """{"Version":"2012-10-17","Statement":{"Sid":"NoDeletes","Effect":"Deny","Action":"storage:DeleteObject","Resource":"*"}}"""),
        ], DateTimeOffset.UtcNow));
        _catalog.Invalidate();

        var denied = await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.DeleteAsync(_acme, "tenants/acme/a.txt"));
        Assert.Equal(Decision.ExplicitDeny, denied.Decision.Decision);
        Assert.Equal("guardrail:no-deletes", denied.Decision.DecidedBy!.Policy);
        var audit = Assert.Single(await AuditAsync(), e => e.Outcome == "denied");
        Assert.Equal("NoDeletes", audit.Detail!["sid"]!.GetValue<string>());
        Assert.Equal("$.Statement", audit.Detail["statement"]!.GetValue<string>());
        Assert.Equal("storage:DeleteObject", audit.Action);
        Assert.Equal("v1", await ReadAsync(_acme, "tenants/acme/a.txt"));
    }

    [Fact]
    public async Task Guardrails_that_allow_nothing_for_storage_deny_everything()
    {
        await _db.WriteAsync((c, tx) => PolicyStore.ReplaceGuardrailsAsync(c, tx,
            [("compute-only", """{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"compute:*","Resource":"*"}}""")], DateTimeOffset.UtcNow));
        _catalog.Invalidate();
        var denied = await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.PutAsync(_acme, "tenants/acme/a.txt", Body("x")));
        Assert.Equal(PolicyKind.Guardrail, denied.Decision.MissingAllow);
        Assert.Null(await Provider.GetAsync(ObjectKeys.Parse("tenants/acme/a.txt"), default));
    }

    [Fact]
    public async Task Member_role_cannot_delete_even_its_own_objects()
    {
        var member = _acme with { Name = "mia@acme.test", Role = TenantPrincipal.MemberRole };
        await _storage.PutAsync(member, "tenants/acme/m.txt", Body("m"));
        var denied = await Assert.ThrowsAsync<StorageAccessDeniedException>(() => _storage.DeleteAsync(member, "tenants/acme/m.txt"));
        Assert.Equal(PolicyKind.Identity, denied.Decision.MissingAllow);
    }

    [Fact]
    public async Task Offboarding_exports_the_tenant_objects_then_deletes_every_one_and_no_other_tenants()
    {
        var storage = new LocalFolderStorageProvider(Options.Create(new TenantryOptions { DataDir = _dir }), Provider);
        var tenant = new TenantRef(_acme.TenantId, "acme", "Acme", "basic", IsolationModel.Pool, "admin@acme.test");
        await storage.ProvisionAsync(tenant, default);
        await _storage.PutAsync(_acme, "tenants/acme/uploads/a.txt", Body("A"));
        await _storage.PutAsync(_acme, "tenants/acme/reports/2026/q1.csv", Body("q1"));
        await _storage.PutAsync(_acme, "tenants/acme/top.txt", Body("top"));
        await _storage.PutAsync(_beta, "tenants/beta/uploads/a.txt", Body("B"));

        var path = await storage.SaveExportAsync(tenant, "export.zip", async stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            await storage.ExportAsync(tenant, zip, default);
        }, default);
        using (var zip = ZipFile.OpenRead(path))
        {
            Assert.Equal(["files/reports/2026/q1.csv", "files/top.txt", "files/uploads/a.txt"], zip.Entries.Select(e => e.FullName).Order(StringComparer.Ordinal));
            using var reader = new StreamReader(zip.GetEntry("files/reports/2026/q1.csv")!.Open());
            Assert.Equal("q1", await reader.ReadToEndAsync());
        }

        await storage.DeleteAsync(tenant, default);
        await storage.DeleteAsync(tenant, default);
        // Only the export archive is left (locally it sits in the tenant's exports/ folder).
        var left = await Provider.ListAsync(ObjectKeys.ParsePrefix("tenants/acme/"), 1000, default);
        Assert.DoesNotContain(left, o => !o.Key.StartsWith("tenants/acme/exports/", StringComparison.Ordinal));
        Assert.Equal("B", await ReadAsync(_beta, "tenants/beta/uploads/a.txt"));
        Assert.True(File.Exists(path));
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        (Provider as IDisposable)?.Dispose();
        _db.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

public sealed class LocalTenantStorageTests() : TenantStorageContract(dir => new LocalObjectStore(Options.Create(new TenantryOptions { DataDir = dir })))
{
    [Fact]
    public async Task Objects_are_files_in_the_tenant_folder()
    {
        await _storage.PutAsync(_acme, "tenants/acme/uploads/a.txt", Body("hello"));
        Assert.Equal("hello", await File.ReadAllTextAsync(Path.Combine(_dir, "tenants", "acme", "uploads", "a.txt")));
    }

    [Fact]
    public async Task Platform_files_are_not_objects()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "tenants", "acme"));
        await File.WriteAllTextAsync(Path.Combine(_dir, "tenants", "acme", ".tenant-id"), _acme.TenantId.ToString());
        await Assert.ThrowsAsync<InvalidObjectKeyException>(() => _storage.GetAsync(_acme, "tenants/acme/.tenant-id"));
        await Assert.ThrowsAsync<InvalidObjectKeyException>(() => _storage.PutAsync(_acme, "tenants/acme/exports/fake.zip", Body("x")));
        Assert.DoesNotContain(await _storage.ListAsync(_acme, "tenants/acme/"), o => o.Key.EndsWith(".tenant-id", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Object_under_an_object_is_a_conflict()
    {
        await _storage.PutAsync(_acme, "tenants/acme/a", Body("file"));
        await Assert.ThrowsAsync<ObjectConflictException>(() => _storage.PutAsync(_acme, "tenants/acme/a/b", Body("x")));
        await _storage.PutAsync(_acme, "tenants/acme/d/e", Body("x"));
        await Assert.ThrowsAsync<ObjectConflictException>(() => _storage.PutAsync(_acme, "tenants/acme/d", Body("x")));
    }

}

public sealed class S3TenantStorageTests(S3rverServer s3) : TenantStorageContract(_ => S3(s3)), IClassFixture<S3rverServer>
{
    private static S3ObjectStore S3(S3rverServer server)
    {
        // A bucket per test: tests share the server, never their objects.
        var bucket = "t" + Guid.NewGuid().ToString("N")[..20];
        using (var admin = new Amazon.S3.AmazonS3Client(new Amazon.Runtime.BasicAWSCredentials(S3rverServer.AccessKey, S3rverServer.SecretKey), new Amazon.S3.AmazonS3Config { ServiceURL = server.ServiceUrl, ForcePathStyle = true, AuthenticationRegion = "us-east-1" }))
        {
            admin.PutBucketAsync(bucket).GetAwaiter().GetResult();
        }

        return new S3ObjectStore(new S3ObjectStoreOptions { ServiceUrl = server.ServiceUrl, Bucket = bucket, AccessKey = S3rverServer.AccessKey, SecretKey = S3rverServer.SecretKey }, TimeProvider.System);
    }
}
