using Npgsql;
using Tenantry.Testing;

namespace Tenantry.Data.Tests;

/// <summary>The test fixture's own promises: private, password-checked, parallel, gone afterwards.</summary>
public sealed class PostgresServerTests
{
    [Fact]
    public async Task Two_servers_run_side_by_side_check_passwords_and_leave_nothing_behind()
    {
        var servers = await Task.WhenAll(PostgresServer.StartAsync(), PostgresServer.StartAsync());
        try
        {
            Assert.NotEqual(servers[0].Port, servers[1].Port);
            foreach (var server in servers)
            {
                await server.ExecuteAsync("CREATE ROLE someone LOGIN PASSWORD 'right-password'");
                await using (var ok = new NpgsqlConnection(server.ConnectionString("postgres", "someone", "right-password")))
                {
                    await ok.OpenAsync();
                    await using var command = new NpgsqlCommand("SELECT inet_server_port()", ok);
                    Assert.Equal(server.Port, await command.ExecuteScalarAsync());
                }

                var error = await Assert.ThrowsAsync<PostgresException>(async () =>
                {
                    await using var wrong = new NpgsqlConnection(server.ConnectionString("postgres", "someone", "wrong-password"));
                    await wrong.OpenAsync();
                });
                Assert.Equal(PostgresErrorCodes.InvalidPassword, error.SqlState);

                await using var socket = new NpgsqlConnection(server.SuperuserSocketConnectionString);
                await socket.OpenAsync();
            }
        }
        finally
        {
            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }
        }

        Assert.All(servers, s => Assert.False(Directory.Exists(s.RootDirectory)));
    }
}
