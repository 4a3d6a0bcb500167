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

    [Fact]
    public async Task A_change_the_source_announces_is_loaded_without_waiting_for_the_interval()
    {
        var route = new GatewayRoute(Guid.NewGuid(), "acme", "basic", IsolationModel.Pool, Active: true, Upstream: null);
        var source = new AnnouncingSource();
        var table = new GatewayRouteTable();
        using var refresher = new GatewayRouteRefresher(
            source, table, Options.Create(new GatewayOptions { RefreshInterval = TimeSpan.FromHours(1) }),
            TimeProvider.System, NullLogger<GatewayRouteRefresher>.Instance);
        await refresher.StartAsync(CancellationToken.None);
        try
        {
            Assert.Null(table.Find(route.TenantId));

            // Only the announcement can bring the new route within the hour-long interval.
            source.Routes = [route];
            source.Announce();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (table.Find(route.TenantId) is null && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            Assert.NotNull(table.Find(route.TenantId));
        }
        finally
        {
            await refresher.StopAsync(CancellationToken.None);
        }

        // Stopped and disposed, the refresher no longer listens.
        refresher.Dispose();
        Assert.Null(source.Listener);
    }

    private sealed class AnnouncingSource : IGatewayRouteSource
    {
        public IReadOnlyList<GatewayRoute> Routes { get; set; } = [];

        public Action? Listener { get; private set; }

        public void Announce() => Listener?.Invoke();

        public Task<IReadOnlyList<GatewayRoute>> LoadAsync(CancellationToken cancellationToken) => Task.FromResult(Routes);

        public IDisposable? OnChange(Action changed)
        {
            Listener = changed;
            return new Stop(this);
        }

        private sealed class Stop(AnnouncingSource source) : IDisposable
        {
            public void Dispose() => source.Listener = null;
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
