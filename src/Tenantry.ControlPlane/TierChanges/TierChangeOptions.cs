using System.ComponentModel.DataAnnotations;

namespace Tenantry.ControlPlane.TierChanges;

/// <summary>Tier changes that move a tenant's data, under <c>Tenantry:TierChanges</c>.</summary>
public sealed class TierChangeOptions
{
    public const string Section = "Tenantry:TierChanges";

    /// <summary>How long the old copy of a moved tenant's data is kept read-only before it is exported and deleted.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "30.00:00:00")]
    public TimeSpan SourceGrace { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Rows a SQLite copy writes per transaction (PostgreSQL streams each table with one binary COPY).</summary>
    [Range(1, 1_000_000)]
    public int CopyBatchSize { get; set; } = 5000;

    /// <summary>How many recorded changes may be left when catch-up hands over to the freeze (which applies the rest).</summary>
    [Range(0, 1_000_000)]
    public int FreezeBacklog { get; set; } = 100;

    /// <summary>How long requests under way may finish on the old place after the switch, before its compute is removed.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan DrainTime { get; set; } = TimeSpan.FromSeconds(2);
}
