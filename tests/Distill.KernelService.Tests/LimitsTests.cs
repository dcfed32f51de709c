using System.Diagnostics.Metrics;
using Distill.KernelService.Telemetry;
using Distill.Adapters.Conversions;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using static Distill.KernelService.Tests.Messages;

namespace Distill.KernelService.Tests;

/// <summary>Configured limits answer RESOURCE_EXHAUSTED; deadlines and cancellation stop the work.</summary>
public class LimitsTests
{
    [Fact]
    public async Task ComputeGram_MoreElementsThanAllowed_IsResourceExhausted()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:MaxElementsPerRequest"] = "1000" });
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = server.Client.ComputeGram(new GramRequest { X1 = Inline(Random(50, 4, 1)), X2 = Inline(Random(50, 4, 2)) });
            await call.ResponseStream.ReadAllAsync().ToListAsync();
        });
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("2500 elements exceed", error.Status.Detail);
    }

    [Fact]
    public async Task ComputeCall_BeyondConcurrencyLimit_IsRefusedAtOnce()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:MaxConcurrentRequests"] = "1" });
        // An upload holds its slot for as long as its stream stays open.
        using var upload = server.Client.UploadDataset();
        await upload.RequestStream.WriteAsync(new UploadDatasetRequest { Header = new UploadDatasetHeader { Name = "x", ClassCount = 2, FeatureCount = 2 } });
        await Task.Delay(200);

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SolveKrrAsync(new KrrRequest
        {
            Support = Inline(Random(3, 2, 1)), SupportLabels = Labels(3, 2).ToMessage(),
        }).ResponseAsync);

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("MaxConcurrentRequests", error.Status.Detail);
        // Information calls are not gated.
        await server.Client.GetServerInfoAsync(new GetServerInfoRequest());
    }

    [Fact]
    public async Task ComputeGram_ClientCancelsAfterFirstBlock_ServerStopsComputing()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["Server:MaxMessageBytes"] = "16384" });
        var info = await UploadAsync(server.Client, Random(2000, 8, 1), Random(10, 8, 2), classes: 2, chunkRows: 100);
        using var counter = new ElementCounter();
        using var cancel = new CancellationTokenSource();
        // 16 KiB messages hold 17 rows of 100 float64 entries: about 118 blocks if run to the end.
        using var call = server.Client.ComputeGram(new GramRequest { X1 = Rows(info.DatasetId, 0, 2000), X2 = Inline(Random(100, 8, 3)) }, cancellationToken: cancel.Token);

        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        cancel.Cancel();
        var error = await Assert.ThrowsAsync<RpcException>(async () => { while (await call.ResponseStream.MoveNext(CancellationToken.None)) { } });
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);

        await Task.Delay(500);
        Assert.True(counter.Elements < 2000 * 100 / 2, $"server computed {counter.Elements} of {2000 * 100} entries after the cancel");
    }

    [Fact]
    public async Task ComputeGram_PastDeadline_IsDeadlineExceeded()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["Server:MaxMessageBytes"] = "16384" });
        var info = await UploadAsync(server.Client, Random(2000, 8, 1), Random(10, 8, 2), classes: 2, chunkRows: 100);
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            // About 118 blocks read at 50 ms each cannot finish within 300 ms.
            using var call = server.Client.ComputeGram(new GramRequest { X1 = Rows(info.DatasetId, 0, 2000), X2 = Inline(Random(100, 8, 3)) },
                deadline: DateTime.UtcNow.AddMilliseconds(300));
            await foreach (var _ in call.ResponseStream.ReadAllAsync()) await Task.Delay(50);
        });
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
    }

    /// <summary>Sums the service's "elements computed" counter, as an OpenTelemetry exporter would read it.</summary>
    internal sealed class ElementCounter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _elements;

        public ElementCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == KernelServiceMetrics.MeterName && instrument.Name == "distill.kernel.elements")
                    listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _elements, value));
            _listener.Start();
        }

        public long Elements => Interlocked.Read(ref _elements);

        public void Dispose() => _listener.Dispose();
    }
}
