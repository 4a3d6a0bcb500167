using System.Collections.Concurrent;
using Npgsql;
using Tenantry.Data.Postgres;

namespace Tenantry.Data.Tests;

/// <summary>Tries to break the PostgreSQL pool: row-level security keyed on a transaction-local tenant setting.</summary>
[Collection(PoolCollection.Name)]
public sealed class PoolIsolationTests(PoolFixture fixture) : IAsyncLifetime
{
    private readonly Guid _a = Guid.CreateVersion7();
    private readonly Guid _b = Guid.CreateVersion7();
    private readonly ITenantDataSource _data = TenantDataSource.Create();

    public async Task InitializeAsync()
    {
        foreach (var (tenant, prefix) in new[] { (_a, "A"), (_b, "B") })
        {
            await using var session = await _data.OpenSessionAsync(fixture.Tenant(tenant));
            for (var i = 0; i < 3; i++)
            {
                await session.ExecuteAsync(
                    "INSERT INTO orders (id, number, amount) VALUES (@id, @number, @amount)",
                    [("@id", Guid.CreateVersion7()), ("@number", $"{prefix}-{i}-{tenant:N}"), ("@amount", 10m + i)]);
            }

            await session.CommitAsync();
        }
    }

    public async Task DisposeAsync() => await _data.DisposeAsync();

    [Fact]
    public async Task Tenant_sees_only_its_own_rows()
    {
        await using var session = await _data.OpenSessionAsync(fixture.Tenant(_a));
        var owners = await session.QueryAsync("SELECT tenant_id FROM orders", r => r.GetGuid(0));
        Assert.NotEmpty(owners);
        Assert.All(owners, owner => Assert.Equal(_a, owner));
    }

    [Fact]
    public async Task Naming_another_tenants_id_returns_nothing()
    {
        await using var session = await _data.OpenSessionAsync(fixture.Tenant(_a));
        Assert.Equal(0L, await session.ScalarAsync("SELECT count(*) FROM orders WHERE tenant_id = @b", [("@b", _b)]));
        Assert.Equal(0L, await session.ScalarAsync("SELECT count(*) FROM orders WHERE number LIKE 'B-%'"));
        Assert.Equal(0L, await session.ScalarAsync("SELECT count(*) FROM orders WHERE tenant_id <> @a OR tenant_id IS NULL", [("@a", _a)]));
    }

