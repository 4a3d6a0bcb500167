using System.Data.Common;
using System.Globalization;
using Tenantry.ControlPlane.Database;

namespace Tenantry.ControlPlane.Instances;

/// <summary>
/// One app instance that should run: a shared instance of an app (<see cref="TenantId"/> null,
/// <see cref="Slot"/> 1..N) or a silo tenant's dedicated instance of it. <see cref="Serving"/>
/// instances get traffic; an instance that is not serving is being started beside a serving one
/// (a release swap) or drained.
/// </summary>
/// <remarks>
/// <see cref="Node"/> is the compute node that runs it (empty in a store made before nodes, until a node adopts it) and
/// <see cref="Host"/> that node's address, where the gateway reaches it; both change together with <see cref="Port"/>
/// when the instance is re-placed after its node died or left.
/// </remarks>
public sealed record AppInstance(string Key, string App, string Release, Guid? TenantId, string? Slug, int Slot, int Port, bool Serving, DateTimeOffset CreatedAt, string Node = "", string Host = "127.0.0.1")
{
    public Uri Upstream => new($"http://{(Host.Contains(':', StringComparison.Ordinal) && !Host.StartsWith('[') ? "[" + Host + "]" : Host)}:{Port.ToString(CultureInfo.InvariantCulture)}");

    public bool Dedicated => TenantId is not null;

    /// <summary>The key of an instance: <c>{owner}/{app}@{release}</c>, where the owner is the tenant's slug or <c>shared-{slot}</c>. It names its folder too.</summary>
    public static string KeyOf(string app, string release, string? slug, int slot) =>
        $"{slug ?? "shared-" + slot.ToString(CultureInfo.InvariantCulture)}/{app}@{release}";
}

/// <summary>The app_instances table: which instances should run, on which port, and which get traffic. Callers own the transaction.</summary>
internal static class InstanceStore
{
    /// <summary>
    /// Repairs what an interrupted swap left of one app's instances: per owner (a silo tenant or a
    /// shared slot) one instance is kept serving (the serving one, else the one of the release the
    /// rollout recorded for the owner, else the oldest) and the other rows are deleted, in one
    /// transaction so that an owner is never left without a serving instance.
    /// </summary>
    public static async Task<(List<AppInstance> Keep, List<AppInstance> Remove)> KeepOnePerOwnerAsync(
        IControlPlaneDatabase db, IReadOnlyList<AppInstance> instances, IReadOnlyDictionary<string, string> recorded, CancellationToken cancellationToken)
    {
        var keep = new List<AppInstance>();
        var remove = new List<AppInstance>();
        foreach (var owner in instances.GroupBy(i => IAppInstances.OwnerOf(i.TenantId, i.Slot)))
        {
            var chosen = owner.FirstOrDefault(i => i.Serving)
                ?? (recorded.TryGetValue(owner.Key, out var release) ? owner.FirstOrDefault(i => i.Release == release) : null)
                ?? owner.OrderBy(i => i.CreatedAt).First();
            keep.Add(chosen with { Serving = true });
            remove.AddRange(owner.Where(i => i.Key != chosen.Key));
        }

        if (remove.Count > 0 || keep.Any(k => !instances.First(i => i.Key == k.Key).Serving))
        {
            // One transaction: an owner is never left without a serving instance.
            await db.WriteAsync(
                async (c, tx) =>
                {
                    foreach (var k in keep)
                    {
                        await InstanceStore.SetServingAsync(c, tx, k.Key, true);
                    }

                    foreach (var r in remove)
                    {
                        await InstanceStore.DeleteAsync(c, tx, r.Key);
                    }
                },
                cancellationToken);
        }

        return (keep, remove);
    }

    public static SchemaPart Schema { get; } = SchemaPart.Portable("Instances", """

        -- Instances (Instances/): the app instances that should run, shared and dedicated.
        CREATE TABLE IF NOT EXISTS app_instances (
            instance_key TEXT PRIMARY KEY,
            app TEXT NOT NULL,
            release_version TEXT NOT NULL,
            tenant_id TEXT NULL,
            slug TEXT NULL,
            slot INTEGER NOT NULL,
            port INTEGER NOT NULL UNIQUE,
            serving INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            node TEXT NOT NULL DEFAULT '',
            host TEXT NOT NULL DEFAULT '127.0.0.1'
        );
        """).WithAddedColumns(("app_instances", "node", "TEXT NOT NULL DEFAULT ''"), ("app_instances", "host", "TEXT NOT NULL DEFAULT '127.0.0.1'"));

    private const string Columns = "instance_key, app, release_version, tenant_id, slug, slot, port, serving, created_at, node, host";

    public static Task<List<AppInstance>> ListAsync(DbConnection c, DbTransaction? tx) =>
        c.QueryAsync($"SELECT {Columns} FROM app_instances ORDER BY instance_key", tx, Read);

