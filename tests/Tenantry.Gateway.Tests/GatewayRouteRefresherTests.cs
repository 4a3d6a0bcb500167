using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Tenantry.Gateway;

namespace Tenantry.Gateway.Tests;

public sealed class GatewayRouteRefresherTests
{
    [Fact]
    public async Task A_load_that_times_out_keeps_the_refresh_loop_going()
    {
        var route = new GatewayRoute(Guid.NewGuid(), "acme", "basic", IsolationModel.Pool, Active: true, Upstream: null);
        var source = new FlakySource(failures: 2, [route]);
        var table = new GatewayRouteTable();
        using var refresher = new GatewayRouteRefresher(
            source, table, Options.Create(new GatewayOptions { RefreshInterval = TimeSpan.FromMilliseconds(50) }),
            TimeProvider.System, NullLogger<GatewayRouteRefresher>.Instance);

        // The first load times out (an HttpClient timeout is a TaskCanceledException): start-up goes on.
        await refresher.StartAsync(CancellationToken.None);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (table.Find(route.TenantId) is null && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            Assert.NotNull(table.Find(route.TenantId));
            Assert.True(source.Calls > 2);
        }
        finally
        {
            await refresher.StopAsync(CancellationToken.None);
        }
    }

    private sealed class FlakySource(int failures, IReadOnlyList<GatewayRoute> routes) : IGatewayRouteSource
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public Task<IReadOnlyList<GatewayRoute>> LoadAsync(CancellationToken cancellationToken) =>
            Interlocked.Increment(ref _calls) <= failures
                ? throw new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout.")
                : Task.FromResult(routes);
    }
}
