namespace Distill.Core.Distillation;

/// <summary>
/// Class-balanced sampling without replacement within each class. Each draw is a pure
/// function of (seed, step), so a resumed run sees exactly the batches of an
/// uninterrupted one without any generator state in the checkpoint.
/// </summary>
public sealed class TargetSampler
{
    private readonly int[][] _byClass;
    private readonly int _seed;

    public TargetSampler(IReadOnlyList<int> labels, int classCount, int seed)
    {
        _seed = seed;
        var lists = Enumerable.Range(0, classCount).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < labels.Count; i++)
            lists[labels[i]].Add(i);
        _byClass = lists.Select(l => l.ToArray()).ToArray();
    }

    public int ClassCount => _byClass.Length;

    /// <summary>
    /// <paramref name="count"/> indices split as evenly as possible across classes (the
    /// first classes take the remainder); a class with too few examples gives all it has.
    /// </summary>
    public long[] Sample(int count, long step, int stream = 0)
    {
        var random = new Random(StreamSeed(_seed, step, stream));
        var result = new List<long>(count);
        for (int c = 0; c < _byClass.Length; c++)
        {
            int want = count / _byClass.Length + (c < count % _byClass.Length ? 1 : 0);
            var pool = (int[])_byClass[c].Clone();
            int take = Math.Min(want, pool.Length);
            // Partial Fisher-Yates: the first `take` entries become a uniform sample.
            for (int i = 0; i < take; i++)
            {
                int j = random.Next(i, pool.Length);
                (pool[i], pool[j]) = (pool[j], pool[i]);
                result.Add(pool[i]);
            }
        }
        return result.ToArray();
    }

    /// <summary>A seed derived from (seed, step, stream) that does not depend on the runtime's hash.</summary>
    public static int StreamSeed(int seed, long step, int stream)
    {
        ulong x = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)step * 0xBF58476D1CE4E5B9UL ^ (ulong)(uint)stream * 0x94D049BB133111EBUL;
        x ^= x >> 31; x *= 0xD6E8FEB86DA4F9C5UL; x ^= x >> 29;
        return (int)(x & 0x7FFFFFFF);
    }
}
