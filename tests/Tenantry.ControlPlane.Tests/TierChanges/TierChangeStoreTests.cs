using System.Text.RegularExpressions;
using Tenantry.ControlPlane.Database;
using Tenantry.ControlPlane.TierChanges;

namespace Tenantry.ControlPlane.Tests.TierChanges;

/// <summary>The <c>tier_changes</c> columns a move between cells records, on a new store and on one made before them.</summary>
public sealed partial class TierChangeStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "tenantry-tier-store", Guid.NewGuid().ToString("N"));

    public TierChangeStoreTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task A_store_made_before_moves_gets_their_columns_and_keeps_its_rows()
    {
        var path = Path.Combine(_dir, "control.db");
        var before = MoveColumns().Replace(ControlPlaneSchema.Sqlite, "");
        Assert.NotEqual(ControlPlaneSchema.Sqlite, before);
        var change = new TierChange
        {
            OperationId = Guid.CreateVersion7(),
            TenantId = Guid.CreateVersion7(),
            Slug = "old-change",
            SourceTier = "basic",
            SourceIsolation = IsolationModel.Pool,
            TargetTier = "premium",
            TargetIsolation = IsolationModel.Silo,
            Phase = TierChangePhase.Moving,
            CreatedAt = DateTimeOffset.UtcNow,
        };
        using (var old = new SqliteDatabase(path, before))
        {
            await old.WriteAsync((c, tx) => c.ExecuteAsync(
                "INSERT INTO tier_changes (operation_id, tenant_id, slug, source_tier, source_isolation, target_tier, target_isolation, phase, created_at, updated_at) VALUES (@op, @t, 'old-change', 'basic', 'pool', 'premium', 'silo', 'moving', @now, @now)",
                tx, ("@op", change.OperationId), ("@t", change.TenantId), ("@now", change.CreatedAt)));
        }

        using var db = new SqliteDatabase(path, ControlPlaneSchema.Sqlite, ControlPlaneSchema.AddedColumns);
        var read = await db.ReadAsync(c => TierChangeStore.GetAsync(c, null, change.OperationId));
        Assert.NotNull(read);
        Assert.False(read.IsMove);
        Assert.Null(read.SourceServer);

        // A move: its cells at the start, its servers once provision-target chose them.
        var move = change with { OperationId = Guid.CreateVersion7(), TargetTier = "basic", TargetIsolation = IsolationModel.Pool, SourceCell = "eu-1", TargetCell = "eu-2" };
        await db.WriteAsync((c, tx) => TierChangeStore.InsertAsync(c, tx, move));
        var started = await db.ReadAsync(c => TierChangeStore.GetAsync(c, null, move.OperationId));
        Assert.Equal(("eu-1", "eu-2", true), (started!.SourceCell, started.TargetCell, started.IsMove));
        await db.WriteAsync((c, tx) => TierChangeStore.SetServersAsync(c, tx, move.OperationId, "pg-a", "pg-b", DateTimeOffset.UtcNow));
        var placed = await db.ReadAsync(c => TierChangeStore.GetAsync(c, null, move.OperationId));
        Assert.Equal(("pg-a", "pg-b", false), (placed!.SourceServer, placed.TargetServer, placed.SamePlace));
        await db.WriteAsync((c, tx) => TierChangeStore.SetServersAsync(c, tx, move.OperationId, null, null, DateTimeOffset.UtcNow));
        Assert.True((await db.ReadAsync(c => TierChangeStore.GetAsync(c, null, move.OperationId)))!.SamePlace);
    }

    [GeneratedRegex(@",\s*(source_cell|source_server|target_server) TEXT")]
    private static partial Regex MoveColumns();
}
