using System.Security.Cryptography.X509Certificates;
using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Distill.ServiceDefaults;

public static class ServiceDefaultsExtensions
{
    /// <summary>
    /// Kestrel on HTTP/2 (TLS when a certificate is configured), gRPC with the shared
    /// interceptors (API key, then status mapping, then the host's own), health checks,
    /// reflection and OpenTelemetry metrics for the given meters.
    /// </summary>
    public static WebApplicationBuilder AddServiceDefaults(this WebApplicationBuilder builder, string serviceName,
        IEnumerable<string> meters, Action<GrpcServiceOptions>? configureGrpc = null)
    {
        var section = builder.Configuration.GetSection(ServerOptions.Section);
        builder.Services.Configure<ServerOptions>(section);
        var server = section.Get<ServerOptions>() ?? new ServerOptions();
        // Four log lines per request from the hosting and routing middleware are noise next to a
        // kernel call; they stay off unless the configuration sets its own level.
        if (builder.Configuration["Logging:LogLevel:Microsoft.AspNetCore"] is null)
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            X509Certificate2? certificate = null;
            if (!string.IsNullOrEmpty(server.TlsCertificatePath))
                certificate = X509Certificate2.CreateFromPemFile(server.TlsCertificatePath, server.TlsKeyPath);
            kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http2);
            if (certificate is not null)
                kestrel.ConfigureHttpsDefaults(https => https.ServerCertificate = certificate);
            kestrel.Limits.MaxRequestBodySize = null;
            // Without explicit URLs, listen on the configured port.
            if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
                kestrel.ListenAnyIP(server.Port, listen => { if (certificate is not null) listen.UseHttps(certificate); });
        });

        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = server.MaxMessageBytes;
            grpc.MaxSendMessageSize = server.MaxMessageBytes;
            grpc.Interceptors.Add<ApiKeyInterceptor>();
            grpc.Interceptors.Add<ExceptionStatusInterceptor>();
            configureGrpc?.Invoke(grpc);
        });
        builder.Services.AddGrpcReflection();
        builder.Services.AddGrpcHealthChecks().AddCheck("self", () => HealthCheckResult.Healthy());

        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName))
            .WithMetrics(metrics =>
            {
                metrics.AddAspNetCoreInstrumentation();
                foreach (var meter in meters) metrics.AddMeter(meter);
                // Exported only where a collector is configured (OTEL_EXPORTER_OTLP_ENDPOINT).
                if (!string.IsNullOrEmpty(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
                    metrics.AddOtlpExporter();
            });
        return builder;
    }

    public static WebApplication MapServiceDefaults(this WebApplication app)
    {
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();
        return app;
    }
}
