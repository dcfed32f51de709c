using Distill.Core.Transfer;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Transfer;

public class ConvNet3Tests : TensorLeakCheck
{
    /// <summary>Parameter tensors: weight and bias of three convolutions and the readout, scale and shift of three norms.</summary>
    internal static long ParameterTensors(bool instanceNorm) => instanceNorm ? 14 : 8;

    private ConvNet3 Build(int channels, int height, int width, int classes, int networkWidth = ConvNet3.DefaultWidth, bool instanceNorm = true)
    {
        AllowModuleParameters(ParameterTensors(instanceNorm));
        return new ConvNet3(channels, height, width, classes, networkWidth, instanceNorm);
    }

    [Fact]
    public void Dispose_Network_ReleasesEveryParameter()
    {
        AllowModuleParameters(14);
        long before = Tensor.TotalCount;
        using (NewDisposeScope()) // the construction's temporaries go with it
        using (var network = new ConvNet3(3, 8, 8, 2, 8))
            Assert.Equal(14, network.parameters().Count());
        // Only the construction artefact remains (one count per parameter, see
        // TensorLeakCheck.AllowModuleParameters); undisposed parameters would leave 28.
        Assert.Equal(14, Tensor.TotalCount - before);
    }

    [Theory]
    // CIFAR-10 at the default width: DC/DSA's ConvNet reports 320,010 parameters.
    [InlineData(3, 32, 32, 10, 128, true, 320_010L)]
    // 9*1*16+16 + 2*(9*16*16+16) + 16*3*3*10 + 10 = 160 + 4640 + 1450 = 6250, no norm.
    [InlineData(1, 28, 28, 10, 16, false, 6_250L)]
    // 9*3*8+8 + 2*(9*8*8+8) + 3*2*8 + 8*1*1*2 + 2 = 224 + 1168 + 48 + 18 = 1458.
    [InlineData(3, 8, 8, 2, 8, true, 1_458L)]
    public void ParameterCount_GivenShape_IsTheHandCount(int channels, int height, int width, int classes, int networkWidth, bool norm, long expected)
    {
        using var network = Build(channels, height, width, classes, networkWidth, norm);
        long counted = network.parameters().Sum(p => p.numel());
        Assert.Equal(expected, counted);
        Assert.Equal(expected, ConvNet3.ExpectedParameterCount(channels, height, width, classes, networkWidth, norm));
    }

    [Theory]
    [InlineData(3, 32, 32, 10, 128 * 4 * 4)]
    [InlineData(1, 28, 28, 10, 128 * 3 * 3)] // 28 -> 14 -> 7 -> 3 (floor)
    public void Forward_BatchOfImages_GivesOneRowOfLogitsPerImage(int channels, int height, int width, int classes, long features)
    {
        using var network = Build(channels, height, width, classes);
        Assert.Equal(features, network.FeatureCount);
        var output = network.call(randn(5, channels, height, width));
        Assert.Equal(new long[] { 5, classes }, output.shape);
        Assert.Equal(ScalarType.Float32, output.dtype);
    }

    [Fact]
    public void Initialize_SameSeed_SameParameters_OtherSeed_Others()
    {
        using var a = Build(3, 8, 8, 2, 8);
        using var b = Build(3, 8, 8, 2, 8);
        using var c = Build(3, 8, 8, 2, 8);
        a.Initialize(7);
        b.Initialize(7);
        c.Initialize(8);
        var pa = a.parameters().ToArray();
        var pb = b.parameters().ToArray();
        var pc = c.parameters().ToArray();
        for (int i = 0; i < pa.Length; i++)
            Assert.True(pa[i].eq(pb[i]).all().item<bool>(), $"parameter {i} differs under the same seed");
        Assert.Contains(Enumerable.Range(0, pa.Length), i => !pa[i].eq(pc[i]).all().item<bool>());
    }

    [Fact]
    public void Initialize_ConvWeights_StayWithinTheKaimingUniformBound()
    {
        using var network = Build(3, 8, 8, 2, 8, instanceNorm: true);
        network.Initialize(1);
        foreach (var (name, p) in network.named_parameters())
        {
            if (name.Contains("norm")) continue;
            // fan_in of the first convolution is 3*3*3 = 27; later ones 8*3*3 = 72; readout 8.
            double bound = name.Contains("conv0") ? 1 / Math.Sqrt(27) : name.Contains("conv") ? 1 / Math.Sqrt(72) : 1 / Math.Sqrt(8);
            Assert.True(p.abs().max().item<float>() <= bound + 1e-7, $"{name} exceeds {bound}");
        }
    }

    [Fact]
    public void KernelInitialization_DrawsWeightsWithVarianceTwoOverFanIn_AndBiasesWithStdBStd()
    {
        using var network = Build(3, 8, 8, 2, 256, instanceNorm: false);
        network.Initialize(1, (Math.Sqrt(2), 0.1));
        foreach (var (name, p) in network.named_parameters())
        {
            using var _ = NewDisposeScope();
            if (p.numel() < 256) continue;  // the readout's two biases: too few draws to judge
            // Root mean squares over >= 256 draws: within 15% of the law's standard deviation.
            long fanIn = name.Contains("conv0") ? 27 : name.Contains("conv") ? 256 * 9 : 256;
            double expected = name.EndsWith("bias") ? 0.1 : Math.Sqrt(2.0 / fanIn);
            double std = p.to_type(ScalarType.Float64).square().mean().sqrt().item<double>();
            Assert.InRange(std / expected, 0.85, 1.15);
        }
    }
}
