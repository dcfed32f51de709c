using Distill.Adapters.Conversions;
using Distill.Core.FeaturePool;
using Distill.Core.Kernels;
using Distill.Core.Tests;
using Distill.Protos.Kernel.V1;
using Google.Rpc;
using Grpc.Core;
using static Distill.KernelService.Tests.Messages;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;
using CoreKernelSpec = Distill.Core.Kernels.KernelSpec;
using KernelKind = Distill.Core.Kernels.KernelKind;
using PoolLoss = Distill.Core.FeaturePool.PoolLoss;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.KernelService.Tests;

/// <summary>
/// Feature pools over real HTTP/2 on tiny 3 x 8 x 8 images: a target set registered as two
/// pools (one per half, as a client shards it over two services) gives steps whose summed
/// results equal one in-process pool over the whole set, to float64 round-off.
/// </summary>
public class FeaturePoolServiceTests
{
    private static readonly CoreKernelSpec ConvNet3 = new(KernelKind.Nngp, Architecture: KernelArchitecture.ConvNet3,
        ImageChannels: 3, ImageHeight: 8, ImageWidth: 8);
    private static readonly long[] ImageShape = [3, 8, 8];
    private const int Networks = 4, Width = 8, Classes = 2;
    private const ulong Seed = 7;

    private static RandomFeatureConvSpec NetworksMessage() => ((CoreKernelSpec)(ConvNet3 with { RandomFeatures = new RandomFeatureSpec(Networks, Width, Seed) }))
        .ToMessage().RandomFeatures;

    private static RegisterFeaturePoolRequest Register(string dataset, long start, long count) => new()
    {
        Networks = NetworksMessage(), FeatureType = DataType.Float64,
        Targets = new DatasetRows { Dataset = dataset, Split = Split.Train, Ranges = { new IndexRange { Start = start, Count = count } } },
    };

    private static FeaturePoolStepRequest Step(string pool, Tensor support, Tensor labels, int[] networks, long[] rows, long total) => new()
    {
        Pool = pool, Support = support.ToMessage(shape: [support.shape[0], .. ImageShape]), SupportLabels = labels.ToMessage(),
        Networks = { networks }, Rows = { rows }, TotalTargets = total, Loss = Protos.Kernel.V1.PoolLoss.Platt, LogScale = 0.3,
        Regularization = 1e-2, WantLabelGradient = true,
    };

    [Fact]
    public async Task StepsOverTwoRegisteredHalves_SumToTheEnginesStepOverTheWholeSet()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var train = randn(12, 3 * 8 * 8, dtype: ScalarType.Float64, generator: new Generator(1));
        var dataset = await UploadAsync(server.Client, train, randn(2, 3 * 8 * 8, dtype: ScalarType.Float64), Classes, imageShape: ImageShape);
        var first = await server.Client.RegisterFeaturePoolAsync(Register(dataset.Name, 0, 6));
        var second = await server.Client.RegisterFeaturePoolAsync(Register(dataset.Name, 6, 6));
        Assert.NotEqual(first.Name, second.Name);
        Assert.Equal((Networks, 6L), (first.Networks, first.TargetCount));

        var support = randn(3, 3 * 8 * 8, dtype: ScalarType.Float64, generator: new Generator(2));
        var labels = Labels(3, Classes);
        int[] networks = [0, 2];
        // Targets 1, 3 (first half) and 7, 10 (second half, positions 1 and 4 there).
        var a = await server.Client.FeaturePoolStepAsync(Step(first.Name, support, labels, networks, [1, 3], 4));
        var b = await server.Client.FeaturePoolStepAsync(Step(second.Name, support, labels, networks, [1, 4], 4));

        var source = new RandomFeatureConvKernel(ConvNet3, Networks, Width, Seed);
        using var whole = FeaturePoolShard.Compute(source, train, CenteredTargets(12),
            ScalarType.Float64, long.MaxValue);
        using var engine = whole.Step(new PoolStepRequest(support, labels, 0.3, networks, [1, 3, 7, 10], 4, true, 0), PoolLoss.Platt, 1e-2);

