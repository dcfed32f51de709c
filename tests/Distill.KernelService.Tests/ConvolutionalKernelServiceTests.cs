using Distill.Adapters.Conversions;
using Distill.Core.Distillation;
using Distill.Core.Kernels;
using Distill.Core.Tests;
using Distill.KernelService.Configuration;
using Distill.KernelService.Grpc;
using Distill.Protos.Kernel.V1;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.Options;
using static Distill.KernelService.Tests.Messages;
using static TorchSharp.torch;
using CoreKernelSpec = Distill.Core.Kernels.KernelSpec;
using KernelSpec = Distill.Protos.Kernel.V1.KernelSpec;
using KernelKind = Distill.Core.Kernels.KernelKind;

namespace Distill.KernelService.Tests;

/// <summary>
/// Convolutional and random-feature kernels over real HTTP/2, against Distill.Core in this
/// process, on tiny 1 x 8 x 8 images (ConvNet's three poolings need sides of 8). The service
/// runs the same engine code with the same chunk budget, so float64 results agree to round-off (1e-10).
/// </summary>
public class ConvolutionalKernelServiceTests
{
    private static readonly CoreKernelSpec ConvNet = new(KernelKind.Ntk, Architecture: KernelArchitecture.ConvNet,
        ImageChannels: 1, ImageHeight: 8, ImageWidth: 8);
    private static readonly KernelSpec ConvNetMessage = ConvNet.ToMessage();
    private static readonly long[] ImageShape = [1, 8, 8];

    private static TorchSharp.torch.Tensor Images(long n, ulong seed) =>
        randn(n, 1, 8, 8, dtype: ScalarType.Float64, generator: new Generator(seed));

    private static async Task<TorchSharp.torch.Tensor> GramAsync(LoopbackKernelServer server, ComputeGramRequest request)
    {
        using var call = server.Client.ComputeGram(request);
        var blocks = new List<TorchSharp.torch.Tensor>();
        await foreach (var block in call.ResponseStream.ReadAllAsync()) blocks.Add(block.Block.ToTorch());
        return cat(blocks, 0);
    }

    [Fact]
    public async Task ComputeGram_ConvNetOnImages_EqualsTheEngine()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var x1 = Images(4, 1);
        var x2 = Images(3, 2);

        var served = await GramAsync(server, new ComputeGramRequest { Kernel = ConvNetMessage, X1 = Inline(x1), X2 = Inline(x2) });

