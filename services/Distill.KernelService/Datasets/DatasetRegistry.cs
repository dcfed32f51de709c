using System.Collections.Concurrent;
using Distill.Core.Data;
using Distill.Core.Preprocessing;
using Distill.KernelService.Configuration;
using Distill.ServiceDefaults;
using Microsoft.Extensions.Options;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.KernelService.Datasets;

/// <summary>The datasets this server holds, by id, within a memory budget.</summary>
public sealed class DatasetRegistry(IOptions<KernelServiceOptions> options) : IDisposable
{
    private readonly ConcurrentDictionary<string, RegisteredDataset> _datasets = new();
    private readonly Lock _budget = new();
    private long _elements;

    public IReadOnlyCollection<RegisteredDataset> All => _datasets.Values.ToArray();

    public RegisteredDataset Get(string id, string field) =>
        string.IsNullOrEmpty(id) ? throw new ArgumentException($"{field}: required", field)
        : _datasets.TryGetValue(id, out var dataset) ? dataset
        : throw new KeyNotFoundException($"{field}: no dataset with id '{id}' (ListDatasets shows the registered ones)");

    /// <summary>Loads a dataset from under the data root; the path may not leave it.</summary>
    public RegisteredDataset RegisterFromPath(string path, string? format, PreprocessingSpec preprocessing)
    {
        var root = options.Value.DataRoot;
        if (string.IsNullOrEmpty(root))
            throw new InvalidOperationException("path registration is disabled: the server has no KernelService:DataRoot");
        var full = DataRoot.Resolve(root, path);
        var dataset = DatasetLoader.Load(full, string.IsNullOrEmpty(format) ? null : format);
        var prepared = PreparedDataset.Prepare(dataset, preprocessing);
        return Add(RegisteredDataset.FromPrepared(NewId(), prepared));
    }

    public RegisteredDataset RegisterUploaded(string name, int classCount, (Tensor Features, int[] Labels) train, (Tensor Features, int[] Labels) test)
    {
        RegisteredSplit Split((Tensor Features, int[] Labels) part) =>
            new(part.Features, Core.Distillation.CenteredOneHot.Encode(part.Labels, classCount), part.Labels);
        var dataset = new RegisteredDataset(NewId(), name, classCount, Split(train), Split(test), [],
            new Dictionary<string, string> { ["preprocessing"] = "done by the client" });
        return Add(dataset);
    }

    public bool Drop(string id)
    {
        if (!_datasets.TryRemove(id, out var dataset)) return false;
        lock (_budget) _elements -= dataset.ElementCount;
        dataset.Dispose();
        return true;
    }

    private RegisteredDataset Add(RegisteredDataset dataset)
    {
        lock (_budget)
        {
            if (_elements + dataset.ElementCount > options.Value.MaxDatasetElements)
            {
                dataset.Dispose();
                throw new ResourceLimitException($"dataset of {dataset.ElementCount} elements exceeds the server's dataset budget ({options.Value.MaxDatasetElements - _elements} of {options.Value.MaxDatasetElements} left); drop a dataset first");
            }
            _elements += dataset.ElementCount;
        }
        _datasets[dataset.Id] = dataset;
        return dataset;
    }

    private static string NewId() => "ds-" + Guid.NewGuid().ToString("N")[..12];

    public void Dispose()
    {
        foreach (var dataset in _datasets.Values) dataset.Dispose();
        _datasets.Clear();
    }
}

