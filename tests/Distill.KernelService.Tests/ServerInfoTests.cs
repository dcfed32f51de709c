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
