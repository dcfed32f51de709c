using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Grpc.Reflection.V1Alpha;

namespace Distill.KernelService.Tests;

public sealed class SecurityTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("distill-tls-");

    [Fact]
    public async Task ApiKey_Configured_RefusesCallsWithoutIt_AcceptsBearerOrHeader_KeepsHealthOpen()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["Server:ApiKey"] = "s3cret" });

        var refused = await Assert.ThrowsAsync<RpcException>(() => server.Client.GetServerInfoAsync(new GetServerInfoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        var wrong = await Assert.ThrowsAsync<RpcException>(() => server.Client.GetServerInfoAsync(new GetServerInfoRequest(), new Metadata { { "x-api-key", "guess" } }).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, wrong.StatusCode);

        await server.Client.GetServerInfoAsync(new GetServerInfoRequest(), new Metadata { { "authorization", "Bearer s3cret" } });
        await server.Client.GetServerInfoAsync(new GetServerInfoRequest(), new Metadata { { "x-api-key", "s3cret" } });
        var health = await new Health.HealthClient(server.Channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
    }

    [Fact]
    public async Task Reflection_ListsTheKernelService()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        using var call = new ServerReflection.ServerReflectionClient(server.Channel).ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("distill.kernel.v1.KernelService", services);
        Assert.Contains("grpc.health.v1.Health", services);
    }

    [Fact]
    public async Task Tls_WithApiKey_ServesOverHttps_AndStillRequiresTheKey()
    {
        var (certificatePath, keyPath) = WriteSelfSignedCertificate();
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?>
        {
            ["Server:TlsCertificatePath"] = certificatePath,
            ["Server:TlsKeyPath"] = keyPath,
            ["Server:ApiKey"] = "s3cret",
        }, scheme: "https", channelOptions: options =>
        {
            // The test's own self-signed certificate: trust it and nothing else.
            var expected = X509Certificate2.CreateFromPemFile(certificatePath, keyPath).Thumbprint;
            options.HttpHandler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, cert, _, _) => cert?.Thumbprint == expected };
            return options;
        });

        Assert.StartsWith("https://", server.Address);
        // TLS protects the key on the wire; it does not replace it.
        var refused = await Assert.ThrowsAsync<RpcException>(() => server.Client.GetServerInfoAsync(new GetServerInfoRequest()).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        var info = await server.Client.GetServerInfoAsync(new GetServerInfoRequest(), new Metadata { { "authorization", "Bearer s3cret" } });
        Assert.Equal("cpu", info.Device);
    }

    private (string Certificate, string Key) WriteSelfSignedCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var certificatePath = Path.Combine(_directory.FullName, "server.crt");
        var keyPath = Path.Combine(_directory.FullName, "server.key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }

    public void Dispose() => _directory.Delete(recursive: true);
}
