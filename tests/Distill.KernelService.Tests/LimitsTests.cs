using Google.Rpc;
using Distill.Adapters.Conversions;
using Distill.Protos.Kernel.V1;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using static Distill.KernelService.Tests.Messages;

namespace Distill.KernelService.Tests;

/// <summary>Configured limits answer RESOURCE_EXHAUSTED; deadlines and cancellation stop the work.</summary>
public class LimitsTests
{
    private static readonly KernelSpec NtkMessage = new() { FullyConnected = new FullyConnectedSpec { Kind = KernelKind.Ntk } };

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
        using var counter = new ServerMetricsListener(server);
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

    /// <summary>
    /// Four row blocks of 4096 test (or target) rows, and the support's Gram matrix in blocks (an
    /// evaluation's first, a Label Solve's last). When the first block is counted, the test
    /// cancels the call and holds the server's compute thread until the server has seen the
    /// cancel: a service that honours it stops before the second block, one that ignores it
    /// computes all of them.
    /// </summary>
    [Theory]
    [InlineData(nameof(KernelService.Grpc.KernelGrpcService.EvaluateKrr))]
    [InlineData(nameof(KernelService.Grpc.KernelGrpcService.LabelSolveShard))]
    [InlineData(nameof(KernelService.Grpc.KernelGrpcService.StreamEvaluateKrr))]
    [InlineData(nameof(KernelService.Grpc.KernelGrpcService.StreamLabelSolveShard))]
    public async Task RowBlockedCall_ClientCancelsAfterFirstBlock_ServerStopsBeforeTheSecond(string method)
    {
        var calls = new ServerCallTokens();
        await using var server = await LoopbackKernelServer.StartAsync(services: services =>
        {
            services.AddSingleton(calls);
            services.Configure<GrpcServiceOptions>(grpc => grpc.Interceptors.Add<ServerCallTokens>());
        });
        const int rows = 4 * 4096, supportRows = 20;
        var info = await UploadAsync(server.Client, Random(rows, 4, 1), Random(rows, 4, 2), classes: 2, chunkRows: 4096);
        var support = Random(supportRows, 4, 3).ToMessage();
        using var cancel = new CancellationTokenSource();
        long firstBlock = 0;
        using var counter = new ServerMetricsListener(server, onElements: (counted, elements) =>
        {
            if (counted != method) return;
            Interlocked.CompareExchange(ref firstBlock, elements, 0);
            cancel.Cancel();
            Assert.True(calls.Of(method).WaitHandle.WaitOne(TimeSpan.FromSeconds(60)), "the server never saw the cancel");
        });

        var evaluation = new EvaluateKrrRequest
        {
            Kernel = NtkMessage, Support = support, SupportLabels = Labels(supportRows, 2).ToMessage(), Dataset = info.Name, Split = Split.Test,
        };
        var labelSolve = new LabelSolveShardRequest { Kernel = NtkMessage, Support = support, Targets = Rows(info.Name, 0, rows).Rows };
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            switch (method)
            {
                case nameof(KernelService.Grpc.KernelGrpcService.EvaluateKrr):
                    await server.Client.EvaluateKrrAsync(evaluation, cancellationToken: cancel.Token);
                    break;
                case nameof(KernelService.Grpc.KernelGrpcService.LabelSolveShard):
                    await server.Client.LabelSolveShardAsync(labelSolve, cancellationToken: cancel.Token);
                    break;
                case nameof(KernelService.Grpc.KernelGrpcService.StreamEvaluateKrr):
                    using (var call = server.Client.StreamEvaluateKrr(new StreamEvaluateKrrRequest { Evaluation = evaluation }, cancellationToken: cancel.Token))
                        await call.ResponseStream.ReadAllAsync().ToListAsync();
                    break;
                default:
                    using (var call = server.Client.StreamLabelSolveShard(new StreamLabelSolveShardRequest { Shard = labelSolve }, cancellationToken: cancel.Token))
                        await call.ResponseStream.ReadAllAsync().ToListAsync();
                    break;
            }
        });

        Assert.Equal(StatusCode.Cancelled, error.StatusCode);
        Assert.Equal(nameof(StatusCode.Cancelled), await counter.CallEnded(method));
        // An evaluation's first block is a part of the support Gram (of its 20 x 21 / 2 pairs), a Label Solve's 4096 target rows.
        if (method.Contains("Evaluate")) Assert.InRange(firstBlock, 1, supportRows * (supportRows + 1) / 2 - 1);
        else Assert.Equal(4096L * supportRows, firstBlock);
        Assert.Equal(firstBlock, counter.Elements);
    }

    /// <summary>Each call's server-side cancellation token, as its handler sees it.</summary>
    private sealed class ServerCallTokens : Distill.ServiceDefaults.CallInterceptor
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, CancellationToken> _tokens = new();

        public CancellationToken Of(string method) => _tokens[method];

        protected override Task<T> Around<T>(ServerCallContext context, Func<Task<T>> call)
        {
            _tokens[context.Method[(context.Method.LastIndexOf('/') + 1)..]] = context.CancellationToken;
            return call();
        }
    }

    [Fact]
    public async Task ComputeGram_PastDeadline_IsDeadlineExceeded()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["Server:MaxMessageBytes"] = "16384" });
        var info = await UploadAsync(server.Client, Random(2000, 8, 1), Random(10, 8, 2), classes: 2, chunkRows: 100);
        using var counter = new ServerMetricsListener(server);
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            // The client reads one block, then nothing until the server has given up: about 118
            // blocks cannot pass HTTP/2 flow control unread, so the deadline must stop the server.
            using var call = server.Client.ComputeGram(new ComputeGramRequest { X1 = Rows(info.Name, 0, 2000), X2 = Inline(Random(100, 8, 3)) },
                deadline: DateTime.UtcNow.AddMilliseconds(300));
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            // The client's deadline passes first (the server's runs from the request's arrival): the
            // server ends the call on its own deadline or, when the client's reset comes first, as cancelled.
            Assert.Contains(await counter.CallEnded(nameof(KernelService.Grpc.KernelGrpcService.ComputeGram)), new[] { "DeadlineExceeded", "Cancelled" });
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
}
