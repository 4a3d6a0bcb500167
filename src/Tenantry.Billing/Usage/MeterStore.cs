using System.Data.Common;
using System.Text.Json;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Usage;

/// <summary>The meters table's writes (reads go through <see cref="BillingCatalog"/>). Callers own the transaction.</summary>
internal static class MeterStore
{
    /// <summary>Inserts <paramref name="meter"/>; false when a meter with its key exists (meters are never redefined).</summary>
    public static async Task<bool> InsertAsync(DbConnection c, DbTransaction tx, Meter meter, DateTimeOffset now) => await c.ExecuteAsync(
        "INSERT INTO meters (key, definition, created_at) VALUES (@key, @def, @now) ON CONFLICT (key) DO NOTHING",
        tx, ("@key", meter.Key), ("@def", JsonSerializer.Serialize(meter, BillingCatalog.Json)), ("@now", now)) == 1;
}
