using Distill.Core.Runtime;

namespace Distill.Core.Tests.Runtime;

public class TensorThreadPoolTests : TensorLeakCheck
{
    [Fact]
    public async Task RunAsync_SequentialJobs_StayOnOneHotThread()
    {
        using var pool = new TensorThreadPool(4);
        var threads = new HashSet<int>();
        for (int i = 0; i < 200; i++)
            threads.Add(await pool.RunAsync(() => Environment.CurrentManagedThreadId));
        // The worker is back on the idle stack before the caller sees the result.
        Assert.Single(threads);
    }

    [Fact]
    public async Task RunAsync_ConcurrentJobs_UseSeveralThreadsAndQueueTheRest()
    {
        using var pool = new TensorThreadPool(2);
        using var gate = new ManualResetEventSlim();
        using var started = new SemaphoreSlim(0);
        var running = 0;
        var peak = 0;
        var jobs = Enumerable.Range(0, 6).Select(_ => pool.RunAsync(() =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            started.Release();
            gate.Wait(TimeSpan.FromSeconds(5));
            Interlocked.Decrement(ref running);
            return Environment.CurrentManagedThreadId;
        })).ToArray();
        // Both threads are busy; the other four jobs can only wait for them.
        await started.WaitAsync();
        await started.WaitAsync();
        gate.Set();
        var threads = await Task.WhenAll(jobs);
        Assert.Equal(2, threads.Distinct().Count());
        Assert.Equal(2, peak);
    }

    [Fact]
    public async Task RunAsync_Failures_ReachTheCaller()
    {
        using var pool = new TensorThreadPool(1);
        await Assert.ThrowsAsync<ArgumentException>(() => pool.RunAsync<int>(() => throw new ArgumentException("bad")));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pool.RunAsync(() => 1, cancelled.Token));
        Assert.Equal(2, await pool.RunAsync(() => 2));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        for (int seen = target; value > seen; seen = target)
            if (Interlocked.CompareExchange(ref target, value, seen) == seen) return;
    }
}
