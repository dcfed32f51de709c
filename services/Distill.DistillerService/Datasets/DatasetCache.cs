using System.Collections.Concurrent;
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
/// </summary>
public sealed class DatasetCache(IOptions<DistillerOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<Task<PreparedDataset>>> _datasets = new();

    public Task<PreparedDataset> GetAsync(RunSpec spec)
    {
        var path = RunSpecs.ResolveDataset(spec, options.Value.DataRoot);
        var preprocessing = RunSpecs.Preprocessing(spec);
        var format = spec.Format.ToCore("spec.format");
        var key = $"{path}|{format}|{preprocessing}";
        var entry = _datasets.GetOrAdd(key, _ => Load(path, format, preprocessing));
        if (entry.IsValueCreated && entry.Value.IsFaulted)
        {
            _datasets.TryRemove(new KeyValuePair<string, Lazy<Task<PreparedDataset>>>(key, entry));
            entry = _datasets.GetOrAdd(key, _ => Load(path, format, preprocessing));
        }
        return entry.Value;
    }

    /// <summary>How kernel services register a spec's dataset (defaults explicit).</summary>
    public static DatasetReference Reference(RunSpec spec) => new(spec.Dataset, spec.Format, RunSpecs.Preprocessing(spec).ToMessage());

    /// <summary>C, H, W of the dataset's images.</summary>
    public static long[] ImageShape(PreparedDataset data) => [data.Preprocessor.Channels, data.Preprocessor.Height, data.Preprocessor.Width];

    private static Lazy<Task<PreparedDataset>> Load(string path, string? format, Core.Preprocessing.PreprocessingSpec preprocessing) =>
        new(() => Task.Run(() => PreparedDataset.Prepare(DatasetLoader.Load(path, format), preprocessing)));

    public void Dispose()
    {
        foreach (var entry in _datasets.Values)
            if (entry.IsValueCreated && entry.Value.IsCompletedSuccessfully) entry.Value.Result.Dispose();
    }
}
