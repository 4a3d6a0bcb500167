namespace Tenantry.ControlPlane.Providers;

/// <summary>
/// Environment variables the host gives every dedicated app instance on top of its own settings, such
/// as the gateway's public tenant-context JWKS. Read when an instance starts.
/// </summary>
public sealed class AppInstanceEnvironment(Func<IReadOnlyDictionary<string, string>> variables)
{
    public IReadOnlyDictionary<string, string> Variables() => variables();
}
