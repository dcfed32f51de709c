using Distill.Core.Distillation;

namespace Distill.Core.Tests.Distillation;

public class TargetSamplerTests : TensorLeakCheck
{
    private static readonly int[] Labels = Enumerable.Range(0, 300).Select(i => i % 3).ToArray();

    [Fact]
    public void Sample_BalancedBatch_TakesEqualDistinctIndicesPerClass()
    {
        var sampler = new TargetSampler(Labels, 3, seed: 1);
        var batch = sampler.Sample(60, step: 0);
        Assert.Equal(60, batch.Distinct().Count());
        Assert.All(Enumerable.Range(0, 3), c => Assert.Equal(20, batch.Count(i => Labels[i] == c)));
    }

    [Fact]
    public void Sample_SameSeedAndStep_IsIdentical_OtherStepDiffers()
    {
        var a = new TargetSampler(Labels, 3, seed: 1);
        var b = new TargetSampler(Labels, 3, seed: 1);
        Assert.Equal(a.Sample(30, 5), b.Sample(30, 5));
        Assert.NotEqual(a.Sample(30, 5), a.Sample(30, 6));
    }

    [Fact]
    public void Sample_MoreThanAClassHas_ReturnsWholeClass()
    {
        var sampler = new TargetSampler(Labels, 3, seed: 2);
        var batch = sampler.Sample(600, 0);
        Assert.Equal(300, batch.Length);
        Assert.Equal(300, batch.Distinct().Count());
    }
}
