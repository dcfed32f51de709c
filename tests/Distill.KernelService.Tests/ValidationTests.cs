using Distill.Adapters.Conversions;
using Distill.Protos.Kernel.V1;
using Google.Protobuf;
using Google.Rpc;
using Grpc.Core;
using static Distill.KernelService.Tests.Messages;

namespace Distill.KernelService.Tests;

/// <summary>Bad input gets INVALID_ARGUMENT or NOT_FOUND naming the field, and the server keeps serving.</summary>
public class ValidationTests
{
    public static TheoryData<string, Func<string, ComputeGramRequest>, StatusCode, string> BadGramRequests() => new()
    {
        { "short data", _ => new ComputeGramRequest { X1 = new Operand { Inline = new Tensor { Shape = { 2, 3 }, Dtype = DataType.Float64, Data = ByteString.CopyFrom(new byte[40]) } }, X2 = Inline(Random(2, 3, 1)) }, StatusCode.InvalidArgument, "x1.inline.data" },
        { "no dtype", _ => new ComputeGramRequest { X1 = new Operand { Inline = new Tensor { Shape = { 1, 1 }, Data = ByteString.CopyFrom(new byte[8]) } }, X2 = Inline(Random(2, 1, 1)) }, StatusCode.InvalidArgument, "x1.inline.dtype" },
        { "NaN", _ => new ComputeGramRequest { X1 = Inline(TorchSharp.torch.tensor(new[] { double.NaN, 1 }, [1, 2])), X2 = Inline(Random(2, 2, 1)) }, StatusCode.InvalidArgument, "NaN" },
        // A fuzzed request of this rank held a compute thread for minutes.
        { "a million dimensions", _ => new ComputeGramRequest { X1 = new Operand { Inline = new Tensor { Shape = { Enumerable.Repeat(1L, 1 << 20) }, Dtype = DataType.Float64, Data = ByteString.CopyFrom(new byte[8]) } }, X2 = Inline(Random(2, 1, 1)) }, StatusCode.InvalidArgument, "x1.inline.shape: at most 8 dimensions" },
        { "vector", _ => new ComputeGramRequest { X1 = new Operand { Inline = TorchSharp.torch.ones(3).ToMessage() }, X2 = Inline(Random(2, 3, 1)) }, StatusCode.InvalidArgument, "x1.inline.shape" },
        { "feature mismatch", _ => new ComputeGramRequest { X1 = Inline(Random(2, 3, 1)), X2 = Inline(Random(2, 4, 1)) }, StatusCode.InvalidArgument, "x2: has 4 features" },
        { "operand missing", _ => new ComputeGramRequest { X1 = Inline(Random(2, 3, 1)) }, StatusCode.InvalidArgument, "x2: set either inline or rows" },
        { "depth", _ => new ComputeGramRequest { Kernel = new KernelSpec { FullyConnected = new FullyConnectedSpec { Depth = -1 } }, X1 = Inline(Random(2, 3, 1)), X2 = Inline(Random(2, 3, 1)) }, StatusCode.InvalidArgument, "kernel.fully_connected.depth" },
        { "w_std", _ => new ComputeGramRequest { Kernel = new KernelSpec { FullyConnected = new FullyConnectedSpec { WStd = 0 } }, X1 = Inline(Random(2, 3, 1)), X2 = Inline(Random(2, 3, 1)) }, StatusCode.InvalidArgument, "kernel.fully_connected.w_std" },
        { "kind", _ => new ComputeGramRequest { Kernel = new KernelSpec { FullyConnected = new FullyConnectedSpec { Kind = (KernelKind)7 } }, X1 = Inline(Random(2, 3, 1)), X2 = Inline(Random(2, 3, 1)) }, StatusCode.InvalidArgument, "kernel.fully_connected.kind" },
        { "not a dataset name", _ => new ComputeGramRequest { X1 = Rows("ds-nope", 0, 1), X2 = Inline(Random(2, 3, 1)) }, StatusCode.InvalidArgument, "x1.rows.dataset" },
        { "unknown dataset", _ => new ComputeGramRequest { X1 = Rows("datasets/ds-nope", 0, 1), X2 = Inline(Random(2, 3, 1)) }, StatusCode.NotFound, "x1.rows.dataset" },
        { "range", id => new ComputeGramRequest { X1 = Rows(id, 5, 100), X2 = Inline(Random(2, 4, 1)) }, StatusCode.InvalidArgument, "x1.rows.ranges[0]" },
    };

