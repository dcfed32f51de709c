namespace Distill.ServiceDefaults;

/// <summary>The "Server" configuration section shared by every Distill gRPC host.</summary>
public sealed class ServerOptions
{
    public const string Section = "Server";

    /// <summary>Port on all interfaces, used unless ASPNETCORE_URLS or --urls says otherwise.</summary>
    public int Port { get; set; } = 5051;

    /// <summary>When set, calls must carry "authorization: Bearer KEY" or "x-api-key: KEY"; health checks stay open.</summary>
    public string? ApiKey { get; set; }

    /// <summary>PEM certificate and private key; when given the server speaks TLS, else plain HTTP/2 (h2c).</summary>
    public string? TlsCertificatePath { get; set; }
    public string? TlsKeyPath { get; set; }

    /// <summary>Largest gRPC message received or sent.</summary>
    public int MaxMessageBytes { get; set; } = 64 * 1024 * 1024;
}
