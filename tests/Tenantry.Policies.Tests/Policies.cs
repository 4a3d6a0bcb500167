namespace Tenantry.Policies.Tests;

internal static class Policies
{
    public static CompiledPolicy Identity(string json, string name = "identity") => CompiledPolicy.Compile(name, PolicyKind.Identity, PolicyParser.ParseOrThrow(json));

    public static CompiledPolicy Session(string json, string name = "session") => CompiledPolicy.Compile(name, PolicyKind.Session, PolicyParser.ParseOrThrow(json));

    public static CompiledPolicy Guardrail(string json, string name = "guardrail") => CompiledPolicy.Compile(name, PolicyKind.Guardrail, PolicyParser.ParseOrThrow(json));

    public static PolicySet Set(params string[] identity) => new(identity.Select((j, i) => Identity(j, $"identity[{i}]")));

    public static Decision Decide(this PolicySet set, string action, string resource, RequestContext? context = null) =>
        set.Evaluate(new AccessRequest(action, resource, context ?? new RequestContext())).Decision;

    /// <summary>A one-statement policy with a condition block, in the current version.</summary>
    public static PolicySet AllowWhen(string condition, string action = "s3:GetObject", string resource = "*") => Set($$$"""
        {"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"{{{action}}}","Resource":"{{{resource}}}","Condition":{{{condition}}}}}
        """);

    public static RequestContext Context(params (string Key, string[] Values)[] keys)
    {
        var context = new RequestContext();
        foreach (var (key, values) in keys)
        {
            context.Set(key, values);
        }

        return context;
    }
}
