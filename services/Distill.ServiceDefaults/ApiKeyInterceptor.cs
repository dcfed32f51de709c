using System.Security.Cryptography;
using System.Text;
using Distill.Core.Errors;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Distill.ServiceDefaults;

/// <summary>With Server:ApiKey configured, refuses calls without it (UNAUTHENTICATED); health checks stay open.</summary>
public sealed class ApiKeyInterceptor(IOptions<ServerOptions> options) : CallInterceptor
{
    protected override Task<T> Around<T>(ServerCallContext context, Func<Task<T>> call)
    {
        var key = options.Value.ApiKey;
        if (string.IsNullOrEmpty(key) || IsHealthCheck(context) || Presented(context.RequestHeaders, key))
            return call();
        throw ExceptionStatusInterceptor.Error(Google.Rpc.Code.Unauthenticated,
            "missing or wrong credentials: send 'authorization: Bearer <key>' or 'x-api-key: <key>'", ErrorReasons.Unauthenticated);
    }

    private static bool Presented(Metadata headers, string key)
    {
        // Hashes of equal length, so the comparison takes the same time whatever the presented
        // key's length or content.
        var expected = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        bool Matches(string? value) => value is not null && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(value)), expected);
        var bearer = headers.GetValue("authorization");
        return Matches(headers.GetValue("x-api-key"))
            || (bearer is not null && bearer.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && Matches(bearer[7..].Trim()));
    }
}