        Assert.Equal(engine.Loss, a.Loss + b.Loss, 1e-10);
        Assert.Equal(engine.Correct, a.Correct + b.Correct);
        Assert.Equal(engine.ScaleGradient, a.LogScaleGradient + b.LogScaleGradient, 1e-10);
        Assert.Equal(new long[] { 3, 3, 8, 8 }, a.SupportGradient.Shape.ToArray());
        TensorAssert.Close(engine.SupportGradient, a.SupportGradient.ToTorch().reshape(3, -1).add(b.SupportGradient.ToTorch().reshape(3, -1), One), 1e-10, "support gradient");
        TensorAssert.Close(engine.LabelGradient!, a.LabelGradient.ToTorch().add(b.LabelGradient.ToTorch(), One), 1e-10, "label gradient");
        Assert.True(engine.SupportGradient.abs().max().item<double>() > 0, "a zero gradient would make the comparison empty");
    }

    [Fact]
    public async Task ProductsAndTheirGradient_OverTwoRangesOfNetworks_GiveTheEnginesStep()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var train = randn(12, 3 * 8 * 8, dtype: ScalarType.Float64, generator: new Generator(1));
        var dataset = await UploadAsync(server.Client, train, randn(2, 3 * 8 * 8, dtype: ScalarType.Float64), Classes, imageShape: ImageShape);
        async Task<FeaturePool> RegisterRange(int start, int count)
        {
            var request = Register(dataset.Name, 0, 12);
            request.NetworkRange = new IndexRange { Start = start, Count = count };
            return await server.Client.RegisterFeaturePoolAsync(request);
        }
        var low = await RegisterRange(0, 2);
        var high = await RegisterRange(2, 2);
        Assert.Equal((2, 2, 2), (high.FirstNetwork, high.Networks, low.Networks));

        var support = randn(3, 3 * 8 * 8, dtype: ScalarType.Float64, generator: new Generator(2));
        var labels = Labels(3, Classes);
        long[] rows = [1, 3, 7, 10];
        var supportMessage = support.ToMessage(shape: [3, .. ImageShape]);
        async Task<FeaturePoolProductsResponse> Products(FeaturePool pool, int[] networks, bool keep = false) =>
            await server.Client.FeaturePoolProductsAsync(new FeaturePoolProductsRequest
            {
                Pool = pool.Name, Support = supportMessage, Networks = { networks }, Rows = { rows }, KeepForGradient = keep,
            });
        // One part keeps its pass for the gradient round; the other computes it again there.
        var a = await Products(low, [1], keep: true);
        var b = await Products(high, [2, 3]);
        Assert.NotEmpty(a.GradientToken);
        Assert.Empty(b.GradientToken);

        var source = new RandomFeatureConvKernel(ConvNet3, Networks, Width, Seed);
        var request = new PoolStepRequest(support, labels, 0.3, [1, 2, 3], rows, 4, true, 0);
        using var step = PooledKernel.StepFromProducts(ConvNet3, 3, source.FeatureCount,
            a.SupportProducts.ToTorch().add(b.SupportProducts.ToTorch(), One), a.TargetProducts.ToTorch().add(b.TargetProducts.ToTorch(), One),
            request, CenteredTargets(12).index_select(0, tensor(rows)), PoolLoss.Platt, 1e-2);
        async Task<Tensor> Gradient(FeaturePool pool, int[] networks, string token = "") =>
            (await server.Client.FeaturePoolProductsGradientAsync(new FeaturePoolProductsGradientRequest
            {
                Pool = pool.Name, Support = supportMessage, Networks = { networks }, Rows = { rows },
                SupportCotangent = step.SupportCotangent.ToMessage(), TargetCotangent = step.TargetCotangent.ToMessage(), GradientToken = token,
            })).SupportGradient.ToTorch().reshape(3, -1);
        var gradient = (await Gradient(low, [1], a.GradientToken)).add(await Gradient(high, [2, 3]), One);

        using var whole = FeaturePoolShard.Compute(source, train, CenteredTargets(12),
            ScalarType.Float64, long.MaxValue);
        using var engine = whole.Step(request, PoolLoss.Platt, 1e-2);
        Assert.Equal(engine.Loss, step.Loss, 1e-10);
        TensorAssert.Close(engine.SupportGradient, gradient, 1e-10, "support gradient");
        // A network outside the range a pool holds is refused, naming the field.
        var outside = await FailsAsync(() => Products(low, [2]));
        Assert.Equal("networks", Assert.Single(outside.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    [Fact]
    public async Task RegisteringTheSamePoolAgain_ReturnsTheHeldOneWithoutComputing()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var dataset = await UploadAsync(server.Client, randn(8, 192, dtype: ScalarType.Float64), randn(2, 192, dtype: ScalarType.Float64), Classes, imageShape: ImageShape);

        var first = await server.Client.RegisterFeaturePoolAsync(Register(dataset.Name, 0, 8));
        var again = await server.Client.RegisterFeaturePoolAsync(Register(dataset.Name, 0, 8));
        var info = await server.Client.GetServerInfoAsync(new GetServerInfoRequest());

        Assert.Equal(first.Name, again.Name);
        Assert.True(first.ComputeTime.ToTimeSpan() > TimeSpan.Zero);
        Assert.Equal(TimeSpan.Zero, again.ComputeTime.ToTimeSpan());
        Assert.Equal((1, first.Bytes), (info.FeaturePoolCount, info.FeaturePoolBytes));
        Assert.Equal(Networks * 8L * first.FeatureCount * 8, first.Bytes);

        await server.Client.DropFeaturePoolAsync(new DropFeaturePoolRequest { Name = first.Name });
        var gone = await FailsAsync(() => server.Client.FeaturePoolStepAsync(Step(first.Name, randn(1, 192, dtype: ScalarType.Float64), Labels(1, Classes), [0], [0], 1)).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, gone.StatusCode);
        Assert.Equal(0, (await server.Client.GetServerInfoAsync(new GetServerInfoRequest())).FeaturePoolBytes);
    }

    [Fact]
    public async Task StreamRegisterFeaturePool_ReportsEachNetwork_ThenThePool_AndAHeldPoolAtOnce()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var dataset = await UploadAsync(server.Client, randn(8, 192, dtype: ScalarType.Float64), randn(2, 192, dtype: ScalarType.Float64), Classes, imageShape: ImageShape);
        var range = Register(dataset.Name, 0, 8);
        range.NetworkRange = new IndexRange { Start = 1, Count = 3 };

        async Task<List<StreamRegisterFeaturePoolResponse>> Stream(RegisterFeaturePoolRequest? registration)
        {
            using var call = server.Client.StreamRegisterFeaturePool(new StreamRegisterFeaturePoolRequest { Registration = registration });
            return await call.ResponseStream.ReadAllAsync().ToListAsync();
        }
        var computed = await Stream(range);
        var held = await Stream(range);

        Assert.Equal([(1, 3), (2, 3), (3, 3)], computed.SkipLast(1).Select(u => (u.Progress.NetworksDone, u.Progress.TotalNetworks)));
        var pool = computed[^1].Pool;
        Assert.Equal((3, 1, 8L), (pool.Networks, pool.FirstNetwork, pool.TargetCount));
        Assert.Equal(pool.Name, Assert.Single(held).Pool.Name);
        Assert.Equal(pool.Name, (await server.Client.RegisterFeaturePoolAsync(range)).Name);
        var missing = await FailsAsync(() => Stream(null));
        Assert.Equal("registration", Assert.Single(missing.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    [Fact]
    public async Task BadRequests_AreRefusedNamingTheFieldOrTheLimit()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:MaxFeaturePoolBytes"] = "2000" });
        var dataset = await UploadAsync(server.Client, randn(8, 192, dtype: ScalarType.Float64), randn(2, 192, dtype: ScalarType.Float64), Classes, imageShape: ImageShape);
        var pool = await server.Client.RegisterFeaturePoolAsync(Register(dataset.Name, 0, 2));
        var support = randn(2, 192, dtype: ScalarType.Float64);

        async Task Refused(string field, Func<Task> call)
        {
            var e = await FailsAsync(call);
            Assert.True(e.StatusCode == StatusCode.InvalidArgument, $"{field}: {e.StatusCode} {e.Status.Detail}");
            Assert.Equal(field, Assert.Single(e.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
        }
        await Refused("networks", () => server.Client.FeaturePoolStepAsync(Step(pool.Name, support, Labels(2, Classes), [Networks], [0], 1)).ResponseAsync);
        await Refused("rows", () => server.Client.FeaturePoolStepAsync(Step(pool.Name, support, Labels(2, Classes), [0], [2], 1)).ResponseAsync);
        await Refused("total_targets", () => server.Client.FeaturePoolStepAsync(Step(pool.Name, support, Labels(2, Classes), [0], [0, 1], 1)).ResponseAsync);
        await Refused("support_labels", () => server.Client.FeaturePoolStepAsync(Step(pool.Name, support, Labels(3, Classes), [0], [0], 1)).ResponseAsync);
        await Refused("support.shape", () =>
        {
            var request = Step(pool.Name, support, Labels(2, Classes), [0], [0], 1);
            request.Support = support.ToMessage(shape: [2, 1, 8, 24]);
            return server.Client.FeaturePoolStepAsync(request).ResponseAsync;
        });
        await Refused("networks.width", () =>
        {
            var request = Register(dataset.Name, 0, 2);
            request.Networks.Width = 0;
            return server.Client.RegisterFeaturePoolAsync(request).ResponseAsync;
        });

        // A network of width 65536 would draw 65536 x 65536 x 9 weights at once: refused before drawing.
        var wide = Register(dataset.Name, 0, 2);
        wide.Networks.Width = 65536;
        var tooWide = await FailsAsync(() => server.Client.RegisterFeaturePoolAsync(wide).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, tooWide.StatusCode);
        Assert.Equal("networks.width", Assert.Single(tooWide.GetRpcStatus()!.GetDetail<QuotaFailure>()!.Violations).Subject);

        // 4 networks x 8 targets x 8 features x 8 bytes, beside the first pool's 512 bytes, is over the 2000-byte budget: refused before computing.
        var budget = await FailsAsync(() => server.Client.RegisterFeaturePoolAsync(Register(dataset.Name, 0, 8)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, budget.StatusCode);
        Assert.Equal("KernelService:MaxFeaturePoolBytes", Assert.Single(budget.GetRpcStatus()!.GetDetail<QuotaFailure>()!.Violations).Subject);
    }

    private static Tensor CenteredTargets(int rows) => Labels(rows, Classes);
}
