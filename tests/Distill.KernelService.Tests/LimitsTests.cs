using Google.Rpc;
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
            using var call = server.Client.ComputeGram(new ComputeGramRequest { X1 = Inline(Random(50, 4, 1)), X2 = Inline(Random(50, 4, 2)) });
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
        await upload.RequestStream.WriteAsync(new UploadDatasetRequest { Header = new UploadDatasetHeader { DisplayName = "x", ClassCount = 2, ImageShape = { 2 } } });
        await WaitForCallsInFlightAsync(server, 1);

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SolveKrrAsync(new SolveKrrRequest
        {
            Support = Inline(Random(3, 2, 1)), SupportLabels = Labels(3, 2).ToMessage(),
        }).ResponseAsync);

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("MaxConcurrentRequests", error.Status.Detail);
        // Waiting helps, and the details say so: a RetryInfo, the limit named, a stable reason.
        var status = error.GetRpcStatus()!;
        Assert.True(status.GetDetail<RetryInfo>()!.RetryDelay.ToTimeSpan() > TimeSpan.Zero);
        Assert.Equal("KernelService:MaxConcurrentRequests", Assert.Single(status.GetDetail<QuotaFailure>()!.Violations).Subject);
        Assert.Equal("SERVER_BUSY", status.GetDetail<ErrorInfo>()!.Reason);
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
        using var call = server.Client.ComputeGram(new ComputeGramRequest { X1 = Rows(info.Name, 0, 2000), X2 = Inline(Random(100, 8, 3)) }, cancellationToken: cancel.Token);

        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        cancel.Cancel();
        var error = await Assert.ThrowsAsync<RpcException>(async () => { while (await call.ResponseStream.MoveNext(CancellationToken.None)) { } });
        Assert.Equal(StatusCode.Cancelled, error.StatusCode);

        // Counted once the server's handler has returned: nothing is computed after that.
        await counter.CallEnded(nameof(KernelService.Grpc.KernelGrpcService.ComputeGram));
        Assert.True(counter.Elements < 2000 * 100 / 2, $"server computed {counter.Elements} of {2000 * 100} entries after the cancel");
    }

    [Fact]
    public async Task ComputeGram_PastDeadline_IsDeadlineExceeded()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["Server:MaxMessageBytes"] = "16384" });
        var info = await UploadAsync(server.Client, Random(2000, 8, 1), Random(10, 8, 2), classes: 2, chunkRows: 100);
        using var counter = new ElementCounter();
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            // The client reads one block, then nothing until the server has given up: about 118
            // blocks cannot pass HTTP/2 flow control unread, so the deadline must stop the server.
            using var call = server.Client.ComputeGram(new ComputeGramRequest { X1 = Rows(info.Name, 0, 2000), X2 = Inline(Random(100, 8, 3)) },
                deadline: DateTime.UtcNow.AddMilliseconds(300));
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal("DeadlineExceeded", await counter.CallEnded(nameof(KernelService.Grpc.KernelGrpcService.ComputeGram)));
            while (await call.ResponseStream.MoveNext(CancellationToken.None)) { }
        });
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.True(counter.Elements < 2000 * 100 / 2, $"server computed {counter.Elements} of {2000 * 100} entries");
    }

    /// <summary>Waits, without sleeping, until the server reports that many compute calls running.</summary>
    internal static async Task WaitForCallsInFlightAsync(LoopbackKernelServer server, int count)
    {
        for (int attempt = 0; attempt < 10_000; attempt++)
            if ((await server.Client.GetServerInfoAsync(new GetServerInfoRequest())).CallsInFlight == count) return;
        throw new TimeoutException($"the server never had {count} calls in flight");
    }

    /// <summary>
    /// Reads the service's metrics as an OpenTelemetry exporter would: the "elements
    /// computed" counter, and each call's end (recorded when its handler has returned).
    /// </summary>
    internal sealed class ElementCounter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource<string>> _ended = new();
        private long _elements;

        public ElementCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == KernelServiceMetrics.MeterName && instrument.Name is "distill.kernel.elements" or "distill.kernel.requests")
                    listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                if (instrument.Name == "distill.kernel.elements")
                {
                    Interlocked.Add(ref _elements, value);
                    return;
                }
                string? method = null, status = null;
                foreach (var tag in tags)
                {
                    if (tag.Key == "method") method = tag.Value as string;
                    if (tag.Key == "status") status = tag.Value as string;
                }
                if (method is not null) Ended(method).TrySetResult(status ?? "");
            });
            _listener.Start();
        }

        public long Elements => Interlocked.Read(ref _elements);

        /// <summary>The status of the first call of <paramref name="method"/> to end after this counter started.</summary>
        public async Task<string> CallEnded(string method) => await Ended(method).Task.WaitAsync(TimeSpan.FromSeconds(60));

        private TaskCompletionSource<string> Ended(string method) =>
            _ended.GetOrAdd(method, _ => new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously));

        public void Dispose() => _listener.Dispose();
    }
}
