using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Kernels;

/// <summary>The support Gram in row blocks equals the kernel's own K(x, x), reports its pairs and can be cancelled.</summary>
public sealed class GramMatrixTests : TensorLeakCheck
{
    public static TheoryData<string, int> Cases() => new()
    {
        { "fc", 1 }, { "fc", 3 }, { "fc", 7 }, { "fc", 0 },
        { "convnet3", 2 }, { "convnet3", 4 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ComputeSymmetric_InBlocks_EqualsTheKernelsOwn_AndReportsEveryPair(string kernelName, int blockRows)
    {
        var kernel = kernelName == "fc"
            ? (IKernel)new FullyConnectedKernel(new KernelSpec(Depth: 2))
            : new ConvolutionalKernel(new KernelSpec(Kind: KernelKind.Nngp, Architecture: KernelArchitecture.ConvNet3, ImageChannels: 1, ImageHeight: 8, ImageWidth: 8));
        var x = randn(7, kernelName == "fc" ? 5 : 64, dtype: ScalarType.Float64, generator: new Generator(17));
        var updates = new List<RowsDone>();

        var blocked = GramMatrix.ComputeSymmetric(kernel, x, blockRows, updates.Add);

        // Blocks straddle the diagonal: the off-diagonal blocks come from K(x1, x2), so they agree
        // with the closed-form diagonal's neighbours to round-off; the result is exactly symmetric.
        TensorAssert.Close(kernel.ComputeSymmetric(x), blocked, 1e-8, $"blocks of {blockRows} rows");
        TensorAssert.Close(blocked, blocked.t(), 0, "exactly symmetric");
        Evaluation.RowProgressTests.AssertPairsRiseTo(7 * 8 / 2, updates);
        // Seven rows in blocks of that many (0: one block, as at least 16 rows make one).
        Assert.Equal(blockRows == 0 ? 1 : (7 + blockRows - 1) / blockRows, updates.Count);
    }

    [Fact]
    public void ComputeSymmetric_CancelledAfterTheFirstBlock_StopsBeforeTheSecond()
    {
        var x = randn(6, 5, dtype: ScalarType.Float64, generator: new Generator(18));
        using var cancel = new CancellationTokenSource();
        var blocks = 0;

        Assert.Throws<OperationCanceledException>(() => GramMatrix.ComputeSymmetric(new FullyConnectedKernel(new KernelSpec()), x, 2,
            _ => { blocks++; cancel.Cancel(); }, cancel.Token));
        Assert.Equal(1, blocks);
        Assert.Throws<ArgumentException>(() => GramMatrix.ComputeSymmetric(new FullyConnectedKernel(new KernelSpec()), x, -1));
    }
}
