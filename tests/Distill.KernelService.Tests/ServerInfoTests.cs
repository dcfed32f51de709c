using Distill.Protos.Kernel.V1;

namespace Distill.KernelService.Tests;

public class ServerInfoTests
{
    [Fact]
    public async Task GetServerInfo_ReportsKernelsDeviceAndConfiguredLimits()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?>
        {
            ["KernelService:MaxElementsPerRequest"] = "12345",
            ["KernelService:MaxConcurrentRequests"] = "3",
            ["Server:MaxMessageBytes"] = "1048576",
        });
        var info = await server.Client.GetServerInfoAsync(new GetServerInfoRequest());
        Assert.Contains("fully_connected/ntk", info.Kernels);
        Assert.Contains("fully_connected/nngp", info.Kernels);
        Assert.Equal("cpu", info.Device);
        Assert.True(info.Threads >= 1);
        Assert.Equal(12345, info.MaxElementsPerRequest);
        Assert.Equal(3, info.MaxConcurrentRequests);
        Assert.Equal(1048576, info.MaxMessageBytes);
        Assert.False(info.DataRootConfigured);
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("auto")]
    public async Task GetServerInfo_ReportsTheConfiguredDeviceAsResolved(string device)
    {
        // This build links TorchSharp-cpu: auto resolves to the CPU, and the report says so.
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:Device"] = device });
        var info = await server.Client.GetServerInfoAsync(new GetServerInfoRequest());
        Assert.Equal("cpu", info.Device);
    }

    [Theory]
    [InlineData("cuda", "CUDA is not available")]
    [InlineData("cuda:1", "CUDA is not available")]
    [InlineData("gpu", "not a device")]
    public async Task Device_UnusableOrMisspelt_RefusesToStart_NamingTheSetting(string device, string reason)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:Device"] = device }));
        Assert.Contains("KernelService:Device", error.Message);
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public async Task Metrics_CountRequestsByMethodAndStatus()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        using var metrics = new ServerMetricsListener(server);
        await server.Client.GetServerInfoAsync(new GetServerInfoRequest());
        var missing = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(() => server.Client.DropDatasetAsync(new DropDatasetRequest { Name = "datasets/none" }).ResponseAsync);
        var invalid = await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(() => server.Client.DropDatasetAsync(new DropDatasetRequest { Name = "none" }).ResponseAsync);

        Assert.Equal("OK", await metrics.CallEnded("GetServerInfo"));
        // The statuses the clients got, in the order of the calls, not the engine's exception types.
        Assert.Equal(global::Grpc.Core.StatusCode.NotFound, missing.StatusCode);
        Assert.Equal(global::Grpc.Core.StatusCode.InvalidArgument, invalid.StatusCode);
        Assert.Equal("NotFound", await metrics.CallEnded("DropDataset"));
        Assert.Equal("InvalidArgument", await metrics.CallEnded("DropDataset"));
    }
}
