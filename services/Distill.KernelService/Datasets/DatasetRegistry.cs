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
/// The datasets this server holds, by name, within KernelService:MaxDatasetElements. A dataset
/// registered with a lease is dropped once no call has used it for the lease's time to live.
/// </summary>
public sealed class DatasetRegistry(IOptions<KernelServiceOptions> options, TimeProvider time) : IDisposable
{
    private static readonly LeaseKind Kind = new("dataset", RegisteredDataset.NamePrefix, "distill.kernel.v1.Dataset",
        ErrorReasons.DatasetNotFound, "KernelService:MaxDatasetElements", ErrorReasons.DatasetBudgetExceeded, elements => $"{elements} elements");

    private readonly LeaseRegistry<RegisteredDataset> _datasets = new(Kind, () => options.Value.MaxDatasetElements, time);

    public IReadOnlyCollection<RegisteredDataset> All => _datasets.All;

    public long Elements => _datasets.Used;

    /// <summary>
    /// The dataset a request names, held for reading until the returned use is disposed:
    /// a drop or expiry meanwhile frees it only after that.
    /// </summary>
    public ResourceUse<RegisteredDataset> Use(string name, string field) => _datasets.Use(name, field);

    /// <summary>Loads a dataset from under the data root; the path may not leave it.</summary>
    public RegisteredDataset RegisterFromPath(string path, string? format, PreprocessingSpec preprocessing, TimeSpan? leaseTtl)
    {
        var root = options.Value.DataRoot;
        if (string.IsNullOrEmpty(root))
            throw new StateConflictException(ErrorReasons.DataRootNotConfigured, "KernelService:DataRoot",
                "path registration is disabled: the server has no KernelService:DataRoot (use UploadDataset)");
        var full = DataRoot.Resolve(root, path);
        // Each pixel becomes one element of the dataset: a file that declares more than the budget
        // has left is refused from its header, before its body is read or decompressed.
        var budget = new DatasetReadBudget(_datasets.Left, Kind.BudgetSetting);
        var dataset = DatasetLoader.Load(full, format, budget);
        var prepared = PreparedDataset.Prepare(dataset, preprocessing);
        return _datasets.Admit(RegisteredDataset.FromPrepared(NewId(), prepared, preprocessing, time.GetUtcNow(), leaseTtl));
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
        return _datasets.Admit(dataset);
    }

    /// <summary>Removes it now; calls reading it finish first, then its memory is freed.</summary>
    public void Drop(string name, string field) => _datasets.Drop(name, field);

    private static string NewId() => "ds-" + Guid.NewGuid().ToString("N")[..12];

    public void Dispose() => _datasets.Dispose();
}
