using Distill.Core.Errors;
using Distill.Core.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Kernels;

/// <summary>RFAD's random-feature ConvNet kernel against the exact NNGP it estimates.</summary>
public class RandomFeatureConvKernelTests : TensorLeakCheck
{
    private static readonly KernelSpec ConvNet3 = new(KernelKind.Nngp, Architecture: KernelArchitecture.ConvNet3,
        ImageChannels: 2, ImageHeight: 8, ImageWidth: 8);

    [Fact]
    public void Compute_MoreAndWiderNetworks_ConvergesToExactNngp()
    {
        var x = ConvolutionalKernelMonteCarloTests.Inputs(2, 8);
        var exact = new ConvolutionalKernel(ConvNet3).Compute(x, x);
        double Error(int networks, int width) => ConvolutionalKernelMonteCarloTests.MeanRelativeError(
            exact, new RandomFeatureConvKernel(ConvNet3, networks, width, seed: 5).Compute(x, x));

        // The estimate's relative standard deviation is about sqrt(9 / (networks x width))
        // (measured for these nets): ~75%, ~19% and ~5% for the three sizes, each 16 times the
        // previous networks x width, so each error should drop by about 4 (asserted: by 1.5 at
        // least, and the largest under 15%, 3 standard deviations).
        double small = Error(1, 16), medium = Error(4, 64), large = Error(16, 256);
        Assert.True(medium < small / 1.5, $"errors {small:P1} -> {medium:P1} with 16x the features");
        Assert.True(large < medium / 1.5, $"errors {medium:P1} -> {large:P1} with 16x the features");
        Assert.True(large < 0.15, $"error {large:P1} at 16 networks x 256 channels");
        Console.WriteLine($"random-feature NNGP errors: {small:P1}, {medium:P1}, {large:P1}");
    }

    [Fact]
    public void Compute_SameSeed_IsReproducibleAndSymmetric()
    {
        var x = ConvolutionalKernelMonteCarloTests.Inputs(2, 8);
        var kernel = new RandomFeatureConvKernel(ConvNet3, networks: 2, width: 16, seed: 3, maxChunkElements: 100);
        var again = new RandomFeatureConvKernel(ConvNet3, networks: 2, width: 16, seed: 3);
        // Blocks of images change no arithmetic per image: round-off only.
        TensorAssert.Close(kernel.Compute(x, x), again.Compute(x, x), 1e-13, "same seed, other blocks");
        var symmetric = kernel.ComputeSymmetric(x);
        TensorAssert.Close(symmetric, symmetric.t(), 0, "exactly symmetric");
        TensorAssert.Close(kernel.Compute(x, x), symmetric, 1e-13, "symmetric vs general");
        var other = new RandomFeatureConvKernel(ConvNet3, networks: 2, width: 16, seed: 4).Compute(x, x);
        Assert.NotEqual(TensorAssert.ToArray(symmetric), TensorAssert.ToArray(other));
    }

    [Fact]
    public void VectorJacobianProduct_BothOperandsAndSymmetric_MatchFiniteDifferences()
    {
        var kernel = new RandomFeatureConvKernel(ConvNet3, networks: 2, width: 8, seed: 1);
        var generator = new Generator(21);
        var x1 = randn(2, 128, dtype: ScalarType.Float64, generator: generator);
        var x2 = randn(3, 128, dtype: ScalarType.Float64, generator: generator);
        var cotangent = randn(2, 3, dtype: ScalarType.Float64, generator: generator);
        var (g1, g2) = GramMatrix.VectorJacobianProduct(kernel, x1, x2, cotangent);
        // ReLU networks are piecewise linear in the input, so central differences are exact up to
        // round-off unless a step crosses a kink (unlikely at h = 1e-5); 1e-6 as elsewhere.
        ConvolutionalKernelTests.AssertFiniteDifferences(x => kernel.Compute(x, x2).mul(cotangent).sum().item<double>(), x1, g1!, "d/dx1");
        ConvolutionalKernelTests.AssertFiniteDifferences(x => kernel.Compute(x1, x).mul(cotangent).sum().item<double>(), x2, g2!, "d/dx2");
        var square = randn(3, 3, dtype: ScalarType.Float64, generator: generator);
        var (g, _) = GramMatrix.VectorJacobianProduct(kernel, x2, x2, square, symmetric: true);
        ConvolutionalKernelTests.AssertFiniteDifferences(x => kernel.ComputeSymmetric(x).mul(square).sum().item<double>(), x2, g!, "d/dx of K(x, x)");
    }

    [Fact]
    public void Constructor_BadOptions_NameTheField()
    {
        Assert.Contains("kernel.kind", Assert.Throws<InvalidFieldException>(() => new RandomFeatureConvKernel(ConvNet3 with { Kind = KernelKind.Ntk })).Message);
        Assert.Contains("kernel.networks", Assert.Throws<InvalidFieldException>(() => new RandomFeatureConvKernel(ConvNet3, networks: 0)).Message);
        Assert.Contains("kernel.width", Assert.Throws<InvalidFieldException>(() => new RandomFeatureConvKernel(ConvNet3, width: -1)).Message);
        Assert.Contains("kernel.architecture", Assert.Throws<InvalidFieldException>(() => new RandomFeatureConvKernel(new KernelSpec(KernelKind.Nngp))).Message);
    }

    [Fact]
    public void Create_RandomFeatureSpec_IsTheConstructorsKernelWithinTheGivenBudget()
    {
        var x = ConvolutionalKernelMonteCarloTests.Inputs(2, 8);
        var spec = ConvNet3 with { RandomFeatures = new RandomFeatureSpec(Networks: 2, Width: 16, Seed: 3) };

        var created = Assert.IsType<RandomFeatureConvKernel>(spec.Create(maxChunkElements: 100));

        Assert.Equal(100, created.MaxChunkElements);
        Assert.Equal(spec, created.Spec);
        // Same networks (a pure function of the seed), other image blocks: round-off only.
        TensorAssert.Close(new RandomFeatureConvKernel(ConvNet3, networks: 2, width: 16, seed: 3).Compute(x, x), created.Compute(x, x), 1e-13, "factory vs constructor");
        Assert.Contains("kernel.networks", Assert.Throws<InvalidFieldException>(() => (spec with { RandomFeatures = new RandomFeatureSpec(Networks: 0) }).Validate()).Message);
        Assert.Contains("kernel.kind", Assert.Throws<InvalidFieldException>(() => (spec with { Kind = KernelKind.Ntk }).Create()).Message);
    }

    [Fact]
    public void CheckImageShape_AnotherShape_NamesTheDifferingField()
    {
        ConvNet3.CheckImageShape(2, 8, 8);
        Assert.Equal("kernel.image_channels", Assert.Throws<InvalidFieldException>(() => ConvNet3.CheckImageShape(3, 8, 8)).Field);
        Assert.Equal("kernel.image_height", Assert.Throws<InvalidFieldException>(() => ConvNet3.CheckImageShape(2, 16, 8)).Field);
        Assert.Equal("kernel.image_width", Assert.Throws<InvalidFieldException>(() => ConvNet3.CheckImageShape(2, 8, 9)).Field);
        new KernelSpec().CheckImageShape(3, 32, 32);
    }
}
