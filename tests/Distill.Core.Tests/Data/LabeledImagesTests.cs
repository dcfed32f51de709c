using Distill.Core.Data;
using Distill.Core.Distillation;

namespace Distill.Core.Tests.Data;

public sealed class LabeledImagesTests
{
    // Six 1x1x2 images of classes 0,0,0,1,1,1 (a folder reader's class-by-class order); pixel values encode the row.
    private static LabeledImages ClassOrdered() => new(
        Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), [0, 0, 0, 1, 1, 1], 1, 1, 2, ["a", "b"]);

    [Fact]
    public void Rows_CopiesEachImageWithItsLabel()
    {
        var subset = ClassOrdered().Rows([4, 1]);
        Assert.Equal(new float[] { 8, 9, 2, 3 }, subset.Pixels);
        Assert.Equal(new[] { 1, 0 }, subset.Labels);
        Assert.Equal(2, subset.Count);
    }

    [Fact]
    public void BalancedSample_OfAClassOrderedSplit_KeepsEveryClass()
    {
        var images = ClassOrdered();
        var rows = new TargetSampler(images.Labels, images.ClassCount, seed: 0).Sample(2, step: 0, stream: 5);
        Assert.Equal(new[] { 0, 1 }, images.Rows(rows).Labels.Order());
    }
}
