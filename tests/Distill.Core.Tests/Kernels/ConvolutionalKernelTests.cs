using Distill.Core.Errors;
using Distill.Core.Kernels;
using TorchSharp;
using static Distill.Core.Runtime.HeldScalars;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Kernels;

/// <summary>
/// The convolutional kernels' own consistency: the banded layout against every pixel pair,
/// chunking, the symmetric path, gradients against central finite differences, spec
/// validation. Images are tiny (1-2 channels, 8x8 or 16x16) to keep the class fast.
/// </summary>
public class ConvolutionalKernelTests : TensorLeakCheck
{
    private static KernelSpec Spec(KernelArchitecture architecture, KernelKind kind, int channels, int side,
        KernelReadout readout = KernelReadout.Flatten) =>
        new(kind, Architecture: architecture, ImageChannels: channels, ImageHeight: side, ImageWidth: side, Readout: readout);

    private static Tensor Images(int n, int channels, int height, int width, ulong seed)
    {
        var generator = new Generator(seed);
        return randn(n, channels * height * width, dtype: ScalarType.Float64, generator: generator);
    }

    public static TheoryData<KernelArchitecture, KernelKind, int, int> BandedCases() => new()
    {
        // 16 px ConvNet3: band half-widths 7, 3, 1, 0 against sides 16, 8, 4, 2 (a real band).
        { KernelArchitecture.ConvNet3, KernelKind.Nngp, 1, 16 },
        { KernelArchitecture.ConvNet3, KernelKind.Ntk, 1, 16 },
        // 8 px: the band is capped at the side (half-width 7 at 8 px), odd sizes exercise floor pooling.
        { KernelArchitecture.ConvNet, KernelKind.Ntk, 2, 8 },
        { KernelArchitecture.ConvNet3, KernelKind.Ntk, 1, 11 },
        { KernelArchitecture.Myrtle5, KernelKind.Ntk, 1, 9 },
    };

    [Theory]
    [MemberData(nameof(BandedCases))]
    public void Compute_BandedFlatten_EqualsEveryPixelPair(KernelArchitecture architecture, KernelKind kind, int channels, int side)
    {
        var spec = Spec(architecture, kind, channels, side);
        var x1 = Images(3, channels, side, side, 1);
        var x2 = Images(2, channels, side, side, 2);
        var banded = new ConvolutionalKernel(spec, banded: true);
        var full = new ConvolutionalKernel(spec, banded: false);
        Assert.True(banded.IsBanded);
        Assert.False(full.IsBanded);
        // The same sums in a different order: float64 round-off, ~1e-15 per operation.
        TensorAssert.Close(full.Compute(x1, x2), banded.Compute(x1, x2), 1e-10, "banded vs full");
        TensorAssert.Close(full.ComputeSymmetric(x1), banded.ComputeSymmetric(x1), 1e-10, "banded vs full, symmetric");
    }

