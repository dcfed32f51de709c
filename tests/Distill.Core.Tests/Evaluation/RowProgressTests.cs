using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using Distill.Core.Runs;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Evaluation;

/// <summary>
/// Evaluations and Label Solves report their row blocks and the blocks of the support's Gram matrix,
/// and stop at the next block when cancelled.
/// </summary>
public sealed class RowProgressTests : TensorLeakCheck
{
    private static readonly IKernel Kernel = new FullyConnectedKernel(new KernelSpec());

    [Fact]
    public void KrrEvaluator_ReportsEveryBlock_AndScoresAsWithoutProgress()
    {
        var (xs, ys, images, labels, targets) = Problem();
        var rows = new List<RowsDone>();

        var reported = KrrEvaluator.Evaluate(Kernel, xs, ys, images, labels, targets, 1e-6, blockRows: 4, progress: rows.Add);
        var plain = KrrEvaluator.Evaluate(Kernel, xs, ys, images, labels, targets, 1e-6);

        // The support Gram first: 4 x 5 / 2 image pairs; then the 15 test rows.
        var gram = rows.TakeWhile(r => r.SupportGram).ToList();
        AssertPairsRiseTo(10, gram);
        Assert.Equal([4L, 8, 12, 15], rows.Skip(gram.Count).Select(r => r.Done));
        Assert.All(rows.Skip(gram.Count), r => Assert.Equal((15L, false), (r.Total, r.SupportGram)));
        Assert.Equal(plain.Accuracy, reported.Accuracy);
        Assert.Equal(plain.Mse, reported.Mse, 12);
    }

    [Fact]
    public void KrrEvaluator_CancelledAfterTheFirstBlock_StopsBeforeTheSecond()
    {
        var (xs, ys, images, labels, targets) = Problem();
        using var cancel = new CancellationTokenSource();
        var blocks = 0;

        Assert.Throws<OperationCanceledException>(() => KrrEvaluator.Evaluate(Kernel, xs, ys, images, labels, targets, 1e-6, blockRows: 4,
            progress: _ => { blocks++; cancel.Cancel(); }, cancellation: cancel.Token));
        Assert.Equal(1, blocks);
    }

    [Fact]
    public void LabelSolver_ReportsEveryBlock_AndSolvesAsWithoutProgress()
    {
        var (xs, _, images, _, targets) = Problem();
        var rows = new List<RowsDone>();

        var (reported, _) = LabelSolver.Solve(Kernel, xs, images, targets, 1e-6, blockRows: 5, progress: rows.Add);
        var (plain, _) = LabelSolver.Solve(Kernel, xs, images, targets, 1e-6);

        // The 15 target rows first, then the support Gram's 4 x 5 / 2 image pairs.
        Assert.Equal([5L, 10, 15], rows.Take(3).Select(r => r.Done));
        Assert.All(rows.Take(3), r => Assert.Equal((15L, false), (r.Total, r.SupportGram)));
        AssertPairsRiseTo(10, rows.Skip(3).ToList());
        TensorAssert.Close(plain, reported, 1e-9, "labels");
    }

    [Fact]
    public void LabelSolver_CancelledAfterTheFirstBlock_StopsBeforeTheSecond()
    {
        var (xs, _, images, _, targets) = Problem();
        using var cancel = new CancellationTokenSource();
        var blocks = 0;

        Assert.Throws<OperationCanceledException>(() => LabelSolver.Solve(Kernel, xs, images, targets, 1e-6, blockRows: 5,
            progress: _ => { blocks++; cancel.Cancel(); }, cancellation: cancel.Token));
        Assert.Equal(1, blocks);
    }

    [Fact]
    public void PhaseProgressReporter_ReportsEachTwentiethOnce_AndTheEnd()
    {
        var events = new List<PhaseProgress>();
        var row = PhaseProgress.Reporter(RunPhase.Evaluation, 7, e => events.Add((PhaseProgress)e))!;
        for (long done = 1; done <= 1000; done++) row(new RowsDone(done, 1000));

        Assert.Equal(Enumerable.Range(1, 20).Select(i => i * 50L), events.Select(e => e.Done));
        Assert.All(events, e => Assert.Equal((RunPhase.Evaluation, 7L, 1000L), (e.Phase, e.Step, e.Total)));

        // Blocks larger than a twentieth are each reported, and the last one always.
        events.Clear();
        var block = PhaseProgress.Reporter(RunPhase.LabelSolve, 0, e => events.Add((PhaseProgress)e))!;
        foreach (var done in new long[] { 10, 4096, 8192, 10000 }) block(new RowsDone(done, 10000));
        Assert.Equal([4096L, 8192, 10000], events.Select(e => e.Done));

        // A support Gram's pairs are a phase of their own, with twentieths of their own.
        events.Clear();
        var evaluation = PhaseProgress.Reporter(RunPhase.Evaluation, 3, e => events.Add((PhaseProgress)e))!;
        foreach (var pairs in new long[] { 100, 1000, 5000, 5050 }) evaluation(new RowsDone(pairs, 5050, SupportGram: true));
        foreach (var done in new long[] { 100, 2000 }) evaluation(new RowsDone(done, 2000));
        Assert.Equal([(RunPhase.SupportGram, 1000L, 5050L), (RunPhase.SupportGram, 5000, 5050), (RunPhase.SupportGram, 5050, 5050),
            (RunPhase.Evaluation, 100, 2000), (RunPhase.Evaluation, 2000, 2000)], events.Select(e => (e.Phase, e.Done, e.Total)));
        Assert.All(events, e => Assert.Equal(3, e.Step));

        Assert.Null(PhaseProgress.Reporter(RunPhase.Evaluation, 0, report: null));
    }

    /// <summary>A support Gram's progress: pairs done rising to all <paramref name="pairs"/>.</summary>
    internal static void AssertPairsRiseTo(long pairs, IReadOnlyList<RowsDone> updates)
    {
        Assert.NotEmpty(updates);
        Assert.All(updates, u => Assert.Equal((pairs, true), (u.Total, u.SupportGram)));
        Assert.Equal(pairs, updates[^1].Done);
        Assert.True(updates.Select(u => u.Done).SequenceEqual(updates.Select(u => u.Done).Order().Distinct()), "pairs done rise");
    }

    private static (Tensor Xs, Tensor Ys, Tensor Images, int[] Labels, Tensor Targets) Problem()
    {
        var generator = new TorchSharp.torch.Generator(61);
        var xs = randn(4, 5, dtype: ScalarType.Float64, generator: generator);
        var images = randn(15, 5, dtype: ScalarType.Float64, generator: generator);
        var labels = Enumerable.Range(0, 15).Select(i => i % 3).ToArray();
        return (xs, CenteredOneHot.Encode([0, 1, 2, 0], 3), images, labels, CenteredOneHot.Encode(labels, 3));
    }
}
