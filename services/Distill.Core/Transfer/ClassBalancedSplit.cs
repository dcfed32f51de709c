namespace Distill.Core.Transfer;

/// <summary>
/// Disjoint class-balanced draws from a labelled split, a pure function of the seed: a real
/// support set (the random-subset baseline) and a held-out set for early stopping, both from
/// the training split. Classes get count / classes images each; the remainder goes one each
/// to the lowest classes. A class with too few images gives all it has.
/// </summary>
public static class ClassBalancedSplit
{
    /// <summary>Indices of <paramref name="labels"/>: <paramref name="first"/> then <paramref name="second"/> images, disjoint.</summary>
    public static (int[] First, int[] Second) Draw(IReadOnlyList<int> labels, int classes, int first, int second, int seed)
    {
        if (first < 0 || second < 0) throw new ArgumentException("counts must not be negative");
        var random = new Random(seed);
        var byClass = Enumerable.Range(0, classes).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < labels.Count; i++) byClass[labels[i]].Add(i);
        foreach (var pool in byClass)
        {
            var array = pool.ToArray();
            random.Shuffle(array);
            pool.Clear();
            pool.AddRange(array);
        }
        var taken = new int[classes];
        int[] Take(int count)
        {
            var result = new List<int>();
            for (int c = 0; c < classes; c++)
            {
                int want = count / classes + (c < count % classes ? 1 : 0);
                int n = Math.Min(want, byClass[c].Count - taken[c]);
                result.AddRange(byClass[c].Skip(taken[c]).Take(n));
                taken[c] += n;
            }
            return result.ToArray();
        }
        var a = Take(first);
        var b = Take(second);
        return (a, b);
    }
}