    [Fact]
    public async Task Without_a_tenant_no_row_is_visible_and_inserts_are_refused()
    {
        await using var connection = new NpgsqlConnection(fixture.AppConnectionString);
        await connection.OpenAsync();
        await using (var count = new NpgsqlCommand("SELECT count(*) FROM orders", connection))
        {
            Assert.Equal(0L, await count.ExecuteScalarAsync());
        }

        await using (var empty = new NpgsqlCommand("BEGIN; SELECT set_config('app.tenant_id', '', true); SELECT count(*) FROM orders; COMMIT;", connection))
        await using (var reader = await empty.ExecuteReaderAsync())
        {
            await reader.NextResultAsync();
            await reader.ReadAsync();
            Assert.Equal(0L, reader.GetInt64(0));
        }

        // No tenant_id given: the default is NULL, and the policy's WITH CHECK refuses it.
        var implicitTenant = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var insert = new NpgsqlCommand("INSERT INTO orders (id, number, amount) VALUES (gen_random_uuid(), 'x', 1)", connection);
            await insert.ExecuteNonQueryAsync();
        });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, implicitTenant.SqlState);

        // A tenant_id named outright: WITH CHECK refuses it.
        var explicitTenant = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var insert = new NpgsqlCommand("INSERT INTO orders (tenant_id, id, number, amount) VALUES ($1, gen_random_uuid(), 'x', 1)", connection);
            insert.Parameters.Add(new NpgsqlParameter { Value = _a });
            await insert.ExecuteNonQueryAsync();
        });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, explicitTenant.SqlState);
    }

    [Fact]
    public async Task Sql_injection_in_ids_and_values_is_inert()
    {
        await using var connection = new NpgsqlConnection(fixture.AppConnectionString);
        await connection.OpenAsync();
        foreach (var evil in new[] { $"{_a}' OR '1'='1", "' OR 1=1 --", $"{_a}'; RESET ROLE; --" })
        {
            await using var transaction = await connection.BeginTransactionAsync();
            await using var batch = new NpgsqlBatch(connection, transaction)
            {
                BatchCommands = { new NpgsqlBatchCommand(NpgsqlTenantSession.SetTenantSql) { Parameters = { new() { Value = evil } } }, new NpgsqlBatchCommand("SELECT count(*) FROM orders") },
            };
            var error = await Assert.ThrowsAsync<PostgresException>(() => batch.ExecuteScalarAsync());
            Assert.Equal(PostgresErrorCodes.InvalidTextRepresentation, error.SqlState);
        }

        await using var session = await _data.OpenSessionAsync(fixture.Tenant(_a));
        Assert.Equal(0L, await session.ScalarAsync("SELECT count(*) FROM orders WHERE number = @n", [("@n", "x' OR tenant_id IS NOT NULL --")]));
        Assert.Throws<ArgumentException>(() => fixture.Tenant(_a, "a'; DROP TABLE orders; --"));
        Assert.Throws<ArgumentException>(() => PostgresTenantDdl.CreateBridgeTenant("x\"; DROP SCHEMA public; --", "password-123456"));
    }

    [Fact]
    public async Task Writes_into_another_tenants_rows_are_refused()
    {
        Guid bOrder;
        await using (var b = await _data.OpenSessionAsync(fixture.Tenant(_b)))
        {
            bOrder = (await b.QueryAsync("SELECT id FROM orders ORDER BY number LIMIT 1", r => r.GetGuid(0)))[0];
        }

        await using (var a = await _data.OpenSessionAsync(fixture.Tenant(_a)))
        {
            Assert.Equal(0, await a.ExecuteAsync("UPDATE orders SET amount = 0 WHERE id = @id", [("@id", bOrder)]));
            Assert.Equal(0, await a.ExecuteAsync("DELETE FROM orders WHERE tenant_id = @b", [("@b", _b)]));
            await a.CommitAsync();
        }

        await using (var a = await _data.OpenSessionAsync(fixture.Tenant(_a)))
        {
            var moved = await Assert.ThrowsAsync<PostgresException>(() => a.ExecuteAsync("UPDATE orders SET tenant_id = @b", [("@b", _b)]));
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, moved.SqlState);
        }

        await using (var a = await _data.OpenSessionAsync(fixture.Tenant(_a)))
        {
            var planted = await Assert.ThrowsAsync<PostgresException>(() => a.ExecuteAsync(
                "INSERT INTO orders (tenant_id, id, number, amount) VALUES (@b, @id, 'planted', 1)", [("@b", _b), ("@id", Guid.CreateVersion7())]));
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, planted.SqlState);
            Assert.Contains("row-level security", planted.MessageText, StringComparison.Ordinal);
        }

        await using (var b = await _data.OpenSessionAsync(fixture.Tenant(_b)))
        {
            Assert.Equal(3L, await b.ScalarAsync("SELECT count(*) FROM orders WHERE amount >= 10"));
            Assert.Equal(0L, await b.ScalarAsync("SELECT count(*) FROM orders WHERE number = 'planted'"));
        }
    }

    [Fact]
    public async Task The_same_natural_key_in_two_tenants_is_allowed_and_conflicts_reveal_nothing_of_the_other()
    {
        var key = "INV-" + Guid.NewGuid().ToString("N")[..8];
        await using (var a = await _data.OpenSessionAsync(fixture.Tenant(_a)))
        {
            await a.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES (@id, @n, 1)", [("@id", Guid.CreateVersion7()), ("@n", key)]);
            await a.CommitAsync();
        }

        // B probes A's key: no error, so nothing tells B that A has it.
        await using (var b = await _data.OpenSessionAsync(fixture.Tenant(_b)))
        {
            Assert.Equal(1, await b.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES (@id, @n, 1)", [("@id", Guid.CreateVersion7()), ("@n", key)]));
            await b.CommitAsync();
        }

        // A duplicate within B does fail, and the error names neither A nor A's row.
        await using (var b = await _data.OpenSessionAsync(fixture.Tenant(_b)))
        {
            var conflict = await Assert.ThrowsAsync<PostgresException>(() =>
                b.ExecuteAsync("INSERT INTO orders (id, number, amount) VALUES (@id, @n, 1)", [("@id", Guid.CreateVersion7()), ("@n", key)]));
            Assert.Equal(PostgresErrorCodes.UniqueViolation, conflict.SqlState);
            var everything = $"{conflict.Message} {conflict.Detail} {conflict.Where} {conflict.Hint}";
            Assert.DoesNotContain(_a.ToString(), everything, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(key, everything, StringComparison.Ordinal);
        }

        await using (var a = await _data.OpenSessionAsync(fixture.Tenant(_a)))
        {
            Assert.Equal(1L, await a.ScalarAsync("SELECT count(*) FROM orders WHERE number = @n", [("@n", key)]));
        }
    }

    [Fact]
    public async Task Pooled_connections_reused_across_tenants_10000_times_never_show_a_row_to_the_wrong_tenant()
    {
        // Two physical connections shared by four workers: every session lands on a connection another tenant just used.
        await using var data = TenantDataSource.Create(new TenantDataSourceOptions { MaxPoolSize = 2 });
        var tenants = Enumerable.Range(0, 6).Select(_ => Guid.CreateVersion7()).ToArray();
        var inserted = new ConcurrentDictionary<Guid, int>();
        var wrong = new ConcurrentBag<string>();
        const int sessions = 10_000;
        var next = -1;
        var started = System.Diagnostics.Stopwatch.StartNew();

        await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var random = new Random(worker);
            while (Interlocked.Increment(ref next) < sessions)
            {
                var tenant = tenants[random.Next(tenants.Length)];
                await using var session = await data.OpenSessionAsync(fixture.Tenant(tenant));
                switch (random.Next(10))
                {
                    case 0:
                        // Straight to the raw connection, never scoped: whatever ran before on it must not show through.
                        await using (var raw = new NpgsqlCommand("SELECT count(*), coalesce(current_setting('app.tenant_id', true), '') FROM orders", (NpgsqlConnection)session.Transaction.Connection!, (NpgsqlTransaction)session.Transaction))
                        await using (var reader = await raw.ExecuteReaderAsync())
                        {
                            await reader.ReadAsync();
                            if (reader.GetInt64(0) != 0 || reader.GetString(1).Length != 0)
                            {
                                wrong.Add($"unscoped session saw {reader.GetInt64(0)} rows, setting '{reader.GetString(1)}'");
                            }
                        }

                        break;
                    case 1:
                    case 2:
                        await session.ExecuteAsync(
                            "INSERT INTO orders (id, number, amount, note) VALUES (@id, @n, 1, @note)",
                            [("@id", Guid.CreateVersion7()), ("@n", Guid.NewGuid().ToString("N")), ("@note", tenant.ToString())]);
                        await session.CommitAsync();
                        inserted.AddOrUpdate(tenant, 1, (_, n) => n + 1);
                        break;
                    default:
                        var rows = await session.QueryAsync("SELECT tenant_id, note FROM orders", r => (Owner: r.GetGuid(0), Note: r.GetString(1)));
                        foreach (var row in rows.Where(r => r.Owner != tenant || r.Note != tenant.ToString()))
                        {
                            wrong.Add($"{tenant} saw a row of {row.Owner} ({row.Note})");
                        }

                        break;
                }
            }
        })));

        Assert.Empty(wrong);
        foreach (var tenant in tenants)
        {
            await using var session = await data.OpenSessionAsync(fixture.Tenant(tenant));
            Assert.Equal((long)inserted.GetValueOrDefault(tenant), await session.ScalarAsync("SELECT count(*) FROM orders"));
        }

        Assert.True(started.Elapsed < TimeSpan.FromSeconds(60), $"took {started.Elapsed}");
    }

    [Fact]
    public async Task A_first_command_without_rows_still_runs_scoped()
    {
        await using (var a = await _data.OpenSessionAsync(fixture.Tenant(_a)))
        {
            Assert.Null(await a.ScalarAsync("UPDATE orders SET note = 'touched'"));
            Assert.Equal(3L, await a.ScalarAsync("SELECT count(*) FROM orders WHERE note = 'touched'"));
        }

        await using (var a = await _data.OpenSessionAsync(fixture.Tenant(_a)))
        {
            Assert.Empty(await a.QueryAsync("DELETE FROM orders WHERE false", r => r.GetInt32(0)));
            var connection = await a.GetScopedConnectionAsync();
            await using var command = connection.CreateCommand();
            command.Transaction = a.Transaction;
            command.CommandText = "SELECT count(*) FROM orders";
            Assert.Equal(3L, await command.ExecuteScalarAsync());
        }
    }

    [Fact]
    public async Task A_pool_target_that_bypasses_rls_is_refused()
    {
        var context = fixture.Tenant(_a) with { Target = new PostgresPoolTarget(fixture.AdminConnectionString) };
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => _data.OpenSessionAsync(context));
        Assert.Contains("bypasses row-level security", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Targets_never_print_passwords()
    {
        Assert.DoesNotContain(PoolFixture.AppPassword, fixture.Tenant(_a).ToString(), StringComparison.Ordinal);
        var bridge = PostgresBridgeTarget.For(new PostgresEndpoint("127.0.0.1"), "bridge", "acme", "secret-password-1");
        Assert.DoesNotContain("secret-password-1", bridge.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("secret-password-1", PostgresSiloTarget.For(new PostgresEndpoint("127.0.0.1"), "acme", "secret-password-1").ToString(), StringComparison.Ordinal);
    }
}
