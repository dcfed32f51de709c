using Distill.Core.Transfer;

namespace Distill.Core.Tests.Transfer;

public class ClassBalancedSplitTests
{
    private static readonly int[] Labels = Enumerable.Range(0, 300).Select(i => i % 3).ToArray();

    [Fact]
    public void Draw_Counts_AreClassBalancedDisjointAndSeeded()
    {
        var (support, heldOut) = ClassBalancedSplit.Draw(Labels, 3, 6, 30, seed: 4);

        Assert.Equal(6, support.Length);
        Assert.Equal(30, heldOut.Length);
        Assert.All(Enumerable.Range(0, 3), c => Assert.Equal(2, support.Count(i => Labels[i] == c)));
        Assert.All(Enumerable.Range(0, 3), c => Assert.Equal(10, heldOut.Count(i => Labels[i] == c)));
        Assert.Empty(support.Intersect(heldOut));
        Assert.Equal(support, ClassBalancedSplit.Draw(Labels, 3, 6, 30, seed: 4).First);
        Assert.NotEqual(support, ClassBalancedSplit.Draw(Labels, 3, 6, 30, seed: 5).First);
    }

    [Fact]
    public void Draw_CountNotAMultipleOfClasses_GivesTheRemainderToTheLowestClasses()
    {
        var (support, _) = ClassBalancedSplit.Draw(Labels, 3, 5, 0, seed: 0);

        Assert.Equal([2, 2, 1], Enumerable.Range(0, 3).Select(c => support.Count(i => Labels[i] == c)).ToArray());
    }
}
