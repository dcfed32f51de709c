using System.Collections.Concurrent;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Errors;
using Distill.Core.Preprocessing;
using Distill.KernelService.Configuration;
using Distill.KernelService.Leases;
using Microsoft.Extensions.Options;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.KernelService.Datasets;

/// <summary>
/// The datasets this server holds, by name, within a memory budget. A dataset registered
/// with a lease is dropped once no call has used it for the lease's time to live, so a
/// client that dies leaks nothing; expiry is checked on every access (no timer), always
/// before a new dataset is counted against the budget.
/// </summary>
public sealed class DatasetRegistry(IOptions<KernelServiceOptions> options, TimeProvider time) : IDisposable
{
    private readonly ConcurrentDictionary<string, RegisteredDataset> _datasets = new();
    private readonly Lock _budget = new();
    private long _elements;

    public IReadOnlyCollection<RegisteredDataset> All
    {
        get
        {
            DropExpired();
            return _datasets.Values.ToArray();
        }
    }

    public long Elements => Interlocked.Read(ref _elements);

    /// <summary>
    /// The dataset a request names, held for reading until the returned use is disposed:
    /// a drop or expiry meanwhile frees it only after that.
    /// </summary>
    public ResourceUse<RegisteredDataset> Use(string name, string field)
    {
        DropExpired();
        if (string.IsNullOrEmpty(name)) throw new InvalidFieldException(field, "required (datasets/{id})");
        var id = name.StartsWith(RegisteredDataset.NamePrefix, StringComparison.Ordinal) ? name[RegisteredDataset.NamePrefix.Length..] : null;
        if (id is null) throw new InvalidFieldException(field, $"'{name}' is not a dataset name (datasets/{{id}})");
        if (_datasets.TryGetValue(id, out var dataset) && dataset.TryAcquire(time.GetUtcNow()))
            return new ResourceUse<RegisteredDataset>(dataset, time);
        throw new ResourceNotFoundException("distill.kernel.v1.Dataset", name, ErrorReasons.DatasetNotFound,
            $"{field}: no dataset '{name}' (it may have been dropped, its lease may have expired, or the server restarted; register it again)");
    }

    /// <summary>Loads a dataset from under the data root; the path may not leave it.</summary>
    public RegisteredDataset RegisterFromPath(string path, string? format, PreprocessingSpec preprocessing, TimeSpan? leaseTtl)
    {
        var root = options.Value.DataRoot;
        if (string.IsNullOrEmpty(root))
            throw new StateConflictException(ErrorReasons.DataRootNotConfigured, "KernelService:DataRoot",
                "path registration is disabled: the server has no KernelService:DataRoot (use UploadDataset)");
        var full = DataRoot.Resolve(root, path);
        DropExpired();
        // Each pixel becomes one element of the dataset: a file that declares more than the budget
        // has left is refused from its header, before its body is read or decompressed.
        var budget = new DatasetReadBudget(Math.Max(0, options.Value.MaxDatasetElements - Elements), "KernelService:MaxDatasetElements");
        var dataset = DatasetLoader.Load(full, format, budget);
        var prepared = PreparedDataset.Prepare(dataset, preprocessing);
        return Add(RegisteredDataset.FromPrepared(NewId(), prepared, preprocessing, time.GetUtcNow(), leaseTtl));
    }

    public RegisteredDataset RegisterUploaded(string name, int classCount, IReadOnlyList<long> imageShape,
        (Tensor Features, int[] Labels) train, (Tensor Features, int[] Labels) test, TimeSpan? leaseTtl)
    {
        RegisteredSplit Split((Tensor Features, int[] Labels) part) =>
            new(part.Features, CenteredOneHot.Encode(part.Labels, classCount), part.Labels);
        var dataset = new RegisteredDataset(NewId(), name, classCount, Split(train), Split(test), imageShape,
            Enumerable.Range(0, classCount).Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
            preprocessing: null, new Dictionary<string, string> { ["preprocessing"] = "done by the client" })
        {
            CreateTime = time.GetUtcNow(), LeaseTtl = leaseTtl,
        };
        return Add(dataset);
    }

    /// <summary>Removes it now; calls reading it finish first, then its memory is freed.</summary>
    public void Drop(string name, string field)
    {
        using (var use = Use(name, field)) Remove(use.Resource);
    }

    private RegisteredDataset Add(RegisteredDataset dataset)
    {
        DropExpired();
        dataset.Renew(time.GetUtcNow());
        lock (_budget)
        {
            var limit = options.Value.MaxDatasetElements;
            if (_elements + dataset.ElementCount > limit)
            {
                dataset.Release();
                throw new LimitExceededException(ErrorReasons.DatasetBudgetExceeded, "KernelService:MaxDatasetElements",
                    $"a dataset of {dataset.ElementCount} elements exceeds the server's dataset budget ({limit - _elements} of {limit} left); drop a dataset first");
            }
            _elements += dataset.ElementCount;
        }
        _datasets[dataset.Id] = dataset;
        return dataset;
    }

    private void Remove(RegisteredDataset dataset)
    {
        if (!_datasets.TryRemove(new KeyValuePair<string, RegisteredDataset>(dataset.Id, dataset))) return;
        lock (_budget) _elements -= dataset.ElementCount;
        dataset.Release();
    }

    private void DropExpired()
    {
        var now = time.GetUtcNow();
        foreach (var dataset in _datasets.Values)
            if (dataset.IsExpired(now)) Remove(dataset);
    }

    private static string NewId() => "ds-" + Guid.NewGuid().ToString("N")[..12];

    public void Dispose()
    {
        foreach (var dataset in _datasets.Values) Remove(dataset);
    }
}
