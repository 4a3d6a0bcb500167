using System.Data.Common;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Npgsql;
using Tenantry.Data;
using Tenantry.Data.Migrations;
using Tenantry.Data.Postgres;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Providers.Postgres;

/// <summary>
/// Tenant databases on real PostgreSQL servers:
/// <list type="bullet">
/// <item>pool: rows in the shared <c>tenantry_pool</c> database, kept apart by forced row-level
/// security, reached as the app role (<c>NOBYPASSRLS</c>, owns nothing);</item>
/// <item>bridge: a schema and a login role per tenant in <c>tenantry_bridge</c> on the placed server;</item>
/// <item>silo: a database owned by the tenant's own role on the placed server.</item>
/// </list>
/// Passwords are generated per tenant and stored encrypted (<see cref="TenantCredentials"/>) before
/// they are used, so a retried step re-applies the same one. Every step is idempotent.
/// </summary>
internal sealed partial class PostgresTenantDatabaseProvider(
    PostgresServers servers,
    PostgresProviderOptions options,
    TenantPlacement placement,
    TenantCredentials credentials,
    ITenantDataSource data,
    TenantSchema schema,
    ILogger<PostgresTenantDatabaseProvider> logger) : ITenantDatabaseProvider, IDisposable
{
    private const string PoolSecret = "pool/app";
    private readonly SemaphoreSlim _prepare = new(1, 1);
    private readonly HashSet<string> _prepared = new(StringComparer.Ordinal);

    public async Task<JsonObject> CreateAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        switch (tenant.Isolation)
        {
            case IsolationModel.Pool:
                await EnsurePoolAsync(cancellationToken);
                break;
            case IsolationModel.Bridge:
            {
                var server = tenant.Server is { } pinned ? Resolve(pinned) : await placement.PlaceAsync(tenant, cancellationToken);
                await EnsureBridgeDatabaseAsync(server, cancellationToken);
                var password = await credentials.GetOrCreateAsync(SecretName(tenant), tenant.Id, PostgresTenantDdl.NewPassword, cancellationToken);
                await using (var admin = await server.OpenAdminAsync(options.BridgeDatabase, cancellationToken))
                {
                    await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.CreateBridgeTenant(tenant.Slug, password), cancellationToken);
                }

                await MigrateOrThrowAsync(MigrationTarget.PostgresBridge(server.AdminConnectionStringFor(options.BridgeDatabase), tenant.Slug) with { TenantId = tenant.Id }, cancellationToken);
                break;
            }

            case IsolationModel.Silo:
            {
                var server = tenant.Server is { } pinned ? Resolve(pinned) : await placement.PlaceAsync(tenant, cancellationToken);
                var password = await credentials.GetOrCreateAsync(SecretName(tenant), tenant.Id, PostgresTenantDdl.NewPassword, cancellationToken);
                await using (var admin = await server.OpenAdminAsync("postgres", cancellationToken))
                {
                    await PostgresTenantDdl.CreateSiloTenantAsync(admin, tenant.Slug, password, cancellationToken);
                }

                await MigrateOrThrowAsync(MigrationTarget.PostgresSilo(tenant.Slug, PostgresSiloTarget.For(server.Endpoint(), tenant.Slug, password)) with { TenantId = tenant.Id }, cancellationToken);
                break;
            }

            default:
                throw new PermanentStepException($"Unknown isolation model {tenant.Isolation}.");
        }

        // Prove the tenant's own credentials reach its data before calling the database made.
        var context = await ConnectAsync(tenant, cancellationToken) ?? throw new InvalidOperationException("The tenant's database is not reachable yet.");
        await using (var session = await data.OpenSessionAsync(context, cancellationToken))
        {
            await session.ScalarAsync("SELECT 1", cancellationToken: cancellationToken);
        }

        Log.Created(logger, tenant.Id, tenant.Isolation, context.Target);
        return Resources(tenant, context);
    }

    public async Task<TenantDataContext?> ConnectAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        TenantDataTarget target;
        switch (tenant.Isolation)
        {
            case IsolationModel.Pool:
            {
                var password = await credentials.FindAsync(PoolSecret, cancellationToken);
                if (password is null)
                {
                    return null;
                }

                var builder = new NpgsqlConnectionStringBuilder(servers.Pool.AdminConnectionStringFor(options.PoolDatabase)) { Username = options.PoolAppRole, Password = password };
                target = new PostgresPoolTarget(builder.ConnectionString);
                break;
            }

            default:
            {
                var server = await ServerAsync(tenant, cancellationToken);
                var password = await credentials.FindAsync(SecretName(tenant), cancellationToken);
                if (server is null || password is null)
                {
                    return null;
                }

                target = tenant.Isolation == IsolationModel.Bridge
                    ? PostgresBridgeTarget.For(server.Endpoint(), options.BridgeDatabase, tenant.Slug, password)
                    : PostgresSiloTarget.For(server.Endpoint(), tenant.Slug, password);
                break;
            }
        }

        return new TenantDataContext { TenantId = tenant.Id, Slug = tenant.Slug, Isolation = tenant.Isolation, Target = target };
    }

    public async Task ExportAsync(TenantRef tenant, ZipArchive archive, CancellationToken cancellationToken)
    {
        if (await ConnectAsync(tenant, cancellationToken) is not { } context)
        {
            return;
        }

        // Through the tenant's own session: on the pool, RLS hands over this tenant's rows and no others.
        await using var session = await data.OpenSessionAsync(context, cancellationToken);
        foreach (var table in await TablesAsync(session, cancellationToken))
        {
            var rows = await session.QueryAsync($"SELECT * FROM {TenantDatabaseNames.Quote(table)}", ExportRows.Read, cancellationToken: cancellationToken);
            await using var writer = ExportRows.Entry(archive, table);
            foreach (var row in rows)
            {
                await writer.WriteLineAsync(row.ToJsonString(JsonSerializerOptions.Default));
            }
        }
    }

    public async Task DeleteAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        var context = await ConnectAsync(tenant, cancellationToken);
        if (tenant.Isolation == IsolationModel.Pool)
        {
            if (context is null)
            {
                return;
            }

            // Deleted through the tenant's own session: RLS confines every DELETE to its rows.
            await using var session = await data.OpenSessionAsync(context, cancellationToken);
            var tables = await TablesAsync(session, cancellationToken);
            foreach (var table in tables)
            {
                await session.ExecuteAsync($"DELETE FROM {TenantDatabaseNames.Quote(table)}", cancellationToken: cancellationToken);
            }

            await session.CommitAsync(cancellationToken);
            return;
        }

        var server = await ServerAsync(tenant, cancellationToken);
        if (context is not null)
        {
            await data.ForgetAsync(context);
        }

        if (server is not null)
        {
            if (tenant.Isolation == IsolationModel.Bridge)
            {
                await using var admin = await server.OpenAdminAsync(options.BridgeDatabase, cancellationToken);
                await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.DropBridgeTenant(tenant.Slug), cancellationToken);
            }
            else
            {
                await using var admin = await server.OpenAdminAsync("postgres", cancellationToken);
                await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.DropSiloTenant(tenant.Slug), cancellationToken);
            }
        }

        // A pinned copy (a move's other side) goes alone: the secret and placement serve the tenant's live copy.
        if (tenant.Server is not null && (await placement.FindAsync(tenant.Id, cancellationToken))?.Name != tenant.Server)
        {
            Log.Dropped(logger, tenant.Id, tenant.Isolation, server);
            return;
        }

        // Only once the role and its data are gone: the secret, then the placement (a retry still finds the server until here).
        await credentials.DeleteAsync(SecretName(tenant), cancellationToken);
        await placement.ReleaseAsync(tenant.Id, cancellationToken);
        Log.Dropped(logger, tenant.Id, tenant.Isolation, server);
    }

    public async Task<TenantDataPlace?> PlaceAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        if (tenant.Isolation == IsolationModel.Pool)
        {
            if (await credentials.FindAsync(PoolSecret, cancellationToken) is null)
            {
                return null;
            }

            var pool = servers.Pool;
            return new TenantDataPlace("postgresql", true, "public", $"{pool.Name}/{options.PoolDatabase}", async ct => await pool.OpenAdminAsync(options.PoolDatabase, ct));
        }

        if (await ServerAsync(tenant, cancellationToken) is not { } server)
        {
            return null;
        }

        var bridge = tenant.Isolation == IsolationModel.Bridge;
        var database = bridge ? options.BridgeDatabase : TenantDatabaseNames.SiloDatabase(tenant.Slug);
        var schema = bridge ? TenantDatabaseNames.BridgeSchema(tenant.Slug) : "public";
        await using (var admin = await server.OpenAdminAsync(bridge ? options.BridgeDatabase : "postgres", cancellationToken))
        {
            var sql = bridge ? "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)" : "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)";
            await using var exists = new NpgsqlCommand(sql, admin) { Parameters = { new() { Value = bridge ? schema : database } } };
            if (await exists.ExecuteScalarAsync(cancellationToken) is not true)
            {
                return null;
            }
        }

        return new TenantDataPlace("postgresql", false, schema, $"{server.Name}/{database}/{schema}", async ct => await server.OpenAdminAsync(database, ct));
    }

    public async Task DropPlaceAsync(TenantRef tenant, CancellationToken cancellationToken)
    {
        if (tenant.Isolation == IsolationModel.Pool)
        {
            await DeleteAsync(tenant, cancellationToken);
            return;
        }

        if (await ConnectAsync(tenant, cancellationToken) is { } context)
        {
            await data.ForgetAsync(context);
        }

        if (await ServerAsync(tenant, cancellationToken) is not { } server)
        {
            return;
        }

        if (tenant.Isolation == IsolationModel.Bridge)
        {
            await using var admin = await server.OpenAdminAsync(options.BridgeDatabase, cancellationToken);
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.DropBridgeTenant(tenant.Slug), cancellationToken);
        }
        else
        {
            await using var admin = await server.OpenAdminAsync("postgres", cancellationToken);
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.DropSiloTenant(tenant.Slug), cancellationToken);
        }

        Log.Dropped(logger, tenant.Id, tenant.Isolation, server);
    }

    public async Task<MigrationReport> MigrateAsync(IReadOnlyList<TenantRef> tenants, CancellationToken cancellationToken)
    {
        var targets = new List<MigrationTarget>();
        if (await PoolTargetAsync(cancellationToken) is { } pool)
        {
            targets.Add(pool);
        }

        foreach (var tenant in tenants.Where(t => t.Isolation != IsolationModel.Pool))
        {
            if (await DedicatedTargetAsync(tenant, cancellationToken) is { } target)
            {
                targets.Add(target);
            }
        }

        return await Runner().RunAsync(targets, cancellationToken);
    }

    public Task<MigrationTarget?> MigrationTargetAsync(TenantRef tenant, CancellationToken cancellationToken) =>
        tenant.Isolation == IsolationModel.Pool ? PoolTargetAsync(cancellationToken) : DedicatedTargetAsync(tenant, cancellationToken);

    public MigrationTarget ScratchTarget() =>
        // The maintenance database of the pool server: always there, and nothing of the tenants' lives in it.
        MigrationTarget.PostgresPool(servers.Pool.AdminConnectionStringFor("postgres"), options.PoolAppRole, "tenantry_scratch_" + Guid.NewGuid().ToString("N")[..16]);

    /// <summary>The pool once it is prepared (its app role's secret is stored first, so it exists from then on).</summary>
    private async Task<MigrationTarget?> PoolTargetAsync(CancellationToken cancellationToken) =>
        await credentials.FindAsync(PoolSecret, cancellationToken) is null
            ? null
            : MigrationTarget.PostgresPool(servers.Pool.AdminConnectionStringFor(options.PoolDatabase), options.PoolAppRole);

    private async Task<MigrationTarget?> DedicatedTargetAsync(TenantRef tenant, CancellationToken cancellationToken) =>
        (await ConnectAsync(tenant, cancellationToken))?.Target switch
        {
            PostgresSiloTarget silo => MigrationTarget.PostgresSilo(tenant.Slug, silo) with { TenantId = tenant.Id },
            PostgresBridgeTarget bridge when ServerOf(bridge.Server) is { } server =>
                MigrationTarget.PostgresBridge(server.AdminConnectionStringFor(options.BridgeDatabase), tenant.Slug) with { TenantId = tenant.Id },
            _ => null,
        };

    public async Task<string?> ServerOfAsync(TenantRef tenant, CancellationToken cancellationToken) =>
        tenant.Isolation == IsolationModel.Pool ? null : (await placement.FindAsync(tenant.Id, cancellationToken))?.Name;

    public async Task<string?> ChooseServerAsync(TenantRef tenant, string cell, CancellationToken cancellationToken) =>
        tenant.Isolation == IsolationModel.Pool ? null : (await placement.ChooseAsync(tenant.Id, cell, cancellationToken)).Name;

    public Task SetServerAsync(DbConnection connection, DbTransaction transaction, Guid tenantId, string server, DateTimeOffset now) =>
        TenantPlacement.SetServerAsync(connection, transaction, tenantId, Resolve(server).Name);

    public void Dispose() => _prepare.Dispose();

    /// <summary>The server of this copy of the tenant's data: the pinned one (a move's source or target), else its placement's.</summary>
    private async Task<PostgresServerInfo?> ServerAsync(TenantRef tenant, CancellationToken cancellationToken) =>
        tenant.Server is { } pinned ? Resolve(pinned) : await placement.FindAsync(tenant.Id, cancellationToken);

    private PostgresServerInfo Resolve(string name) =>
        servers.Find(name) ?? throw new PermanentStepException($"PostgreSQL server '{name}' is no longer in Tenantry:Postgres:Servers.");

    private static string SecretName(TenantRef tenant) => $"tenant/{tenant.Id}/database";

    /// <summary>Once per process (idempotent, so replicas and restarts may repeat it): the pool database, its app role, the schema.</summary>
    private async Task EnsurePoolAsync(CancellationToken cancellationToken)
    {
        await OnceAsync("pool", async () =>
        {
            var server = servers.Pool;
            await EnsureDatabaseAsync(server, options.PoolDatabase, cancellationToken);
            var password = await credentials.GetOrCreateAsync(PoolSecret, null, PostgresTenantDdl.NewPassword, cancellationToken);
            await using (var admin = await server.OpenAdminAsync(options.PoolDatabase, cancellationToken))
            {
                await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.CreatePoolAppRole(options.PoolAppRole, password), cancellationToken);
            }

            await MigrateOrThrowAsync(MigrationTarget.PostgresPool(server.AdminConnectionStringFor(options.PoolDatabase), options.PoolAppRole), cancellationToken);
        });
    }

    private Task EnsureBridgeDatabaseAsync(PostgresServerInfo server, CancellationToken cancellationToken) =>
        OnceAsync("bridge:" + server.Name, async () =>
        {
            await EnsureDatabaseAsync(server, options.BridgeDatabase, cancellationToken);
            await using var admin = await server.OpenAdminAsync(options.BridgeDatabase, cancellationToken);
            await PostgresTenantDdl.ExecuteAsync(admin, PostgresTenantDdl.PrepareBridgeDatabase(), cancellationToken);
        });

    private async Task OnceAsync(string key, Func<Task> prepare)
    {
        await _prepare.WaitAsync();
        try
        {
            if (!_prepared.Contains(key))
            {
                await prepare();
                _prepared.Add(key);
            }
        }
        finally
        {
            _prepare.Release();
        }
    }

    private static async Task EnsureDatabaseAsync(PostgresServerInfo server, string database, CancellationToken cancellationToken)
    {
        await using var admin = await server.OpenAdminAsync("postgres", cancellationToken);
        await using (var exists = new NpgsqlCommand("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", admin) { Parameters = { new() { Value = database } } })
        {
            if (await exists.ExecuteScalarAsync(cancellationToken) is true)
            {
                return;
            }
        }

        try
        {
            // The name comes from validated configuration and is quoted; CREATE DATABASE takes no parameters.
            await using var create = new NpgsqlCommand($"CREATE DATABASE {TenantDatabaseNames.Quote(TenantDatabaseNames.ValidateIdentifier(database))}", admin);
            await create.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
            // Another replica made it first.
        }
    }

    private TenantMigrationRunner Runner() =>
        new(schema, new MigrationRunnerOptions { MaxParallelism = options.MigrationParallelism });

    private async Task MigrateOrThrowAsync(MigrationTarget target, CancellationToken cancellationToken)
    {
        var report = await Runner().RunAsync([target], cancellationToken);
        if (report.Failed.FirstOrDefault() is { } failed)
        {
            throw new InvalidOperationException($"Migrating {failed.Target} failed at version {failed.FailedVersion}: {failed.Error}");
        }
    }

    private static async Task<List<string>> TablesAsync(TenantSession session, CancellationToken cancellationToken) =>
        await session.QueryAsync(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name",
            r => r.GetString(0),
            cancellationToken: cancellationToken);

    private JsonObject Resources(TenantRef tenant, TenantDataContext context)
    {
        var resources = new JsonObject { ["engine"] = "postgresql", ["model"] = tenant.Isolation.ToWire() };
        switch (context.Target)
        {
            case PostgresPoolTarget:
                resources["server"] = servers.Pool.Name;
                resources["host"] = servers.Pool.Host;
                resources["port"] = servers.Pool.Port;
                resources["database"] = options.PoolDatabase;
                resources["schema"] = "public";
                resources["role"] = options.PoolAppRole;
                resources["tenantKey"] = "tenant_id";
                break;
            case PostgresBridgeTarget bridge:
                resources["server"] = ServerName(bridge.Server);
                resources["host"] = bridge.Server.Host;
                resources["port"] = bridge.Server.Port;
                resources["database"] = bridge.Database;
                resources["schema"] = bridge.Schema;
                resources["role"] = bridge.Role;
                break;
            case PostgresSiloTarget silo:
                resources["server"] = ServerName(silo.Server);
                resources["host"] = silo.Server.Host;
                resources["port"] = silo.Server.Port;
                resources["database"] = silo.Database;
                resources["schema"] = "public";
                resources["role"] = silo.Role;
                break;
        }

        return resources;
    }

    private PostgresServerInfo? ServerOf(PostgresEndpoint endpoint) =>
        servers.All.FirstOrDefault(s => s.Host == endpoint.Host && s.Port == endpoint.Port);

    private string ServerName(PostgresEndpoint endpoint) => ServerOf(endpoint)?.Name ?? endpoint.ToString();

    private static partial class Log
    {
        [LoggerMessage(EventId = 4100, Level = LogLevel.Information, Message = "Tenant {TenantId}: {Isolation} database ready at {Target}")]
        public static partial void Created(ILogger logger, Guid tenantId, IsolationModel isolation, TenantDataTarget target);

        [LoggerMessage(EventId = 4101, Level = LogLevel.Information, Message = "Tenant {TenantId}: {Isolation} database dropped ({Server})")]
        public static partial void Dropped(ILogger logger, Guid tenantId, IsolationModel isolation, PostgresServerInfo? server);
    }
}

public static class PostgresTenantDatabasesExtensions
{
    /// <summary>Tenant databases on the PostgreSQL servers of <c>Tenantry:Postgres</c>: placement, credentials and the pool, bridge and silo models.</summary>
    public static TenantryBuilder AddPostgresTenantDatabases(this TenantryBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(sp => new PostgresServers(sp.GetRequiredService<IOptions<TenantryOptions>>().Value.Postgres));
        builder.Services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<TenantryOptions>>().Value.Postgres);
        builder.Services.TryAddSingleton<TenantPlacement>();
        builder.Services.TryAddSingleton<PostgresTenantDatabaseProvider>();
        return builder;
    }
}
