namespace Distill.Core.Runs;

/// <summary>
/// Where a run keeps the support set of each checkpoint (and of its start), and how many:
/// at most <see cref="Retention"/>, always the first and the latest, the rest thinned evenly.
/// </summary>
public sealed record SnapshotPolicy(string Folder, int Retention = 100)
{
    /// <summary>
    /// The steps to delete so that at most <paramref name="retention"/> (at least 2) remain:
    /// each time the inner snapshot whose neighbours are closest together goes (the earliest
    /// on a tie), so the kept ones stay evenly spread as a run grows.
    /// </summary>
    public static IReadOnlyList<long> Thin(IReadOnlyList<long> steps, int retention)
    {
        var kept = steps.Order().ToList();
        var dropped = new List<long>();
        var limit = Math.Max(2, retention);
        while (kept.Count > limit)
        {
            int best = 1;
            for (int i = 2; i < kept.Count - 1; i++)
                if (kept[i + 1] - kept[i - 1] < kept[best + 1] - kept[best - 1]) best = i;
            dropped.Add(kept[best]);
            kept.RemoveAt(best);
        }
        return dropped;
    }
}
