using System.Globalization;
using Npgsql;

namespace Tenantry.Host.Tests;

/// <summary>Reads of a shared PostgreSQL store the replica tests check against: rows, counts and who holds which operation lease.</summary>
internal static class StoreQueries
{
    /// <summary>The first column of every row <paramref name="sql"/> returns, as text.</summary>
    public static async Task<List<string>> RowsAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }

    public static async Task<long> CountAsync(string store, string sql)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    /// <summary>The unfinished operations whose lease <paramref name="owner"/> holds, with their fencing tokens.</summary>
    public static async Task<List<(string Id, long Token)>> HeldAsync(string store, string owner)
    {
        await using var connection = new NpgsqlConnection(store);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id, lease_token FROM operations WHERE lease_owner = $1 AND status IN ('pending', 'running')", connection);
        command.Parameters.AddWithValue(owner);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<(string, long)>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetString(0), reader.GetInt64(1)));
        }

        return rows;
    }
}
