using Distill.Adapters.Conversions;
using Distill.Core.Data;
using Distill.DistillerService.Configuration;
using Distill.DistillerService.Kernels;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Microsoft.Extensions.Options;

namespace Distill.DistillerService.Datasets;

/// <summary>
/// The datasets runs read in this process (train labels for sampling, real images to start
/// from, the fitted preprocessing to map images back to pixels): loaded once per folder,
/// format and preprocessing, shared by runs; a load that failed is tried again next time.
/// A dataset is held while a lease on it is open; of the datasets no lease holds, the
/// <see cref="DistillerOptions.MaxIdleDatasets"/> used last stay loaded and older ones are
/// freed, so clients choosing new preprocessing settings cannot fill the memory.
/// </summary>
public sealed class DatasetCache(IOptions<DistillerOptions> options) : IDisposable
{
    private sealed class Entry(Lazy<Task<PreparedDataset>> load)
    {
        public Lazy<Task<PreparedDataset>> Load { get; } = load;
        public int Leases;
        public long LastUsed;
    }

    private readonly Dictionary<string, Entry> _datasets = new(StringComparer.Ordinal);
    private long _clock;

    /// <summary>The spec's dataset, loaded if need be; it stays loaded until the lease is disposed.</summary>
    public async Task<DatasetLease> AcquireAsync(RunSpec spec, CancellationToken cancellation = default)
    {
        var path = RunSpecs.ResolveDataset(spec, options.Value.DataRoot);
        var preprocessing = RunSpecs.Preprocessing(spec);
        var format = spec.Format.ToCore("spec.format");
        var key = $"{path}|{format}|{preprocessing}";
        Entry entry;
        lock (_datasets)
        {
            if (!_datasets.TryGetValue(key, out entry!) || entry.Load.IsValueCreated && entry.Load.Value.IsFaulted)
                _datasets[key] = entry = new Entry(Load(path, format, preprocessing));
            entry.Leases++;
        }
        try
        {
            return new DatasetLease(await entry.Load.Value.WaitAsync(cancellation), () => Release(entry));
        }
        catch
        {
            Release(entry);
            throw;
        }
    }

    private void Release(Entry entry)
    {
        List<Entry> freed;
        lock (_datasets)
        {
            entry.Leases--;
            entry.LastUsed = ++_clock;
            var idle = _datasets.Where(e => e.Value.Leases == 0).OrderByDescending(e => e.Value.LastUsed).ToList();
            var evicted = idle.Skip(options.Value.MaxIdleDatasets).ToList();
            foreach (var (key, _) in evicted) _datasets.Remove(key);
            freed = evicted.Select(e => e.Value).ToList();
        }
        foreach (var old in freed) Free(old);
    }

    /// <summary>Datasets loaded or loading now (for tests and diagnostics).</summary>
    public int Count { get { lock (_datasets) return _datasets.Count; } }

    /// <summary>How kernel services register a spec's dataset (defaults explicit).</summary>
    public static DatasetReference Reference(RunSpec spec) => new(spec.Dataset, spec.Format, RunSpecs.Preprocessing(spec).ToMessage());

    /// <summary>C, H, W of the dataset's images.</summary>
    public static long[] ImageShape(PreparedDataset data) => [data.Preprocessor.Channels, data.Preprocessor.Height, data.Preprocessor.Width];

    private static Lazy<Task<PreparedDataset>> Load(string path, string? format, Core.Preprocessing.PreprocessingSpec preprocessing) =>
        new(() => Task.Run(() => PreparedDataset.Prepare(DatasetLoader.Load(path, format), preprocessing)));

    private static void Free(Entry entry)
    {
        if (entry.Load.IsValueCreated && entry.Load.Value.IsCompletedSuccessfully) entry.Load.Value.Result.Dispose();
    }

    public void Dispose()
    {
        lock (_datasets)
        {
            foreach (var entry in _datasets.Values) Free(entry);
            _datasets.Clear();
        }
    }
}

/// <summary>A dataset held loaded for as long as this is not disposed.</summary>
public sealed class DatasetLease(PreparedDataset data, Action release) : IDisposable
{
    private int _released;

    public PreparedDataset Data { get; } = data;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) release();
    }
}
