using Distill.Core.Evaluation;

namespace Distill.DistillerService.Kernels;

/// <summary>
/// Progress summed over the parts of a job spread over kernel services. A part that moves to
/// another service starts again there, so it counts only once it passes the mark it had reached:
/// the total never goes back.
/// </summary>
internal sealed class PartProgress(int parts, long total, Action<RowsDone>? report)
{
    private readonly long[] _done = new long[parts];
    private readonly Lock _lock = new();
    private long _sum;

    public void Advance(int part, long done)
    {
        lock (_lock)
        {
            if (done <= _done[part]) return;
            _sum += done - _done[part];
            _done[part] = done;
            report?.Invoke(new RowsDone(_sum, total));
        }
    }

    /// <summary>A report that is not a part's rows (a support Gram's pairs), made in turn with theirs.</summary>
    public void Relay(RowsDone rows)
    {
        lock (_lock) report?.Invoke(rows);
    }
}