    [Theory]
    [InlineData(KernelReadout.Flatten)]
    [InlineData(KernelReadout.GlobalAveragePool)]
    public void Compute_SmallChunks_EqualsOneChunk(KernelReadout readout)
    {
        var spec = Spec(KernelArchitecture.ConvNet3, KernelKind.Ntk, 1, 8, readout);
        var x1 = Images(5, 1, 8, 8, 3);
        var x2 = Images(3, 1, 8, 8, 4);
        var whole = new ConvolutionalKernel(spec);
        var chunked = new ConvolutionalKernel(spec, maxChunkElements: 1);
        // Chunking changes no arithmetic, only which pairs are batched together.
        TensorAssert.Close(whole.Compute(x1, x2), chunked.Compute(x1, x2), 1e-13, "chunked");
        TensorAssert.Close(whole.ComputeSymmetric(x1), chunked.ComputeSymmetric(x1), 1e-13, "chunked, symmetric");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void ComputeSymmetric_ChunksOfSeveralImages_EqualsOneChunk(int rowsPerChunk)
    {
        // K(x, x) computes only the chunks that reach its upper triangle; with chunks of 7 columns
        // and one to three rows, chunks straddle the diagonal in every way.
        var spec = Spec(KernelArchitecture.ConvNet3, KernelKind.Ntk, 1, 8);
        var x = Images(7, 1, 8, 8, 6);
        var whole = new ConvolutionalKernel(spec);
        var perPair = whole.ElementsPerPair;
        var chunked = new ConvolutionalKernel(spec, maxChunkElements: rowsPerChunk * 7 * perPair);
        TensorAssert.Close(whole.ComputeSymmetric(x), chunked.ComputeSymmetric(x), 1e-13, $"chunks of {rowsPerChunk} x 7");
        var columns = new ConvolutionalKernel(spec, maxChunkElements: 3 * perPair);
        TensorAssert.Close(whole.ComputeSymmetric(x), columns.ComputeSymmetric(x), 1e-13, "chunks of 1 x 3");
    }

    [Theory]
    [InlineData(KernelArchitecture.ConvNet3, KernelReadout.Flatten)]
    [InlineData(KernelArchitecture.Myrtle5, KernelReadout.GlobalAveragePool)]
    public void ComputeSymmetric_EqualsCompute_OnTheSameInputs(KernelArchitecture architecture, KernelReadout readout)
    {
        var kernel = new ConvolutionalKernel(Spec(architecture, KernelKind.Ntk, 2, 8, readout));
        var x = Images(4, 2, 8, 8, 5);
        var general = kernel.Compute(x, x);
        var symmetric = kernel.ComputeSymmetric(x);
        // Off the image diagonal the same formula; on it the closed forms q/2 and 1/2 meet the
        // general branch at theta ~ sqrt(2 eps) ~ 2e-8 per same-pixel entry (as for the FC kernel).
        TensorAssert.Close(general, symmetric, 1e-8, "symmetric vs general");
        TensorAssert.Close(symmetric, symmetric.t(), 0, "exactly symmetric");
    }

    public static TheoryData<KernelArchitecture, KernelKind, KernelReadout> GradientCases() => new()
    {
        { KernelArchitecture.ConvNet3, KernelKind.Nngp, KernelReadout.Flatten },
        { KernelArchitecture.ConvNet3, KernelKind.Ntk, KernelReadout.Flatten },
        { KernelArchitecture.Myrtle5, KernelKind.Ntk, KernelReadout.GlobalAveragePool },
    };

    // Central differences with h = 1e-5 in float64: truncation O(h^2) ~ 1e-10 and round-off
    // ~ 1e-16 / h ~ 1e-11 relative; 1e-6 leaves a wide margin while catching any wrong term.
    [Theory]
    [MemberData(nameof(GradientCases))]
    public void VectorJacobianProduct_BothOperands_MatchesFiniteDifferences(KernelArchitecture architecture, KernelKind kind, KernelReadout readout)
    {
        var kernel = new ConvolutionalKernel(Spec(architecture, kind, 1, 8, readout), maxChunkElements: 2000);
        var x1 = Images(2, 1, 8, 8, 6);
        var x2 = Images(3, 1, 8, 8, 7);
        var cotangent = randn(2, 3, dtype: ScalarType.Float64, generator: new Generator(8));

        var (g1, g2) = GramMatrix.VectorJacobianProduct(kernel, x1, x2, cotangent, blockRows: 1);

        var exact = new ConvolutionalKernel(kernel.Spec);
        AssertFiniteDifferences(x => exact.Compute(x, x2).mul(cotangent).sum().item<double>(), x1, g1!, "d/dx1");
        AssertFiniteDifferences(x => exact.Compute(x1, x).mul(cotangent).sum().item<double>(), x2, g2!, "d/dx2");
    }

    [Theory]
    [MemberData(nameof(GradientCases))]
    public void VectorJacobianProduct_Symmetric_IsFiniteAndMatchesFiniteDifferences(KernelArchitecture architecture, KernelKind kind, KernelReadout readout)
    {
        var kernel = new ConvolutionalKernel(Spec(architecture, kind, 1, 8, readout), maxChunkElements: 2000);
        var x = Images(3, 1, 8, 8, 9);
        var cotangent = randn(3, 3, dtype: ScalarType.Float64, generator: new Generator(10));

        var (gradient, _) = GramMatrix.VectorJacobianProduct(kernel, x, x, cotangent, symmetric: true);

        Assert.True(TensorAssert.ToArray(gradient!).All(double.IsFinite));
        // Same step and tolerance as above; the diagonal K(x, x) is smooth in x (closed forms).
        AssertFiniteDifferences(v => kernel.ComputeSymmetric(v).mul(cotangent).sum().item<double>(), x, gradient!, "d/dx of K(x, x)");
    }

    private const double Step = 1e-5;
    private const int Coordinates = 10;

    /// <summary>
    /// Central differences at a seeded sample of coordinates (all of them would cost two kernel
    /// evaluations per input pixel), compared with the same entries of the gradient, relative to
    /// the gradient's largest entry.
    /// </summary>
    internal static void AssertFiniteDifferences(Func<Tensor, double> f, Tensor x, Tensor gradient, string what)
    {
        using var noGrad = no_grad();
        var values = TensorAssert.ToArray(x);
        var analytic = TensorAssert.ToArray(gradient);
        var random = new Random(values.Length);
        var picked = Enumerable.Range(0, Coordinates).Select(_ => random.Next(values.Length)).ToArray();
        var numeric = new double[picked.Length];
        for (int c = 0; c < picked.Length; c++)
        {
            int i = picked[c];
            double original = values[i];
            values[i] = original + Step;
            double plus = f(tensor(values, x.shape, dtype: ScalarType.Float64));
            values[i] = original - Step;
            double minus = f(tensor(values, x.shape, dtype: ScalarType.Float64));
            values[i] = original;
            numeric[c] = (plus - minus) / (2 * Step);
        }
        double scale = analytic.Max(Math.Abs);
        for (int c = 0; c < picked.Length; c++)
            Assert.True(Math.Abs(numeric[c] - analytic[picked[c]]) <= 1e-6 * scale,
                $"{what}[{picked[c]}]: finite difference {numeric[c]:E6}, gradient {analytic[picked[c]]:E6}");
    }

    [Theory]
    [InlineData(KernelArchitecture.ConvNet3, KernelKind.Nngp, KernelReadout.Flatten)]
    [InlineData(KernelArchitecture.ConvNet, KernelKind.Ntk, KernelReadout.Flatten)]
    [InlineData(KernelArchitecture.Myrtle5, KernelKind.Ntk, KernelReadout.GlobalAveragePool)]
    public void Compute_WithoutAutograd_EqualsTheAutogradFormulation(KernelArchitecture architecture, KernelKind kind, KernelReadout readout)
    {
        // Inputs that need no gradient take the in-place ReLU step (fewer passes over memory);
        // inputs that do take the autograd-safe one. Both must give the same kernel.
        var kernel = new ConvolutionalKernel(Spec(architecture, kind, 2, 8, readout));
        var x1 = Images(3, 2, 8, 8, 7);
        var x2 = Images(2, 2, 8, 8, 8);
        var inference = kernel.Compute(x1, x2);
        var autograd = kernel.Compute(x1.detach().requires_grad_(true), x2).detach();
        TensorAssert.Close(autograd, inference, 1e-12, "in-place ReLU step vs autograd ReLU step");
    }

    [Fact]
    public void Compute_AutogradThroughCompute_MatchesForwardBackward()
    {
        var kernel = new ConvolutionalKernel(Spec(KernelArchitecture.ConvNet3, KernelKind.Ntk, 1, 8));
        var x1 = Images(2, 1, 8, 8, 11).requires_grad_(true);
        var x2 = Images(2, 1, 8, 8, 12);
        var cotangent = randn(2, 2, dtype: ScalarType.Float64, generator: new Generator(13));
        var viaAutograd = autograd.grad([kernel.Compute(x1, x2).mul(cotangent).sum()], [x1])[0];
        using var forward = kernel.Forward(x1, x2);
        var (viaForward, _) = forward.Backward(cotangent, wantGrad2: false);
        // The same autograd graph, chunked differently: round-off only.
        TensorAssert.Close(viaAutograd, viaForward!, 1e-12, "Compute autograd vs Forward/Backward");
        TensorAssert.Close(kernel.Compute(x1.detach(), x2), forward.Value, 1e-15, "Forward value");
    }

    [Fact]
    public void Compute_ZeroImages_AreFiniteAndDependOnlyOnPosition()
    {
        // A sanity check without learned input: for zero images every input covariance is 0, so
        // K(0, 0) depends on the biases alone, the same for every pair, and stays finite (theta = 0
        // everywhere, q = b^2 > 0).
        var kernel = new ConvolutionalKernel(Spec(KernelArchitecture.ConvNet, KernelKind.Ntk, 1, 8));
        var x = zeros(3, 64, dtype: ScalarType.Float64);
        var k = TensorAssert.ToArray(kernel.ComputeSymmetric(x));
        Assert.All(k, v => Assert.True(double.IsFinite(v) && v > 0));
        Assert.All(k, v => Assert.Equal(k[0], v, 1e-8 * k[0]));
        var (gradient, _) = GramMatrix.VectorJacobianProduct(kernel, x, x, ones(3, 3, dtype: ScalarType.Float64), symmetric: true);
        Assert.True(TensorAssert.ToArray(gradient!).All(double.IsFinite));
    }

    [Fact]
    public void Compute_ScaledImageAtZeroBias_ScalesTheKernel()
    {
        // With b_std = 0 every layer is positively homogeneous of degree 1 in each covariance,
        // so K(a x, x') = a K(x, x'): a check independent of the recursion's details.
        var spec = Spec(KernelArchitecture.ConvNet3, KernelKind.Ntk, 1, 8) with { BStd = 0 };
        var kernel = new ConvolutionalKernel(spec);
        var x1 = Images(2, 1, 8, 8, 14);
        var x2 = Images(2, 1, 8, 8, 15);
        using Scalar three = 3.0;
        TensorAssert.Close(kernel.Compute(x1, x2).mul(three), kernel.Compute(x1.mul(three), x2), 1e-12, "homogeneity");
    }

    [Fact]
    public void KernelSpec_BadImageSize_NamesTheField()
    {
        var spec = Spec(KernelArchitecture.ConvNet3, KernelKind.Ntk, 1, 8);
        Assert.Contains("kernel.image_height", Assert.Throws<InvalidFieldException>(() => (spec with { ImageHeight = 7 }).Validate()).Message);
        Assert.Contains("kernel.image_width", Assert.Throws<InvalidFieldException>(() => (spec with { ImageWidth = 0 }).Validate()).Message);
        Assert.Contains("kernel.image_channels", Assert.Throws<InvalidFieldException>(() => (spec with { ImageChannels = 0 }).Validate()).Message);
        Assert.Contains("kernel.readout", Assert.Throws<InvalidFieldException>(() => (spec with { Readout = (KernelReadout)7 }).Validate()).Message);
        // Myrtle-5 pools twice: 4 px is enough.
        Assert.IsType<ConvolutionalKernel>((spec with { Architecture = KernelArchitecture.Myrtle5, ImageHeight = 4, ImageWidth = 4 }).Create());
        // The fully connected kernel ignores the image fields.
        Assert.IsType<FullyConnectedKernel>(new KernelSpec().Create());
    }

    [Theory]
    [InlineData(KernelKind.Nngp)]
    [InlineData(KernelKind.Ntk)]
    public void Compute_ConvNetAt8Pixels_EqualsMyrtle5WithGlobalAveragePool(KernelKind kind)
    {
        // At 8 px both are conv-relu, conv-relu, pool, conv-relu, pool, conv-relu on a 2x2 map;
        // ConvNet then pools to 1x1 and flattens, Myrtle-5 averages the 2x2 map: the same network.
        var x1 = Images(3, 2, 8, 8, 16);
        var x2 = Images(2, 2, 8, 8, 17);
        var convNet = new ConvolutionalKernel(Spec(KernelArchitecture.ConvNet, kind, 2, 8));
        var myrtle = new ConvolutionalKernel(Spec(KernelArchitecture.Myrtle5, kind, 2, 8, KernelReadout.GlobalAveragePool));
        // Different layouts (banded vs full) and summation orders: round-off only.
        TensorAssert.Close(myrtle.Compute(x1, x2), convNet.Compute(x1, x2), 1e-10, "ConvNet vs Myrtle-5");
    }

    [Fact]
    public void Compute_WrongFeatureCount_Throws()
    {
        var kernel = new ConvolutionalKernel(Spec(KernelArchitecture.ConvNet3, KernelKind.Ntk, 1, 8));
        var x = zeros(2, 63, dtype: ScalarType.Float64);
        Assert.Throws<ArgumentException>(() => kernel.Compute(x, x));
    }
}
