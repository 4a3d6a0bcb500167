using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.ControlPlane.Audit;
using Tenantry.ControlPlane.ObjectStorage;
using Tenantry.ControlPlane.Policies;
using Tenantry.ControlPlane.Database;
using Tenantry.Policies;
using Tenantry.Testing;

namespace Tenantry.ControlPlane.Tests.Objects;

/// <summary>Guardrails and templates in the PostgreSQL dialect of the control-plane store, on a private server.</summary>
public sealed class PostgresPolicyStoreTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-unit", Guid.NewGuid().ToString("N"));
    private PostgresServer _server = null!;
    private PostgresDatabase _db = null!;

    public async Task InitializeAsync()
    {
        _server = await PostgresServer.StartAsync();
        _db = PostgresDatabase.Open(_server.SuperuserConnectionString, ControlPlaneSchema.Postgres);
    }

    public async Task DisposeAsync()
    {
        await _db.DisposeAsync();
        await _server.DisposeAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Guardrail_stored_in_postgres_denies_a_storage_call_and_the_deny_is_audited_there()
    {
        var now = DateTimeOffset.UtcNow;
        await _db.WriteAsync((c, tx) => PolicyStore.ReplaceGuardrailsAsync(c, tx,
        [
            ("full-access", """{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"""),
            ("no-writes", """{"Version":"2012-10-17","Statement":{"Sid":"NoWrites","Effect":"Deny","Action":"storage:PutObject","Resource":"*"}}"""),
        ], now));
        await _db.WriteAsync((c, tx) => PolicyStore.PutTemplateAsync(c, tx, "basic", PlatformPolicies.DefaultTemplate, now));
        await _db.WriteAsync((c, tx) => PolicyStore.PutTemplateAsync(c, tx, "basic", PlatformPolicies.DefaultTemplate, now));

        var catalog = new PolicyCatalog(_db, TimeProvider.System);
        Assert.Equal(["full-access", "no-writes"], (await catalog.GuardrailsAsync()).Select(g => g.Name));
        Assert.False((await catalog.TemplateAsync("basic")).IsDefault);

        var storage = new TenantObjectStorage(new LocalObjectStore(Options.Create(new TenantryOptions { DataDir = _dir })), catalog, _db, TimeProvider.System, NullLogger<TenantObjectStorage>.Instance);
        var principal = new TenantPrincipal(Guid.NewGuid(), "acme", "basic", "alice@acme.test", TenantPrincipal.AdminRole, TenantPrincipal.UserType);
        var denied = await Assert.ThrowsAsync<StorageAccessDeniedException>(() => storage.PutAsync(principal, "tenants/acme/a.txt", new MemoryStream(Encoding.UTF8.GetBytes("x"))));
        Assert.Equal(Decision.ExplicitDeny, denied.Decision.Decision);
        Assert.Equal("guardrail:no-writes", denied.Decision.DecidedBy!.Policy);
        var audit = await _db.ReadAsync(c => AuditLog.ListAsync(c, principal.TenantId, 0, 10));
        Assert.Equal("NoWrites", Assert.Single(audit).Detail!["sid"]!.GetValue<string>());
    }
}
