using Distill.KernelService.Extensions;
using Distill.Protos.Kernel.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Distill.KernelService.Tests;

/// <summary>
/// The real kernel service host on Kestrel, listening on an ephemeral 127.0.0.1 port,
/// with a gRPC channel to it over HTTP/2: the network path a client in production takes.
/// </summary>
public sealed class LoopbackKernelServer : IAsyncDisposable
{
    private LoopbackKernelServer(WebApplication app, string address, GrpcChannel channel)
    {
        App = app;
        Address = address;
        Channel = channel;
        Client = new Protos.Kernel.V1.KernelService.KernelServiceClient(channel);
    }

    public WebApplication App { get; }
    public string Address { get; }
    public GrpcChannel Channel { get; }
    public Protos.Kernel.V1.KernelService.KernelServiceClient Client { get; }

    public static async Task<LoopbackKernelServer> StartAsync(IDictionary<string, string?>? settings = null,
        string scheme = "http", Func<GrpcChannelOptions, GrpcChannelOptions>? channelOptions = null, TimeProvider? time = null,
        Action<IServiceCollection>? services = null)
    {
        var app = KernelServiceHost.Build(["--urls", $"{scheme}://127.0.0.1:0"], builder =>
        {
            if (time is not null) builder.Services.AddSingleton(time);
            services?.Invoke(builder.Services);
            builder.Configuration.AddInMemoryCollection(settings ?? new Dictionary<string, string?>());
            builder.Logging.SetMinimumLevel(LogLevel.Warning);
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var options = new GrpcChannelOptions { MaxReceiveMessageSize = 256 << 20, MaxSendMessageSize = 256 << 20 };
        var channel = GrpcChannel.ForAddress(address, channelOptions?.Invoke(options) ?? options);
        return new LoopbackKernelServer(app, address, channel);
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
