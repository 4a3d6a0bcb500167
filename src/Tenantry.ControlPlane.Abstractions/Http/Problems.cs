using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Tenantry.ControlPlane.Http;

/// <summary>An API error: RFC 9457 problem details with a stable <c>type</c> per kind.</summary>
public sealed record ApiError(int Status, string Kind, string Title, string Detail, IDictionary<string, string[]>? Errors = null)
{
    public const string TypeBase = "https://tenantry.dev/problems/";

    public ProblemHttpResult ToResult()
    {
        var problem = new Microsoft.AspNetCore.Mvc.ProblemDetails
        {
            Status = Status,
            Type = TypeBase + Kind,
            Title = Title,
            Detail = Detail,
        };
        if (Errors is not null)
        {
            problem.Extensions["errors"] = Errors;
        }

        return TypedResults.Problem(problem);
    }

    public static ApiError Validation(IDictionary<string, string[]> errors) => new(
        StatusCodes.Status400BadRequest, "validation", "The request is not valid.",
        string.Join(" ", errors.SelectMany(e => e.Value.Select(v => $"{e.Key}: {v}"))), errors);

    public static ApiError Validation(string field, string message) => Validation(new Dictionary<string, string[]> { [field] = [message] });

    public static ApiError BadRequest(string detail) => new(StatusCodes.Status400BadRequest, "bad-request", "The request could not be read.", detail);

    public static ApiError NotFound(string what) => new(StatusCodes.Status404NotFound, "not-found", "Not found.", $"{what} does not exist.");

    public static ApiError Conflict(string kind, string title, string detail) => new(StatusCodes.Status409Conflict, kind, title, detail);
}
