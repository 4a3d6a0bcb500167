using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Tenantry.ControlPlane.Events;

/// <summary>A URL or an address the SSRF guard refuses.</summary>
public sealed class WebhookUrlRefusedException(string message) : Exception(message);

/// <summary>
/// The SSRF guard of webhooks. A URL must be absolute http(s) (https unless
/// <c>Tenantry:Webhooks:AllowPrivateNetworks</c>), without credentials or fragment, and every address
/// its host resolves to must be public: loopback, link-local, private (RFC 1918, unique local, CGNAT),
/// multicast, unspecified and broadcast addresses are refused, and so are this host's own addresses and
/// the control plane's issuer host. The check runs when the URL is registered and again on every
/// connection (<see cref="ConnectAsync"/>, which connects only to an address it has just checked), so a
/// name that resolves to a private address later (DNS rebinding) is refused too. The control plane's
/// own listeners on this host are refused even with <c>AllowPrivateNetworks</c>.
/// </summary>
internal sealed class WebhookUrlGuard(IOptions<WebhookOptions> options, IOptions<TenantryOptions> tenantry)
{
    public const int MaxUrlLength = 2000;

    /// <summary>What is wrong with the URL's form, or null (then <paramref name="uri"/> is set).</summary>
    public string? CheckForm(string? url, out Uri? uri)
    {
        uri = null;
        if (string.IsNullOrWhiteSpace(url) || url.Length > MaxUrlLength || !Uri.TryCreate(url, UriKind.Absolute, out var parsed))
        {
            return $"An absolute URL of at most {MaxUrlLength} characters is required, e.g. https://hooks.example.com/tenantry.";
        }

        if (parsed.Scheme != Uri.UriSchemeHttps && parsed.Scheme != Uri.UriSchemeHttp)
        {
            return "The URL's scheme must be https.";
        }

        if (parsed.Scheme == Uri.UriSchemeHttp && !options.Value.AllowPrivateNetworks)
        {
            return "The URL must use https (plain http is allowed only with Tenantry:Webhooks:AllowPrivateNetworks).";
        }

        if (!string.IsNullOrEmpty(parsed.UserInfo) || !string.IsNullOrEmpty(parsed.Fragment) || string.IsNullOrEmpty(parsed.Host))
        {
            return "The URL may carry no user name, password or fragment.";
        }

        uri = parsed;
        return null;
    }

    /// <summary>Resolves the URL's host and checks every address; the reason it is refused, or null.</summary>
    public async Task<string?> CheckAddressesAsync(Uri uri, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (RefusedHost(uri.IdnHost) is { } hostProblem)
        {
            return hostProblem;
        }

        IPAddress[] addresses;
        try
        {
            addresses = await ResolveAsync(uri.IdnHost, cancellationToken);
        }
        catch (SocketException)
        {
            return $"The host '{uri.Host}' does not resolve.";
        }

        foreach (var address in addresses)
        {
            if (Refused(address, uri.Port) is { } problem)
            {
                return problem;
            }
        }

        return addresses.Length == 0 ? $"The host '{uri.Host}' does not resolve." : null;
    }

    /// <summary>
    /// <see cref="SocketsHttpHandler.ConnectCallback"/>: resolves the host, refuses it if any address is
    /// refused, and connects to the checked addresses only.
    /// </summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var endpoint = context.DnsEndPoint;
        if (RefusedHost(endpoint.Host) is { } hostProblem)
        {
            throw new WebhookUrlRefusedException(hostProblem);
        }

        var addresses = await ResolveAsync(endpoint.Host, cancellationToken);
        foreach (var address in addresses)
        {
            if (Refused(address, endpoint.Port) is { } problem)
            {
                throw new WebhookUrlRefusedException(problem);
            }
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, endpoint.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Why an address is refused, or null.</summary>
    public string? Refused(IPAddress address, int port)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        var own = tenantry.Value.Ports;
        if ((IPAddress.IsLoopback(address) || IsUnspecified(address) || IsThisHost(address)) && (port == own.ControlPlane || port == own.Gateway || port == own.SharedApp))
        {
            return $"{address}:{port} is the control plane itself.";
        }

        if (options.Value.AllowPrivateNetworks)
        {
            return null;
        }

        if (Category(address) is { } category)
        {
            return $"{address} is a {category} address; webhooks go to public addresses only (Tenantry:Webhooks:AllowPrivateNetworks allows others).";
        }

        return IsThisHost(address) ? $"{address} is an address of the control plane's host." : null;
    }

    /// <summary>The kind of non-public address, or null for a public one.</summary>
    public static string? Category(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (IPAddress.IsLoopback(address))
        {
            return "loopback";
        }

        if (IsUnspecified(address))
        {
            return "unspecified";
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var b = address.GetAddressBytes();
            return b[0] switch
            {
                10 => "private",
                172 when b[1] is >= 16 and <= 31 => "private",
                192 when b[1] == 168 => "private",
                169 when b[1] == 254 => "link-local",
                100 when b[1] is >= 64 and <= 127 => "private (shared CGNAT)",
                0 => "unspecified",
                >= 224 and <= 239 => "multicast",
                >= 240 => "reserved or broadcast",
                _ => null,
            };
        }

        if (address.IsIPv6Multicast)
        {
            return "multicast";
        }

        if (address.IsIPv6LinkLocal || address.IsIPv6SiteLocal)
        {
            return "link-local";
        }

        var first = address.GetAddressBytes()[0];
        return (first & 0xFE) == 0xFC ? "private (unique local)" : null;
    }

    /// <summary>The issuer's host is the control plane, whatever it resolves to.</summary>
    private string? RefusedHost(string host)
    {
        var issuer = tenantry.Value.Issuer;
        return issuer is not null && string.Equals(issuer.IdnHost, host, StringComparison.OrdinalIgnoreCase) && !options.Value.AllowPrivateNetworks
            ? $"'{host}' is the control plane itself."
            : null;
    }

    private static async Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken) =>
        IPAddress.TryParse(host.Trim('[', ']'), out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, cancellationToken);

    private static bool IsUnspecified(IPAddress address) => address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);

    private static bool IsThisHost(IPAddress address)
    {
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .SelectMany(i => i.GetIPProperties().UnicastAddresses)
                .Any(a => a.Address.Equals(address));
        }
        catch (NetworkInformationException)
        {
            return false;
        }
    }
}
