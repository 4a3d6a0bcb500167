using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Tenantry.Gateway;

/// <summary>
/// The shared app instance when it runs in the gateway's own process (the embedded host): the
/// gateway hands a checked request to the app's pipeline directly instead of a second HTTP exchange
/// over loopback. The app still listens on its own port (its server is wrapped, not replaced) and
/// still reads the tenant from the signed context headers, exactly as over HTTP.
/// </summary>
/// <remarks>
/// The app gets a fresh feature collection holding only the connection's transport features
/// (request, response, body, connection, lifetime, limits). What the gateway's pipeline added
/// (its user, items, services, endpoint, activity) is not visible to the app. The handoff is the end of
/// the gateway's pipeline: the app completes the response, and <c>IHttpContextAccessor</c> (one
/// process-wide async-local) names the app's context while it runs and none after.
/// </remarks>
public sealed class InProcessUpstream
{
    private volatile AppPipeline? _app;

    /// <summary>Whether the app has started and can take requests.</summary>
    public bool IsAvailable => _app is not null;

    /// <summary>Wraps the app's server (call on the app's services, after its server is registered) so its pipeline can be reached from here.</summary>
    public void AttachTo(IServiceCollection appServices)
    {
        ArgumentNullException.ThrowIfNull(appServices);
        var server = appServices.LastOrDefault(d => d.ServiceType == typeof(IServer))
            ?? throw new InvalidOperationException("The app has no server registered yet.");
        appServices.Remove(server);
        appServices.AddSingleton<IServer>(sp => new CapturingServer(Create(sp, server), this));
    }

    /// <summary>Runs the request through the app's pipeline; the app writes the response to the gateway's connection.</summary>
    public Task InvokeAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var app = _app ?? throw new InvalidOperationException("The in-process app is not running.");
        return app.InvokeAsync(Transport(http.Features));
    }

    /// <summary>The connection-level features only, in a collection of the app's own.</summary>
    private static FeatureCollection Transport(IFeatureCollection source)
    {
        var features = new FeatureCollection(16);
        Copy<IHttpRequestFeature>(source, features);
        Copy<IHttpResponseFeature>(source, features);
        Copy<IHttpResponseBodyFeature>(source, features);
        Copy<IHttpRequestBodyDetectionFeature>(source, features);
        Copy<IHttpConnectionFeature>(source, features);
        Copy<IHttpRequestLifetimeFeature>(source, features);
        Copy<IHttpRequestIdentifierFeature>(source, features);
        Copy<IHttpMaxRequestBodySizeFeature>(source, features);
        Copy<IHttpMinRequestBodyDataRateFeature>(source, features);
        Copy<IHttpMinResponseDataRateFeature>(source, features);
        Copy<IHttpBodyControlFeature>(source, features);
        Copy<IHttpRequestTrailersFeature>(source, features);
        Copy<IHttpResponseTrailersFeature>(source, features);
        Copy<IHttpResetFeature>(source, features);
        Copy<ITlsConnectionFeature>(source, features);
        return features;
    }

    private static void Copy<TFeature>(IFeatureCollection source, FeatureCollection target)
    {
        if (source.Get<TFeature>() is { } feature)
        {
            target.Set(feature);
        }
    }

    private static IServer Create(IServiceProvider services, ServiceDescriptor descriptor) => descriptor switch
    {
        { ImplementationInstance: IServer instance } => instance,
        { ImplementationFactory: { } factory } => (IServer)factory(services),
        { ImplementationType: { } type } => (IServer)ActivatorUtilities.CreateInstance(services, type),
        _ => throw new InvalidOperationException("The app's server registration is not supported."),
    };

    private abstract class AppPipeline
    {
        public abstract Task InvokeAsync(IFeatureCollection features);
    }

    /// <summary>What Kestrel does with one request: create the app's context, run the app, end the response, dispose the context.</summary>
    private sealed class AppPipeline<TContext>(IHttpApplication<TContext> application) : AppPipeline
        where TContext : notnull
    {
        public override async Task InvokeAsync(IFeatureCollection features)
        {
            var context = application.CreateContext(features);
            try
            {
                await application.ProcessRequestAsync(context);
                // End the response before the app's request scope goes, as the app's own server would.
                await features.GetRequiredFeature<IHttpResponseBodyFeature>().CompleteAsync();
            }
            catch (Exception exception)
            {
                application.DisposeContext(context, exception);
                throw;
            }

            application.DisposeContext(context, null);
        }
    }

    private sealed class CapturingServer(IServer inner, InProcessUpstream upstream) : IServer
    {
        public IFeatureCollection Features => inner.Features;

        public async Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken)
            where TContext : notnull
        {
            await inner.StartAsync(application, cancellationToken);
            upstream._app = new AppPipeline<TContext>(application);
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            upstream._app = null;
            return inner.StopAsync(cancellationToken);
        }

        public void Dispose() => inner.Dispose();
    }
}
