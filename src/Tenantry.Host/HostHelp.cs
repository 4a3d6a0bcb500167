using Tenantry.ControlPlane;

namespace Tenantry.Host;

internal static class HostHelp
{
    public static readonly Dictionary<string, string> SwitchMappings = new(StringComparer.Ordinal)
    {
        ["--port"] = "Tenantry:Ports:ControlPlane",
        ["--gateway-port"] = "Tenantry:Ports:Gateway",
        ["--data-dir"] = "Tenantry:DataDir",
        ["--operator-secret"] = "Tenantry:OperatorSecret",
    };

    public const string Text = """
        Tenantry host: the control plane of the Tenantry multi-tenant platform, on the embedded default
        (SQLite store, local folders, local processes) unless configured otherwise.

        Usage: dotnet run --project src/Tenantry.Host -- [options]

        Files and folders the host creates are its user's alone (0600 / 0700).

        Options:
          --port <n>               control-plane port on 127.0.0.1 (default 5080)   Tenantry:Ports:ControlPlane
          --gateway-port <n>       tenant gateway port on 127.0.0.1 (default 5081)  Tenantry:Ports:Gateway
                                   apps' shared instances from Tenantry:Ports:SharedApp (default 5082) up;
                                   control plane only: --Tenantry:ApplicationPlane:Enabled=false;
                                   no default sample app on a new data dir: --Tenantry:Apps:RegisterSample=false
          --data-dir <path>        store, tenant files and keys (default ./.tenantry) Tenantry:DataDir
          --operator-secret <s>    secret of the 'operator' client (>= 16 chars)    Tenantry:OperatorSecret
                                   also env TENANTRY_OPERATOR_SECRET; when unset, generated into <data-dir>/operator-secret
          --Tenantry:<key>=<value> any configuration key, e.g. --Tenantry:Operations:MaxParallel=8
          -h, --help               this text

        One more gateway replica (apart from the control plane; share limits with --Tenantry:Gateway:Redis=host:port):
          dotnet Tenantry.Host.dll gateway --gateway-port <n> --Tenantry:Gateway:Authority=<control plane URL>
            --Tenantry:Gateway:ContextSigningKeyFile=<data-dir>/keys/tenant-context-es256.pem
              (on a PostgreSQL store instead: --Tenantry:Store=<connection string> and env TENANTRY_MASTER_KEY)
            --Tenantry:Gateway:ClientSecret=<secret of the 'gateway' client: <data-dir>/gateway-secret>
            [--Tenantry:Gateway:AdminPort=<n>: GET /metrics there, operator token]

        Operations on a store shared by replicas (--Tenantry:Store=<PostgreSQL connection string>):
          env TENANTRY_MASTER_KEY=<>= 32 chars>   seals the keys kept in the store (Tenantry:MasterKey), required;
                                                  the same on every replica (openssl rand -base64 32)
          --Tenantry:NodeName=<name>              this host's name among replicas, unique per running host
                                                  (default: generated once into <data-dir>/node-id)
          --Tenantry:Operations:Lease=00:00:15    hold on a running operation; a dead replica's work moves on after it
          --Tenantry:Operations:LeaseRenewal=00:00:05  renewal while a step runs (at most half the lease)

        Exit codes (each failure is one line on stderr naming the setting):
          0  stopped normally
          2  a setting has a bad value
          3  another host is using the data directory
          4  a port is in use or needs privileges (--port, --gateway-port, Tenantry:Ports:SharedApp)
          5  the control-plane store (Tenantry:Store) cannot be reached
          6  the data directory cannot be created or written

        Every key is also an environment variable: Tenantry__Ports__ControlPlane=5090.
        Structured JSON logs: --Logging:Console:FormatterName=json
        Metrics: GET /metrics (Prometheus text, operator token). Metrics, traces and logs to an OpenTelemetry
        collector: --Tenantry:Telemetry:OtlpEndpoint=http://127.0.0.1:4318 (OTLP over HTTP).

        Get an operator token:
          curl -s http://127.0.0.1:5080/connect/token -d grant_type=client_credentials \
            -d client_id=operator -d client_secret="$(cat .tenantry/operator-secret)" -d scope=tenantry:admin
        """;

    public static string Banner(string address, TenantryOptions options)
    {
        var secret = !string.IsNullOrEmpty(options.OperatorSecret)
            ? "<the configured Tenantry:OperatorSecret>"
            : !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("TENANTRY_OPERATOR_SECRET"))
                ? "\"$TENANTRY_OPERATOR_SECRET\""
                : $"\"$(cat {Path.Combine(options.DataPath, "operator-secret")})\"";
        return $"""

            Tenantry control plane listening on {address}
              data directory : {options.DataPath}
              API (OpenAPI)  : {address}/openapi/v1.json
              health         : {address}/healthz
              metrics        : {address}/metrics (Prometheus, operator token)
            Get an operator token:
              curl -s {address}/connect/token -d grant_type=client_credentials -d client_id=operator \
                -d client_secret={secret} -d scope=tenantry:admin

            """;
    }
}
