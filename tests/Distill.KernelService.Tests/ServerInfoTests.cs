using System.Diagnostics.Metrics;
using Distill.KernelService.Telemetry;
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
        var seen = new List<(string Method, string Status)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == KernelServiceMetrics.MeterName && instrument.Name == "distill.kernel.requests") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            var t = tags.ToArray().ToDictionary(kv => kv.Key, kv => kv.Value?.ToString());
            lock (seen) seen.Add((t["method"]!, t["status"]!));
        });
        listener.Start();

        await using var server = await LoopbackKernelServer.StartAsync();
        await server.Client.GetServerInfoAsync(new GetServerInfoRequest());
        await Assert.ThrowsAsync<global::Grpc.Core.RpcException>(() => server.Client.DropDatasetAsync(new DropDatasetRequest { Name = "none" }).ResponseAsync);

        lock (seen)
        {
            Assert.Contains(("GetServerInfo", "OK"), seen);
            Assert.Contains(seen, s => s.Method == "DropDataset" && s.Status != "OK");
        }
    }
}
