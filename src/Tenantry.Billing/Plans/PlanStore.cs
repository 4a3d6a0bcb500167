using System.Data.Common;
using System.Text.Json;
using Tenantry.ControlPlane.Database;

namespace Tenantry.Billing.Plans;

/// <summary>The plans table's writes (reads go through <see cref="BillingCatalog"/>). Callers own the transaction.</summary>
internal static class PlanStore
{
    /// <summary>Inserts version 1 of <paramref name="plan"/>; false when a plan with its id exists.</summary>
    public static async Task<bool> InsertAsync(DbConnection c, DbTransaction tx, Plan plan, DateTimeOffset now) => await c.ExecuteAsync(
        "INSERT INTO plans (id, definition, version, created_at, updated_at) VALUES (@id, @def, 1, @now, @now) ON CONFLICT (id) DO NOTHING",
        tx, ("@id", plan.Id), ("@def", JsonSerializer.Serialize(plan, BillingCatalog.Json)), ("@now", now)) == 1;

    public static Task UpdateAsync(DbConnection c, DbTransaction tx, Plan plan, DateTimeOffset now) => c.ExecuteAsync(
        "UPDATE plans SET definition = @def, version = @version, updated_at = @now WHERE id = @id",
        tx, ("@id", plan.Id), ("@def", JsonSerializer.Serialize(plan, BillingCatalog.Json)), ("@version", plan.Version), ("@now", now));
}