    public static Task<List<AppInstance>> ForTenantAsync(DbConnection c, DbTransaction? tx, Guid tenantId) =>
        c.QueryAsync($"SELECT {Columns} FROM app_instances WHERE tenant_id = @id ORDER BY instance_key", tx, Read, ("@id", tenantId));

    public static Task<List<AppInstance>> SharedAsync(DbConnection c, DbTransaction? tx, string app) =>
        c.QueryAsync($"SELECT {Columns} FROM app_instances WHERE tenant_id IS NULL AND app = @app ORDER BY slot, instance_key", tx, Read, ("@app", app));

    public static async Task<AppInstance?> FindAsync(DbConnection c, DbTransaction? tx, string key) =>
        (await c.QueryAsync($"SELECT {Columns} FROM app_instances WHERE instance_key = @key", tx, Read, ("@key", key))).FirstOrDefault();

    /// <summary>The lowest port from <paramref name="first"/> up that no instance holds and is not in <paramref name="reserved"/>.</summary>
    public static async Task<int> FreePortAsync(DbConnection c, DbTransaction tx, int first, IReadOnlySet<int> reserved)
    {
        var taken = (await c.QueryAsync("SELECT port FROM app_instances", tx, r => Convert.ToInt32(r.GetValue(0), CultureInfo.InvariantCulture))).ToHashSet();
        var port = first;
        while (taken.Contains(port) || reserved.Contains(port))
        {
            port++;
        }

        return port;
    }

    public static Task InsertAsync(DbConnection c, DbTransaction tx, AppInstance i) => c.ExecuteAsync(
        $"INSERT INTO app_instances ({Columns}) VALUES (@key, @app, @release, @tenant, @slug, @slot, @port, @serving, @at, @node, @host)",
        tx, ("@key", i.Key), ("@app", i.App), ("@release", i.Release), ("@tenant", i.TenantId), ("@slug", i.Slug), ("@slot", i.Slot),
        ("@port", i.Port), ("@serving", i.Serving), ("@at", i.CreatedAt), ("@node", i.Node), ("@host", i.Host));

    /// <summary>The instance now runs on <paramref name="node"/> at <paramref name="host"/>:<paramref name="port"/> (a re-placement; the routes follow).</summary>
    public static Task MoveAsync(DbConnection c, DbTransaction tx, string key, string node, string host, int port) =>
        c.ExecuteAsync("UPDATE app_instances SET node = @node, host = @host, port = @port WHERE instance_key = @key", tx, ("@key", key), ("@node", node), ("@host", host), ("@port", port));

    /// <summary>Instances placed before nodes existed (no node) become <paramref name="node"/>'s: the one host that ran them.</summary>
    public static Task AdoptUnplacedAsync(DbConnection c, DbTransaction tx, string node, string host) =>
        c.ExecuteAsync("UPDATE app_instances SET node = @node, host = @host WHERE node = ''", tx, ("@node", node), ("@host", host));

    public static Task<List<AppInstance>> OnNodeAsync(DbConnection c, DbTransaction? tx, string node) =>
        c.QueryAsync($"SELECT {Columns} FROM app_instances WHERE node = @node ORDER BY instance_key", tx, Read, ("@node", node));

    /// <summary>How many instances each node holds.</summary>
    public static async Task<Dictionary<string, int>> CountsAsync(DbConnection c, DbTransaction? tx) =>
        (await c.QueryAsync("SELECT node, count(*) FROM app_instances GROUP BY node", tx, r => (Node: r.GetString(0), Count: Convert.ToInt32(r.GetValue(1), CultureInfo.InvariantCulture))))
            .ToDictionary(x => x.Node, x => x.Count, StringComparer.Ordinal);

    public static Task SetServingAsync(DbConnection c, DbTransaction tx, string key, bool serving) =>
        c.ExecuteAsync("UPDATE app_instances SET serving = @serving WHERE instance_key = @key", tx, ("@key", key), ("@serving", serving));

    public static Task DeleteAsync(DbConnection c, DbTransaction tx, string key) =>
        c.ExecuteAsync("DELETE FROM app_instances WHERE instance_key = @key", tx, ("@key", key));

    public static Task DeleteTenantAsync(DbConnection c, DbTransaction tx, Guid tenantId) =>
        c.ExecuteAsync("DELETE FROM app_instances WHERE tenant_id = @id", tx, ("@id", tenantId));

    private static AppInstance Read(DbDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), r.ReadGuidOrNull(3), r.ReadStringOrNull(4),
        Convert.ToInt32(r.GetValue(5), CultureInfo.InvariantCulture), Convert.ToInt32(r.GetValue(6), CultureInfo.InvariantCulture),
        Convert.ToInt64(r.GetValue(7), CultureInfo.InvariantCulture) != 0, r.ReadTime(8), r.GetString(9), r.GetString(10));
}