        var engine = ConvNet.Create().Compute(x1.flatten(1), x2.flatten(1));
        Assert.Equal(new long[] { 4, 3 }, served.shape);
        TensorAssert.Close(engine, served, 1e-10, "ConvNet gram");
    }

    [Fact]
    public async Task ComputeGram_ConvNetOnDatasetRowsWithASmallChunkBudget_EqualsTheEngine()
    {
        // A chunk budget of 2000 elements splits even these 4 x 2 image pairs into several chunks: the
        // result must not change (the chunking is exact), only the memory it takes.
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:MaxChunkElements"] = "2000" });
        var train = Images(6, 3).flatten(1);
        var info = await UploadAsync(server.Client, train, Images(2, 4).flatten(1), classes: 2, imageShape: ImageShape);
        var support = Images(2, 5);

        var served = await GramAsync(server, new ComputeGramRequest { Kernel = ConvNetMessage, X1 = Rows(info.Name, 1, 4), X2 = Inline(support) });

        TensorAssert.Close(ConvNet.Create().Compute(train.narrow(0, 1, 4), support.flatten(1)), served, 1e-10, "ConvNet gram from rows");
    }

    [Fact]
    public void Kernel_ConvolutionalSpec_IsBuiltWithTheServersChunkBudget()
    {
        var reader = new RequestReader(null!, Options.Create(new KernelServiceOptions { MaxChunkElements = 1234 }));

        var kernel = Assert.IsType<ConvolutionalKernel>(reader.Kernel(ConvNetMessage).Kernel);
        var features = Assert.IsType<RandomFeatureConvKernel>(reader.Kernel(RandomFeatureMessage()).Kernel);

        Assert.Equal(1234, kernel.MaxChunkElements);
        Assert.Equal(1234, features.MaxChunkElements);
    }

    [Fact]
    public async Task VectorJacobianProduct_ConvNet_EqualsTheEngineAndKeepsTheImageShape()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var x1 = Images(3, 6);
        var x2 = Images(2, 7);
        var cotangent = Random(3, 2, 8);

        var response = await server.Client.VectorJacobianProductAsync(new VectorJacobianProductRequest
        {
            Kernel = ConvNetMessage, X1 = Inline(x1), X2 = Inline(x2), Cotangent = cotangent.ToMessage(), WantX1 = true, WantX2 = true,
        });

        var (g1, g2) = GramMatrix.VectorJacobianProduct(ConvNet.Create(), x1.flatten(1), x2.flatten(1), cotangent);
        Assert.Equal(new long[] { 3, 1, 8, 8 }, response.GradX1.Shape.ToArray());
        Assert.Equal(new long[] { 2, 1, 8, 8 }, response.GradX2.Shape.ToArray());
        TensorAssert.Close(g1!.reshape(3, 1, 8, 8), response.GradX1.ToTorch(), 1e-10, "grad x1");
        TensorAssert.Close(g2!.reshape(2, 1, 8, 8), response.GradX2.ToTorch(), 1e-10, "grad x2");
    }

    [Fact]
    public async Task KipShardStep_ConvNet_EqualsTheEngineStep()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var train = Images(8, 9).flatten(1);
        var info = await UploadAsync(server.Client, train, Images(2, 10).flatten(1), classes: 2, imageShape: ImageShape);
        var support = Images(2, 11);
        var labels = Labels(2, 2);

        var response = await server.Client.KipShardStepAsync(new KipShardStepRequest
        {
            Kernel = ConvNetMessage, Support = support.ToMessage(), SupportLabels = labels.ToMessage(),
            Targets = Rows(info.Name, 0, 8).Rows, Regularization = 1e-6, WantLabelGradient = true,
        });

        using var expected = new KipObjective(ConvNet.Create(), 1e-6).ShardStep(support.flatten(1), labels, train, Labels(8, 2), 8, wantLabelGradient: true);
        Assert.Equal(expected.Loss, response.Loss, 12);
        Assert.Equal(new long[] { 2, 1, 8, 8 }, response.SupportGradient.Shape.ToArray());
        TensorAssert.Close(expected.SupportGradient.reshape(2, 1, 8, 8), response.SupportGradient.ToTorch(), 1e-10, "support gradient");
        TensorAssert.Close(expected.LabelGradient!, response.LabelGradient.ToTorch(), 1e-10, "label gradient");
    }

    [Fact]
    public async Task ComputeGram_RandomFeatures_EqualsTheEngineForTheSameSeed()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var x = Images(3, 12);
        var message = RandomFeatureMessage();

        var served = await GramAsync(server, new ComputeGramRequest { Kernel = message, X1 = Inline(x), X2 = Inline(x) });

        var engine = message.ToCore().Create();
        Assert.IsType<RandomFeatureConvKernel>(engine);
        TensorAssert.Close(engine.Compute(x.flatten(1), x.flatten(1)), served, 1e-10, "random-feature gram");
    }

    [Fact]
    public async Task GetServerInfo_ListsConvolutionalKernels()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var info = await server.Client.GetServerInfoAsync(new GetServerInfoRequest());
        Assert.Contains("convolutional/ntk", info.Kernels);
        Assert.Contains("random_features/nngp", info.Kernels);
    }

    public static TheoryData<string, KernelSpec, string> BadConvolutionalSpecs() => new()
    {
        { "no architecture", new KernelSpec { Convolutional = new ConvolutionalSpec { ImageChannels = 1, ImageHeight = 8, ImageWidth = 8 } }, "kernel.convolutional.architecture" },
        { "unknown architecture", Conv(c => c.Architecture = (ConvArchitecture)9), "kernel.convolutional.architecture" },
        { "unknown readout", Conv(c => c.Readout = (ConvReadout)9), "kernel.convolutional.readout" },
        { "unknown kind", Conv(c => c.Kind = (Protos.Kernel.V1.KernelKind)9), "kernel.convolutional.kind" },
        { "no channels", Conv(c => c.ImageChannels = 0), "kernel.convolutional.image_channels" },
        { "too small for three poolings", Conv(c => c.ImageHeight = 4), "kernel.convolutional.image_height" },
        { "too wide", Conv(c => c.ImageWidth = 4096), "kernel.convolutional.image_width" },
        { "w_std", Conv(c => c.WStd = -1), "kernel.convolutional.w_std" },
        { "b_std", Conv(c => c.BStd = double.NaN), "kernel.convolutional.b_std" },
        { "networks", RandomFeatureMessage(r => r.Networks = 0), "kernel.random_features.networks" },
        { "width", RandomFeatureMessage(r => r.Width = 1 << 20), "kernel.random_features.width" },
        { "random-feature image", RandomFeatureMessage(r => r.ImageWidth = 2), "kernel.random_features.image_width" },
    };

    [Theory]
    [MemberData(nameof(BadConvolutionalSpecs))]
    public async Task ComputeGram_BadConvolutionalField_IsInvalidArgumentNamingIt(string name, KernelSpec kernel, string field)
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var x = Images(2, 13);

        var error = await Assert.ThrowsAsync<RpcException>(() => GramAsync(server, new ComputeGramRequest { Kernel = kernel, X1 = Inline(x), X2 = Inline(x) }));

        Assert.True(error.StatusCode == StatusCode.InvalidArgument, $"{name}: {error.StatusCode} {error.Status.Detail}");
        Assert.Equal(field, Assert.Single(error.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    [Fact]
    public async Task ComputeGram_ImagesOfAnotherShape_AreRefusedNamingTheKernelsImageField()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var rgb = randn(2, 3, 8, 8, dtype: ScalarType.Float64);
        var flat = Random(2, 50, 14);

        var channels = await Assert.ThrowsAsync<RpcException>(() => GramAsync(server, new ComputeGramRequest { Kernel = ConvNetMessage, X1 = Inline(rgb), X2 = Inline(rgb) }));
        var features = await Assert.ThrowsAsync<RpcException>(() => GramAsync(server, new ComputeGramRequest { Kernel = ConvNetMessage, X1 = Inline(flat), X2 = Inline(flat) }));

        Assert.Equal(StatusCode.InvalidArgument, channels.StatusCode);
        Assert.Equal("kernel.convolutional.image_channels", Assert.Single(channels.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
        Assert.Equal(StatusCode.InvalidArgument, features.StatusCode);
        Assert.Equal("x1", Assert.Single(features.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    [Fact]
    public async Task KipShardStep_DatasetOfAnotherImageShape_IsRefusedNamingTheKernelsImageField()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        // 1 x 16 x 4 images: as many pixels as 1 x 8 x 8, so only the shape tells them apart.
        var info = await UploadAsync(server.Client, Random(4, 64, 15), Random(2, 64, 16), classes: 2, imageShape: [1, 16, 4]);

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.KipShardStepAsync(new KipShardStepRequest
        {
            Kernel = ConvNetMessage, Support = Random(2, 64, 17).ToMessage(), SupportLabels = Labels(2, 2).ToMessage(),
            Targets = Rows(info.Name, 0, 4).Rows,
        }).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("kernel.convolutional.image_height", Assert.Single(error.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    private static KernelSpec Conv(Action<ConvolutionalSpec> change)
    {
        var message = ConvNetMessage.Clone();
        change(message.Convolutional);
        return message;
    }

    private static KernelSpec RandomFeatureMessage(Action<RandomFeatureConvSpec>? change = null)
    {
        var message = new KernelSpec
        {
            RandomFeatures = new RandomFeatureConvSpec
            {
                Architecture = ConvArchitecture.ConvNet3, ImageChannels = 1, ImageHeight = 8, ImageWidth = 8, Networks = 2, Width = 8, Seed = 7,
            },
        };
        change?.Invoke(message.RandomFeatures);
        return message;
    }
}
