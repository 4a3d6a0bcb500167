using System.CommandLine;
using System.Text.Json;

namespace Tenantry.Cli;

/// <summary>The <c>tenantry</c> command tree (System.CommandLine); each command is a thin client of the REST API v1.</summary>
internal static partial class TenantryCli
{
    private static readonly Option<string?> UrlOption = new("--url")
    {
        Description = $"Tenantry control plane URL (env TENANTRY_URL; default: the one you logged in to, else {CliConfig.DefaultUrl})",
        Recursive = true,
    };

    private static readonly Option<string> OutputOption = new("--output", "-o")
    {
        Description = "table (for people) or json (for scripts)",
        Recursive = true,
        DefaultValueFactory = _ => "table",
    };

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        OutputOption.AcceptOnlyFromAmong("table", "json");
        var root = new RootCommand("tenantry: onboard, run and offboard the tenants of a Tenantry control plane.\n\n" + ExitCodes.Help)
        {
            UrlOption,
            OutputOption,
        };
        root.Subcommands.Add(LoginCommand());
        root.Subcommands.Add(TenantsCommand());
        root.Subcommands.Add(UsersCommand());
        root.Subcommands.Add(OperationsCommand());
        root.Subcommands.Add(AuditCommand());
        root.Subcommands.Add(UsageCommand());
        root.Subcommands.Add(PlansCommand());
        root.Subcommands.Add(InvoicesCommand());
        root.Subcommands.Add(CostsCommand());
        root.Subcommands.Add(PolicyCommand());
        root.Subcommands.Add(AppsCommand());
        root.Subcommands.Add(ReleasesCommand());
        root.Subcommands.Add(HealthCommand());
        root.Subcommands.Add(RolloutsCommand());
        root.Subcommands.Add(MigrationsCommand());
        root.Subcommands.Add(WebhooksCommand());
        root.Subcommands.Add(MailsCommand());
        root.Subcommands.Add(JobsCommand());
        root.Subcommands.Add(CellsCommand());
        root.Subcommands.Add(KeysCommand());
        root.Subcommands.Add(NodesCommand());

        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await stderr.WriteLineAsync("error: " + error.Message);
            }

            await stderr.WriteLineAsync("Run `tenantry --help` (or `tenantry <command> --help`) for usage.");
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
    }

    // ---- login --------------------------------------------------------------------------------

    private static Command LoginCommand()
    {
        var clientId = new Option<string>("--client-id") { Description = "OAuth2 client id", DefaultValueFactory = _ => "operator" };
        var secret = new Option<string?>("--client-secret") { Description = "client secret (or env TENANTRY_CLIENT_SECRET, or --secret-stdin)" };
        var stdin = new Option<bool>("--secret-stdin") { Description = "read the secret from standard input (keeps it out of the process list)" };
        var scope = new Option<string>("--scope") { Description = "scope to ask for", DefaultValueFactory = _ => "tenantry:admin" };
        var command = new Command("login", "Get a token with client credentials and remember it (with the URL) for the next commands.") { clientId, secret, stdin, scope };
        command.SetAction((parse, ct) => Run(parse, requireToken: false, async (ctx, api) =>
        {
            var value = parse.GetValue(stdin) ? (await Console.In.ReadLineAsync(ct))?.Trim()
                : parse.GetValue(secret) ?? Environment.GetEnvironmentVariable("TENANTRY_CLIENT_SECRET");
            if (string.IsNullOrEmpty(value))
            {
                throw new CliException(ExitCodes.Usage, "No secret: pass --client-secret, --secret-stdin or set TENANTRY_CLIENT_SECRET (the host prints where the operator secret is).");
            }

            var (token, expiresIn) = await api.TokenAsync(parse.GetValue(clientId)!, value, parse.GetValue(scope)!, ct);
            var expiresAt = DateTimeOffset.UtcNow.AddSeconds(expiresIn);
            new CliConfig(api.BaseAddress.ToString().TrimEnd('/'), token, expiresAt).Save();
            if (ctx.IsJson)
            {
                ctx.Json(JsonSerializer.SerializeToElement(new { url = api.BaseAddress.ToString().TrimEnd('/'), expiresAt, config = CliConfig.Path }, Json.Options));
            }
            else
            {
                ctx.Out.WriteLine($"Logged in to {api.BaseAddress} until {expiresAt.UtcDateTime:yyyy-MM-dd HH:mm} UTC (saved in {CliConfig.Path}).");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    // ---- tenants ------------------------------------------------------------------------------

    private static Command TenantsCommand()
    {
        var tenants = new Command("tenants", "List, show, create, suspend, reactivate, change the tier of, move between cells and offboard tenants.");

        var status = new Option<string?>("--status") { Description = "only tenants in this status (provisioning, active, suspended, failed, offboarding, offboarded)" };
        var tier = new Option<string?>("--tier") { Description = "only tenants of this tier" };
        var search = new Option<string?>("--search", "-q") { Description = "substring of slug or name" };
        var limit = new Option<int>("--limit") { Description = "tenants per page (1-200)", DefaultValueFactory = _ => 50 };
        var cursor = new Option<string?>("--cursor") { Description = "continue after a previous page" };
        var all = new Option<bool>("--all") { Description = "follow every page" };
        var list = new Command("list", "List tenants, newest last, with filters and pagination.") { status, tier, search, limit, cursor, all };
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var items = new List<JsonElement>();
            var next = parse.GetValue(cursor);
            JsonElement page;
            do
            {
                var query = Query(("status", parse.GetValue(status)), ("tier", parse.GetValue(tier)), ("q", parse.GetValue(search)), ("limit", parse.GetValue(limit).ToString(System.Globalization.CultureInfo.InvariantCulture)), ("cursor", next));
                page = await api.GetAsync("/v1/tenants" + query, ct);
                items.AddRange(page.GetProperty("items").EnumerateArray());
                next = page.Str("nextCursor") is { Length: > 0 } c ? c : null;
            }
            while (parse.GetValue(all) && next is not null);

            if (ctx.IsJson)
            {
                ctx.Json(JsonSerializer.SerializeToElement(new { items, nextCursor = next }, Json.Options));
                return ExitCodes.Ok;
            }

            ctx.Table(["ID", "SLUG", "NAME", "TIER", "STATUS", "CREATED"], items.Select(t => (IReadOnlyList<string>)
                [t.Str("id"), t.Str("slug"), t.Str("name"), t.Str("tier"), t.Str("status"), Output.Time(t.Str("createdAt"))]));
            if (next is not null)
            {
                ctx.Err.WriteLine($"More tenants: --cursor {next} (or --all).");
            }

            return ExitCodes.Ok;
        }));
        tenants.Subcommands.Add(list);

        var idArgument = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var show = ShowCommand("show", "One tenant: status, resources (where its data and compute live), current operation.", idArgument, "/v1/tenants");
        tenants.Subcommands.Add(show);

        var name = new Option<string>("--name") { Description = "display name", Required = true };
        var slug = new Option<string?>("--slug") { Description = "3-40 of a-z, 0-9 and '-' (default: from the name)" };
        var createTier = new Option<string>("--tier") { Description = "basic (pool), standard (bridge), premium (silo)", DefaultValueFactory = _ => "basic" };
        var email = new Option<string>("--admin-email") { Description = "the tenant's first admin", Required = true };
        var key = new Option<string?>("--idempotency-key") { Description = "retry-safe key: the same key and body give the same tenant" };
        var region = new Option<string?>("--region") { Description = "the region its data must stay in (config.region): placed only in a cell of that region" };
        var wait = new Option<bool>("--wait", "-w") { Description = "watch the operation until it ends (progress bar)" };
        var create = new Command("create", "Onboard a tenant (the onboarding runs in the background; --wait to watch it).") { name, slug, createTier, email, region, key, wait };
        create.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var headers = parse.GetValue(key) is { } k ? new Dictionary<string, string> { ["Idempotency-Key"] = k } : null;
            var tenant = await api.SendAsync(HttpMethod.Post, "/v1/tenants", new
            {
                name = parse.GetValue(name),
                slug = parse.GetValue(slug),
                tier = parse.GetValue(createTier),
                adminEmail = parse.GetValue(email),
                config = parse.GetValue(region) is { } r ? new { region = r } : null,
            }, headers, ct);
            if (!parse.GetValue(wait))
            {
                if (ctx.IsJson)
                {
                    ctx.Json(tenant);
                }
                else
                {
                    ctx.Out.WriteLine($"Onboarding {tenant.Str("slug")} ({tenant.Str("id")}): operation {tenant.Str("operationId")}. Watch it: tenantry operations watch {tenant.Str("operationId")}");
                }

                return ExitCodes.Ok;
            }

            return await Watch.RunAsync(ctx, api, tenant.Str("operationId"), ct);
        }));
        tenants.Subcommands.Add(create);

        tenants.Subcommands.Add(Transition("suspend", "Suspend a tenant: its users and routes stop, its data stays.", HttpMethod.Post, "/suspend", confirm: false));
        tenants.Subcommands.Add(Transition("reactivate", "Reactivate a suspended tenant.", HttpMethod.Post, "/reactivate", confirm: false));
        tenants.Subcommands.Add(ChangeTierCommand());
        tenants.Subcommands.Add(MoveCommand());
        tenants.Subcommands.Add(Transition("offboard", "Offboard a tenant: export its data, then delete everything else. Asks for --yes.", HttpMethod.Delete, "", confirm: true));
        return tenants;
    }

    private static Command MoveCommand()
    {
        var id = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var cell = new Option<string>("--cell") { Description = "the cell to move to (tenantry cells lists them); one of the tenant's region", Required = true };
        var wait = new Option<bool>("--wait", "-w") { Description = "watch the move until it ends (progress bar); exit 7 if it fails and was rolled back" };
        var key = new Option<string?>("--idempotency-key") { Description = "retry-safe key: the same key and cell give the same operation" };
        var command = new Command(
            "move",
            "Move a tenant to another cell of its region. Its data moves to a server of that cell while it keeps working (the steps of a tier "
            + "change: copy, catch-up, a short write freeze, verify, switch); when both cells use the same place only the placement changes. "
            + "A failure before the switch rolls back and the tenant stays where it was.") { id, cell, wait, key };
        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var tenant = parse.GetValue(id)!;
            var headers = parse.GetValue(key) is { } k ? new Dictionary<string, string> { ["Idempotency-Key"] = k } : null;
            var answer = await api.SendAsync(HttpMethod.Post, "/v1/tenants/" + Escape(tenant) + "/move", new { cell = parse.GetValue(cell) }, headers, ct);
            if (parse.GetValue(wait))
            {
                return await Watch.RunAsync(ctx, api, answer.Str("id"), ct);
            }

            if (ctx.IsJson)
            {
                ctx.Json(answer);
            }
            else
            {
                ctx.Out.WriteLine($"Moving {tenant} to cell {parse.GetValue(cell)}: operation {answer.Str("id")}. Watch it: tenantry operations watch {answer.Str("id")}");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command ChangeTierCommand()
    {
        var id = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var tier = new Argument<string>("tier") { Description = "the new tier: basic (pool), standard (bridge), premium (silo), or another of the tier catalog" };
        var wait = new Option<bool>("--wait", "-w") { Description = "watch the move until it ends (progress bar); exit 7 if it fails and was rolled back" };
        var key = new Option<string?>("--idempotency-key") { Description = "retry-safe key: the same key and tier give the same operation" };
        var command = new Command(
            "change-tier",
            "Change a tenant's tier. Within the same isolation model it is immediate; to another one (say basic to premium) the tenant's data moves "
            + "to its new database while it keeps working: copy, catch-up, a write freeze of about a second, verify, switch. A failure before the switch "
            + "rolls back and the tenant stays where it was.") { id, tier, wait, key };
        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var tenant = parse.GetValue(id)!;
            var headers = parse.GetValue(key) is { } k ? new Dictionary<string, string> { ["Idempotency-Key"] = k } : null;
            var answer = await api.SendAsync(HttpMethod.Post, "/v1/tenants/" + Escape(tenant) + "/tier", new { tier = parse.GetValue(tier) }, headers, ct);
            if (answer.TryGetProperty("kind", out _))
            {
                if (parse.GetValue(wait))
                {
                    return await Watch.RunAsync(ctx, api, answer.Str("id"), ct);
                }

                if (ctx.IsJson)
                {
                    ctx.Json(answer);
                }
                else
                {
                    ctx.Out.WriteLine($"Moving {tenant} to tier {parse.GetValue(tier)}: operation {answer.Str("id")}. Watch it: tenantry operations watch {answer.Str("id")}");
                }

                return ExitCodes.Ok;
            }

            if (ctx.IsJson)
            {
                ctx.Json(answer);
            }
            else
            {
                ctx.Out.WriteLine($"{answer.Str("slug")} is now on tier {answer.Str("tier")} (same isolation model, no data moved).");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Transition(string verb, string description, HttpMethod method, string suffix, bool confirm)
    {
        var id = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var wait = new Option<bool>("--wait", "-w") { Description = "watch the operation until it ends" };
        var yes = new Option<bool>("--yes", "-y") { Description = "confirm (required to offboard)" };
        var command = new Command(verb, description) { id, wait };
        if (confirm)
        {
            command.Options.Add(yes);
        }

        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var tenant = parse.GetValue(id)!;
            if (confirm && !parse.GetValue(yes))
            {
                throw new CliException(ExitCodes.Usage, $"Offboarding deletes {tenant}'s data after exporting it. Run again with --yes to confirm.");
            }

            var op = await api.SendAsync(method, "/v1/tenants/" + Escape(tenant) + suffix, null, null, ct);
            if (parse.GetValue(wait))
            {
                return await Watch.RunAsync(ctx, api, op.Str("id"), ct);
            }

            if (ctx.IsJson)
            {
                ctx.Json(op);
            }
            else
            {
                ctx.Out.WriteLine($"{op.Str("kind")} of {tenant} started: operation {op.Str("id")}. Watch it: tenantry operations watch {op.Str("id")}");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    // ---- operations, audit, usage, costs -----------------------------------------------------

    private static Command OperationsCommand()
    {
        var operations = new Command("operations", "Show, watch and retry onboarding/offboarding operations.");
        var id = new Argument<string>("operation") { Description = "operation id" };
        var show = new Command("show", "An operation and its steps.") { id };
        show.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var op = await api.GetAsync("/v1/operations/" + Escape(parse.GetValue(id)!), ct);
            if (ctx.IsJson)
            {
                ctx.Json(op);
                return ExitCodes.Ok;
            }

            ctx.Out.WriteLine($"{op.Str("kind")} {op.Str("id")} of tenant {op.Str("tenantId")}: {op.Str("status")}{(op.Str("error") is { Length: > 0 } e ? " — " + e : "")}");
            ctx.Table(["STEP", "STATUS", "ATTEMPTS", "FINISHED", "ERROR"], op.GetProperty("steps").EnumerateArray().Select(s => (IReadOnlyList<string>)
                [s.Str("name"), s.Str("status"), s.Str("attempts"), Output.Time(s.Str("finishedAt")), s.Str("error")]));
            return ExitCodes.Ok;
        }));
        operations.Subcommands.Add(show);

        var watchId = new Argument<string>("operation") { Description = "operation id" };
        var watch = new Command("watch", "Follow an operation with a progress bar until it ends; exit 7 if it fails.") { watchId };
        watch.SetAction((parse, ct) => Run(parse, true, (ctx, api) => Watch.RunAsync(ctx, api, parse.GetValue(watchId)!, ct)));
        operations.Subcommands.Add(watch);

        var retryId = new Argument<string>("operation") { Description = "operation id of a failed operation" };
        var retryWait = new Option<bool>("--wait", "-w") { Description = "watch it until it ends" };
        var retry = new Command("retry", "Resume a failed operation from its failed step.") { retryId, retryWait };
        retry.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var op = await api.SendAsync(HttpMethod.Post, "/v1/operations/" + Escape(parse.GetValue(retryId)!) + "/retry", null, null, ct);
            if (parse.GetValue(retryWait))
            {
                return await Watch.RunAsync(ctx, api, op.Str("id"), ct);
            }

            if (ctx.IsJson)
            {
                ctx.Json(op);
            }
            else
            {
                ctx.Out.WriteLine($"Retrying {op.Str("kind")} {op.Str("id")}.");
            }

            return ExitCodes.Ok;
        }));
        operations.Subcommands.Add(retry);
        return operations;
    }

    private static Command UsersCommand()
    {
        var users = new Command("users", "A tenant's users: list them (with lockouts), unlock one.");
        var tenant = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var list = new Command("list", "The tenant's users, roles, status, and until when a user is locked out after failed sign-ins.") { tenant };
        list.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var page = await api.GetAsync("/v1/tenants/" + Escape(parse.GetValue(tenant)!) + "/users", ct);
            if (ctx.IsJson)
            {
                ctx.Json(page);
                return ExitCodes.Ok;
            }

            ctx.Table(["EMAIL", "ROLE", "STATUS", "LOCKED UNTIL"], page.GetProperty("items").EnumerateArray().Select(u => (IReadOnlyList<string>)
                [u.Str("email"), u.Str("role"), u.Str("status"), Output.Time(u.Str("lockedUntil"))]));
            return ExitCodes.Ok;
        }));
        users.Subcommands.Add(list);

        var unlockTenant = new Argument<string>("tenant") { Description = "tenant id or slug" };
        var email = new Argument<string>("email") { Description = "the user's e-mail address" };
        var unlock = new Command("unlock", "End a user's lockout after failed sign-ins and reset the failure count.") { unlockTenant, email };
        unlock.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var user = await api.SendAsync(
                HttpMethod.Post, "/v1/tenants/" + Escape(parse.GetValue(unlockTenant)!) + "/users/" + Escape(parse.GetValue(email)!) + "/unlock", null, null, ct);
            if (ctx.IsJson)
            {
                ctx.Json(user);
            }
            else
            {
                ctx.Out.WriteLine($"Unlocked {user.Str("email")}.");
            }

            return ExitCodes.Ok;
        }));
        users.Subcommands.Add(unlock);
        return users;
    }

    private static Command AuditCommand()
    {
        var tenant = new Option<string?>("--tenant") { Description = "only this tenant (id or slug)" };
        var limit = new Option<int>("--limit") { Description = "events per page", DefaultValueFactory = _ => 50 };
        var cursor = new Option<string?>("--cursor") { Description = "continue after a previous page" };
        var command = new Command("audit", "The audit trail: who changed what, when, with what outcome.") { tenant, limit, cursor };
        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var page = await api.GetAsync("/v1/audit" + Query(("tenantId", parse.GetValue(tenant)), ("limit", parse.GetValue(limit).ToString(System.Globalization.CultureInfo.InvariantCulture)), ("cursor", parse.GetValue(cursor))), ct);
            if (ctx.IsJson)
            {
                ctx.Json(page);
                return ExitCodes.Ok;
            }

            ctx.Table(["TIME", "ACTOR", "TENANT", "ACTION", "OUTCOME"], page.GetProperty("items").EnumerateArray().Select(e => (IReadOnlyList<string>)
                [Output.Time(e.Str("time")), e.Str("actor"), e.Str("tenantId"), e.Str("action"), e.Str("outcome")]));
            if (page.Str("nextCursor") is { Length: > 0 } next)
            {
                ctx.Err.WriteLine($"More events: --cursor {next}");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command UsageCommand()
    {
        var tenant = new Option<string?>("--tenant") { Description = "tenant id or slug" };
        var meter = new Option<string?>("--meter") { Description = "meter (api_calls, storage_bytes, active_users, compute_seconds, …)" };
        var window = new Option<string?>("--window") { Description = "hour, day or month" };
        var from = new Option<string?>("--from") { Description = "start (ISO 8601)" };
        var to = new Option<string?>("--to") { Description = "end (ISO 8601)" };
        var command = new Command("usage", "Metered usage per tenant, meter and window.") { tenant, meter, window, from, to };
        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.GetAsync("/v1/usage" + Query(("tenantId", parse.GetValue(tenant)), ("meter", parse.GetValue(meter)), ("window", parse.GetValue(window)), ("from", parse.GetValue(from)), ("to", parse.GetValue(to))), ct);
            Print(ctx, result);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command PolicyCommand()
    {
        var policy = new Command("policy", "Simulate and validate IAM-style access policies (also: tenantry policies).");
        policy.Aliases.Add("policies");
        var file = new Argument<FileInfo>("file") { Description = "JSON file ('-' for standard input)" };
        var simulate = new Command("simulate", "Evaluate a request against identity, session and guardrail policies: {policies:{identity,session,guardrail}, request:{action,resource,context}}. Exit 0 on Allow, 8 on a deny.") { file };
        simulate.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var result = await api.SendAsync(HttpMethod.Post, "/v1/policies/simulate", await ReadJsonAsync(parse.GetValue(file)!, ct), null, ct);
            if (ctx.IsJson)
            {
                ctx.Json(result);
            }
            else
            {
                ctx.Out.WriteLine(result.Str("decision"));
                if (result.TryGetProperty("matched", out var matched) && matched.ValueKind == JsonValueKind.Array)
                {
                    ctx.Table(["POLICY", "SID", "EFFECT"], matched.EnumerateArray().Select(m => (IReadOnlyList<string>)[m.Str("policy"), m.Str("sid"), m.Str("effect")]));
                }
            }

            return result.Str("decision") == "Allow" ? ExitCodes.Ok : ExitCodes.Denied;
        }));
        policy.Subcommands.Add(simulate);

        var validateFile = new Argument<FileInfo>("file") { Description = "policy document, JSON ('-' for standard input)" };
        var validate = new Command("validate", "Check a policy document: faults with their JSON path (exit 5), and warnings for traps.") { validateFile };
        validate.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var document = await ReadJsonAsync(parse.GetValue(validateFile)!, ct);
            var result = await api.SendAsync(HttpMethod.Post, "/v1/policies/validate", new { document }, null, ct);
            Print(ctx, result);
            return ExitCodes.Ok;
        }));
        policy.Subcommands.Add(validate);
        return policy;
    }

    private static async Task<JsonElement> ReadJsonAsync(FileInfo file, CancellationToken ct)
    {
        try
        {
            var text = file.Name == "-" ? await Console.In.ReadToEndAsync(ct) : await File.ReadAllTextAsync(file.FullName, ct);
            // A repeated property is refused here, not sent on as it was typed.
            using var document = JsonDocument.Parse(text, new JsonDocumentOptions { AllowDuplicateProperties = false });
            return document.RootElement.Clone();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new CliException(ExitCodes.Usage, $"Cannot read JSON from {file.Name}: {e.Message}");
        }
    }

    // ---- plumbing -----------------------------------------------------------------------------

    private static void Print(Output ctx, JsonElement result)
    {
        if (ctx.IsJson)
        {
            ctx.Json(result);
        }
        else
        {
            ctx.Generic(result);
        }
    }

    private static async Task<int> Run(ParseResult parse, bool requireToken, Func<Output, ApiClient, Task<int>> action)
    {
        var output = new Output(parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, parse.GetValue(OutputOption) == "json");
        try
        {
            var config = CliConfig.Load();
            var url = parse.GetValue(UrlOption) ?? Environment.GetEnvironmentVariable("TENANTRY_URL") ?? config.Url ?? CliConfig.DefaultUrl;
            if (!Uri.TryCreate(url, UriKind.Absolute, out var baseAddress) || baseAddress.Scheme is not ("http" or "https"))
            {
                throw new CliException(ExitCodes.Usage, $"'{url}' is not an http(s) URL (--url or TENANTRY_URL).");
            }

            // A remembered token is only sent to the server it came from.
            var token = Environment.GetEnvironmentVariable("TENANTRY_TOKEN") is { Length: > 0 } envToken ? envToken
                : config.Url is not null && Same(new Uri(config.Url), baseAddress) ? config.Token : null;
            if (requireToken && token is not null && config.Token == token && config.ExpiresAt < DateTimeOffset.UtcNow)
            {
                throw new CliException(ExitCodes.Unauthorized, $"The saved token expired at {config.ExpiresAt:u}. Run `tenantry login` again.");
            }

            using var api = new ApiClient(baseAddress, token);
            return await action(output, api);
        }
        catch (CliException e)
        {
            await output.Err.WriteLineAsync("error: " + e.Message);
            return e.ExitCode;
        }
    }

    private static bool Same(Uri a, Uri b) =>
        string.Equals(a.GetLeftPart(UriPartial.Authority), b.GetLeftPart(UriPartial.Authority), StringComparison.OrdinalIgnoreCase);

    private static string Escape(string segment) => Uri.EscapeDataString(segment);

    /// <summary>A command that shows one resource: <c>GET {collection}/{key}</c>, as JSON with <c>-o json</c>, else as key: value lines.</summary>
    private static Command ShowCommand(string name, string description, Argument<string> key, string collection)
    {
        var command = new Command(name, description) { key };
        command.SetAction((parse, ct) => Run(parse, true, async (ctx, api) =>
        {
            var item = await api.GetAsync(collection + "/" + Escape(parse.GetValue(key)!), ct);
            if (ctx.IsJson)
            {
                ctx.Json(item);
            }
            else
            {
                ctx.KeyValues(item);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static string Query(params (string Name, string? Value)[] parameters)
    {
        var parts = parameters.Where(p => !string.IsNullOrEmpty(p.Value)).Select(p => $"{p.Name}={Uri.EscapeDataString(p.Value!)}").ToList();
        return parts.Count == 0 ? "" : "?" + string.Join("&", parts);
    }
}
