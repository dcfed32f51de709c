using Distill.Client;
using Grpc.Core;

namespace Distill.Dashboard.Services;

/// <summary>
/// One WatchRun stream per watched run for the whole process, fanned out to every subscribed
/// page. A stream that breaks (the distiller restarted, the network dropped) is reopened after
/// the last sequence seen, so subscribers see each event once and in order. Deliveries are
/// batched and paced: a subscriber is called at most once per <see cref="FlushInterval"/>.
/// A run nobody has watched for <see cref="IdleTimeout"/> has its stream closed.
/// </summary>
public sealed class RunWatcher : IAsyncDisposable
{
    public delegate IAsyncEnumerable<RunEventRecord> EventSource(string id, long afterSequence, CancellationToken cancellationToken);

    public static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(2);

    private readonly EventSource source;
    private readonly ILogger<RunWatcher> logger;
    private readonly TimeProvider time;
    private readonly Dictionary<string, Feed> feeds = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource stopping = new();
    private readonly Task flusher;

    public RunWatcher(EventSource source, ILogger<RunWatcher> logger, TimeProvider? time = null)
    {
        this.source = source;
        this.logger = logger;
        this.time = time ?? TimeProvider.System;
        flusher = Task.Run(FlushLoop);
    }

    /// <summary>Runs with an open stream now (for tests and diagnostics).</summary>
    public int OpenStreams { get { lock (feeds) return feeds.Count; } }

    public IDisposable Subscribe(string id, Action<IReadOnlyList<RunEventRecord>> handler)
    {
        id = RunNames.ToId(id);
        var subscriber = new Subscriber(handler);
        lock (feeds)
        {
            if (!feeds.TryGetValue(id, out var feed))
            {
                feed = new Feed(id, CancellationTokenSource.CreateLinkedTokenSource(stopping.Token));
                feeds[id] = feed;
                feed.Pump = Task.Run(() => Pump(feed));
            }
            lock (feed) feed.Subscribers.Add(subscriber);
            return new Subscription(() =>
            {
                lock (feed)
                {
                    feed.Subscribers.Remove(subscriber);
                    if (feed.Subscribers.Count == 0) feed.IdleSince = time.GetUtcNow();
                }
            });
        }
    }

    /// <summary>Delivers what is pending now; the flush loop calls it, tests may too.</summary>
    public void Flush()
    {
        Feed[] snapshot;
        lock (feeds) snapshot = feeds.Values.ToArray();
        var now = time.GetUtcNow();
        foreach (var feed in snapshot)
        {
            List<(Subscriber, RunEventRecord[])> deliveries = [];
            bool idle;
            lock (feed)
            {
                foreach (var s in feed.Subscribers)
                {
                    if (s.Delivered >= feed.History.Count) continue;
                    deliveries.Add((s, feed.History.GetRange(s.Delivered, feed.History.Count - s.Delivered).ToArray()));
                    s.Delivered = feed.History.Count;
                }
                idle = feed.Subscribers.Count == 0 && (feed.Ended || now - feed.IdleSince > IdleTimeout);
            }
            foreach (var (subscriber, events) in deliveries)
            {
                try
                {
                    subscriber.Handler(events);
                }
                catch (Exception e)
                {
                    // One broken page must not stop the others' updates.
                    logger.LogWarning(e, "A subscriber of run {Run} failed", feed.Id);
                }
            }
            if (idle)
            {
                lock (feeds)
                lock (feed)
                {
                    if (feed.Subscribers.Count != 0) continue;
                    feeds.Remove(feed.Id);
                }
                feed.Stop.Cancel();
            }
        }
    }

    private async Task FlushLoop()
    {
        using var timer = new PeriodicTimer(FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping.Token)) Flush();
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task Pump(Feed feed)
    {
        var token = feed.Stop.Token;
        var delay = TimeSpan.FromMilliseconds(500);
        while (!token.IsCancellationRequested)
        {
            try
            {
                long after;
                lock (feed) after = feed.LastSequence;
                await foreach (var e in source(feed.Id, after, token))
                {
                    lock (feed)
                    {
                        if (e.Sequence <= feed.LastSequence) continue;
                        feed.History.Add(e);
                        feed.LastSequence = e.Sequence;
                    }
                    delay = TimeSpan.FromMilliseconds(500);
                }
                // A followed stream ends only when the run is gone.
                break;
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                break;
            }
            catch (DistillerException e) when (e.StatusCode == StatusCode.NotFound)
            {
                break;
            }
            catch (Exception e)
            {
                logger.LogInformation("Watching run {Run} broke ({Error}); reconnecting in {Delay}", feed.Id, e.Message, delay);
                try
                {
                    await Task.Delay(delay, time, token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
            }
        }
        lock (feed) feed.Ended = true;
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        Task[] pumps;
        lock (feeds) pumps = feeds.Values.Select(f => f.Pump).ToArray();
        try
        {
            await Task.WhenAll(pumps.Append(flusher));
        }
        catch (OperationCanceledException)
        {
        }
        stopping.Dispose();
    }

    private sealed class Feed(string id, CancellationTokenSource stop)
    {
        public string Id { get; } = id;
        public CancellationTokenSource Stop { get; } = stop;
        public Task Pump { get; set; } = Task.CompletedTask;
        public List<RunEventRecord> History { get; } = [];
        public List<Subscriber> Subscribers { get; } = [];
        public long LastSequence { get; set; }
        public bool Ended { get; set; }
        public DateTimeOffset IdleSince { get; set; }
    }

    private sealed class Subscriber(Action<IReadOnlyList<RunEventRecord>> handler)
    {
        public Action<IReadOnlyList<RunEventRecord>> Handler { get; } = handler;
        public int Delivered { get; set; }
    }

    private sealed class Subscription(Action dispose) : IDisposable
    {
        private Action? dispose = dispose;
        public void Dispose() => Interlocked.Exchange(ref dispose, null)?.Invoke();
    }
}