    [Theory]
    [MemberData(nameof(BadGramRequests))]
    public async Task ComputeGram_BadRequest_FailsNamingTheField(string name, Func<string, ComputeGramRequest> request, StatusCode code, string expected)
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var info = await UploadAsync(server.Client, Random(10, 4, 1), Random(2, 4, 2), classes: 2);

        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var call = server.Client.ComputeGram(request(info.Name));
            await call.ResponseStream.ReadAllAsync().ToListAsync();
        });

        Assert.True(code == error.StatusCode, $"{name}: {error.StatusCode} {error.Status.Detail}");
        Assert.Contains(expected, error.Status.Detail);
        // The server is still healthy afterwards.
        Assert.NotEmpty((await server.Client.GetServerInfoAsync(new GetServerInfoRequest())).Kernels);
    }

    [Fact]
    public async Task InvalidArgument_CarriesBadRequestFieldViolation()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.SolveKrrAsync(new SolveKrrRequest
        {
            Support = Inline(Random(3, 2, 1)), SupportLabels = Labels(3, 2).ToMessage(), Regularization = -1,
        }).ResponseAsync);
        var status = error.GetRpcStatus();
        Assert.NotNull(status);
        var violation = Assert.Single(status!.GetDetail<BadRequest>()!.FieldViolations);
        Assert.Equal("regularization", violation.Field);
    }

    [Fact]
    public async Task KipShardStep_WrongShapes_NameTheField()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var info = await UploadAsync(server.Client, Random(10, 4, 1), Random(2, 4, 2), classes: 2);
        KipShardStepRequest Request(long features, long labelColumns, long total = 0) => new()
        {
            Support = Random(2, features, 3).ToMessage(), SupportLabels = Labels(2, (int)labelColumns).ToMessage(),
            Targets = Rows(info.Name, 0, 10).Rows, TotalTargets = total,
        };
        async Task<string> Detail(KipShardStepRequest r) => (await Assert.ThrowsAsync<RpcException>(() => server.Client.KipShardStepAsync(r).ResponseAsync)).Status.Detail;

        Assert.StartsWith("support:", await Detail(Request(5, 2)));
        Assert.StartsWith("support_labels:", await Detail(Request(4, 3)));
        Assert.StartsWith("total_targets:", await Detail(Request(4, 2, total: 3)));
    }

    [Fact]
    public async Task VectorJacobianProduct_GradientForDatasetRowsOrBadCotangent_IsRefused()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var info = await UploadAsync(server.Client, Random(10, 4, 1), Random(2, 4, 2), classes: 2);
        var rowsError = await Assert.ThrowsAsync<RpcException>(() => server.Client.VectorJacobianProductAsync(new VectorJacobianProductRequest
        {
            X1 = Rows(info.Name, 0, 3), X2 = Inline(Random(2, 4, 3)), Cotangent = Random(3, 2, 4).ToMessage(), WantX1 = true,
        }).ResponseAsync);
        Assert.Contains("want_x1", rowsError.Status.Detail);
        var shapeError = await Assert.ThrowsAsync<RpcException>(() => server.Client.VectorJacobianProductAsync(new VectorJacobianProductRequest
        {
            X1 = Inline(Random(3, 4, 1)), X2 = Inline(Random(2, 4, 3)), Cotangent = Random(2, 3, 4).ToMessage(), WantX1 = true,
        }).ResponseAsync);
        Assert.Contains("cotangent: shape [2,3] should be [3,2]", shapeError.Status.Detail);
    }

    [Fact]
    public async Task UploadDataset_LabelOutOfRangeOrMissingHeader_IsRefused()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        using (var call = server.Client.UploadDataset())
        {
            var message = new UploadDatasetRequest { Header = new UploadDatasetHeader { DisplayName = "x", ClassCount = 2, ImageShape = { 3 } }, Features = Random(2, 3, 1).ToMessage() };
            message.Labels.Add([0, 2]);
            await call.RequestStream.WriteAsync(message);
            await call.RequestStream.CompleteAsync();
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
            Assert.Contains("label 2 is outside 0..1", error.Status.Detail);
        }
        using (var call = server.Client.UploadDataset())
        {
            await call.RequestStream.WriteAsync(new UploadDatasetRequest { Features = Random(2, 3, 1).ToMessage() });
            await call.RequestStream.CompleteAsync();
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
            Assert.Contains("header", error.Status.Detail);
        }
    }

    // Found by the gRPC fuzzer (tests/fuzz/Distill.Fuzz.Grpc): the 100,000-character name was
    // quoted back in the error's message and ResourceInfo, the trailers passed the 64 KB an
    // HTTP/2 client accepts, and the client saw UNAVAILABLE instead of INVALID_ARGUMENT.
    [Fact]
    public async Task DropDataset_HugeName_IsInvalidArgumentWithTheNameCut()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var name = new string('a', 100_000);

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.DropDatasetAsync(new DropDatasetRequest { Name = name }).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.True(error.Status.Detail.Length <= Distill.ServiceDefaults.ExceptionStatusInterceptor.MaxTextLength, $"{error.Status.Detail.Length} characters");
        Assert.Contains("more characters", error.Status.Detail);
    }

    // Found by the gRPC fuzzer: a lease of 60 s and -2147483647 ns (not a normalized Duration)
    // made Duration.ToTimeSpan throw, and the call ended INTERNAL.
    [Fact]
    public async Task RegisterDataset_LeaseNotANormalizedDuration_IsInvalidArgumentNamingTheField()
    {
        await using var server = await LoopbackKernelServer.StartAsync();

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.RegisterDatasetAsync(new RegisterDatasetRequest
        {
            Path = "anything", LeaseTtl = new Google.Protobuf.WellKnownTypes.Duration { Seconds = 60, Nanos = -2147483647 },
        }).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.StartsWith("lease_ttl", error.Status.Detail);
    }
}
