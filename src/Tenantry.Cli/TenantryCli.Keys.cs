using System.CommandLine;
using System.Text.Json;

namespace Tenantry.Cli;

/// <summary><c>tenantry keys</c>: the key ring's keys (never their material) and their rotation.</summary>
internal static partial class TenantryCli
{
    private static readonly string[] KeyKinds = ["signing", "encryption", "tenant-context", "data-protection"];

    private static Command KeysCommand()
    {
        var keys = new Command("keys", "The platform's keys: token signing and encryption, the gateways' tenant-context key, Data Protection; list and rotate them.");

        var list = new Command("list", "Each key's kind, id, status (current, next, retiring, retired), when it was made and when it retires.");
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.GetAsync("/v1/keys", ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
                return ExitCodes.Ok;
            }

            ctx.Table(["KIND", "ID", "STATUS", "CREATED", "RETIRES"], result.GetProperty("items").EnumerateArray().Select(KeyRow));
            return ExitCodes.Ok;
        }));
        keys.Subcommands.Add(list);

        var kinds = new Option<string[]>("--key")
        {
            Description = "a kind of key to rotate (repeat): signing, encryption, tenant-context, data-protection (default: all)",
            AllowMultipleArgumentsPerToken = false,
        };
        kinds.AcceptOnlyFromAmong(KeyKinds);
        var rotate = new Command("rotate", "Rotate keys: the new ones sign at once; the replaced ones keep validating until the tokens they signed expire.") { kinds };
        rotate.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var named = parse.GetValue(kinds) ?? [];
            var result = await api.SendAsync(HttpMethod.Post, "/v1/keys/rotate", named.Length == 0 ? null : new { keys = named }, null, ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
                return ExitCodes.Ok;
            }

            ctx.Table(
                ["KIND", "ID", "STATUS", "CREATED", "RETIRES"],
                result.GetProperty("current").EnumerateArray().Concat(result.GetProperty("retiring").EnumerateArray()).Select(KeyRow));
            return ExitCodes.Ok;
        }));
        keys.Subcommands.Add(rotate);
        return keys;
    }

    private static IReadOnlyList<string> KeyRow(JsonElement k) =>
    [
        k.Str("kind"),
        k.Str("id"),
        k.Str("status"),
        Output.Time(k.Str("created")),
        k.TryGetProperty("retiresAt", out var retires) && retires.ValueKind == JsonValueKind.String ? Output.Time(retires.GetString()!) : "-",
    ];
}
