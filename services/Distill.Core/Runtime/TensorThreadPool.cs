namespace Distill.Core.Runtime;

/// <summary>
/// A few long-lived threads for tensor work. libtorch keeps per-thread state (its OpenMP
/// team, the allocator's arena), and an OpenMP team keeps spinning for a while after its
/// last parallel region: running each request on whichever thread is free made a 12 ms
/// KIP step cost 20 ms or more. So work goes to the most recently used idle worker, whose
/// team is still hot, and the others stay asleep. Synchronous inside, awaitable outside.
/// </summary>
public sealed class TensorThreadPool : IDisposable
{
    private readonly Lock _lock = new();
    private readonly Stack<Worker> _idle = new();
    // A job runs the work and returns how to publish its outcome; the worker publishes only
    // after it is back on the idle stack, so the caller's next job finds the same hot thread.
    private readonly Queue<Func<Action>> _pending = new();
    private readonly Worker[] _workers;
    private bool _disposed;

    /// <param name="threads">concurrent tensor jobs.</param>
    /// <param name="intraOpThreads">threads each job may use (null: libtorch's default); a per-thread setting, so applied on each worker.</param>
    public TensorThreadPool(int threads, int? intraOpThreads = null, string name = "tensor")
    {
        if (threads < 1) throw new ArgumentException($"threads: must be positive, got {threads}", nameof(threads));
        if (intraOpThreads is < 1) throw new ArgumentException($"intraOpThreads: must be positive, got {intraOpThreads}", nameof(intraOpThreads));
        _workers = Enumerable.Range(0, threads).Select(i => new Worker(this, $"{name}-{i}", intraOpThreads)).ToArray();
        // Pushed in reverse so that worker 0 is used first.
        foreach (var worker in _workers.Reverse()) _idle.Push(worker);
    }

    public Task<T> RunAsync<T>(Func<T> work, CancellationToken cancellation = default)
    {
        if (cancellation.IsCancellationRequested) return Task.FromCanceled<T>(cancellation);
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Action Job()
        {
            if (cancellation.IsCancellationRequested)
                return () => completion.TrySetCanceled(cancellation);
            try
            {
                var result = work();
                return () => completion.TrySetResult(result);
            }
            catch (OperationCanceledException e) when (e.CancellationToken == cancellation) { return () => completion.TrySetCanceled(cancellation); }
            catch (Exception e) { return () => completion.TrySetException(e); }
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_idle.TryPop(out var worker)) worker.Assign(Job);
            else _pending.Enqueue(Job);
        }
        return completion.Task;
    }

    /// <summary>A worker's next job, or null after it has gone back on the idle stack.</summary>
    private Func<Action>? Next(Worker worker)
    {
        lock (_lock)
        {
            if (_pending.TryDequeue(out var job)) return job;
            _idle.Push(worker);
            return null;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        foreach (var worker in _workers) worker.Stop();
    }

    private sealed class Worker
    {
        private readonly TensorThreadPool _pool;
        private readonly SemaphoreSlim _signal = new(0);
        private readonly Thread _thread;
        private readonly int? _intraOpThreads;
        private Func<Action>? _job;
        private volatile bool _stopping;

        public Worker(TensorThreadPool pool, string name, int? intraOpThreads)
        {
            _pool = pool;
            _intraOpThreads = intraOpThreads;
            _thread = new Thread(Loop) { IsBackground = true, Name = name };
            _thread.Start();
        }

        public void Assign(Func<Action> job)
        {
            _job = job;
            _signal.Release();
        }

        public void Stop()
        {
            _stopping = true;
            _signal.Release();
            _thread.Join();
        }

        private void Loop()
        {
            if (_intraOpThreads is { } n) TorchSharp.torch.set_num_threads(n);
            while (true)
            {
                _signal.Wait();
                if (_stopping && _job is null) return;
                for (var job = Interlocked.Exchange(ref _job, null); job is not null;)
                {
                    var publish = job();
                    job = _pool.Next(this);
                    publish();
                }
                if (_stopping) return;
            }
        }
    }
}
