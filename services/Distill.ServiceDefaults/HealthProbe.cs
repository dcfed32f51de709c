using Grpc.Health.V1;
using Grpc.Net.Client;

namespace Distill.ServiceDefaults;

/// <summary>
/// <c>SERVICE --health-probe</c>: asks the service running in this container (or host) for
/// its gRPC health on 127.0.0.1 and the configured port (Server__Port, else the service's
/// default) and exits 0 when it is SERVING. Container health checks run it: no separate
/// probe binary, and the same check as Kubernetes' gRPC probes.
/// </summary>
public static class HealthProbe
{
    public const string Argument = "--health-probe";

    /// <summary>The probe's exit code when <paramref name="args"/> asks for it, else null.</summary>
    public static int? RunIfAsked(string[] args, int defaultPort)
    {
        if (args.Length == 0 || args[0] != Argument) return null;
        var port = int.TryParse(Environment.GetEnvironmentVariable("Server__Port"), out var p) ? p : defaultPort;
        var tls = !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("Server__TlsCertificatePath"));
        var handler = new SocketsHttpHandler();
        // Loopback to our own process: the certificate names the service, not 127.0.0.1.
        if (tls) handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        try
        {
            using var channel = GrpcChannel.ForAddress($"{(tls ? "https" : "http")}://127.0.0.1:{port}", new GrpcChannelOptions { HttpHandler = handler });
            var reply = new Health.HealthClient(channel).Check(new HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(5));
            Console.WriteLine(reply.Status);
            return reply.Status == HealthCheckResponse.Types.ServingStatus.Serving ? 0 : 1;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"health probe on port {port}: {e.Message}");
            return 1;
        }
    }
}
