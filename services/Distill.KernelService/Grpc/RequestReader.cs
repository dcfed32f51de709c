using Distill.Core.Preprocessing;
using Distill.KernelService.Configuration;
using Distill.KernelService.Datasets;
using Distill.Adapters.Conversions;
using Distill.Protos.Kernel.V1;
using Distill.ServiceDefaults;
using Microsoft.Extensions.Options;
using static TorchSharp.torch;
using CoreKernels = Distill.Core.Kernels;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.KernelService.Grpc;

/// <summary>
/// Turns request messages into engine values, checking every field and naming it in the
/// error: ArgumentException (INVALID_ARGUMENT), KeyNotFoundException (NOT_FOUND),
/// ResourceLimitException (RESOURCE_EXHAUSTED).
/// </summary>
public sealed class RequestReader(DatasetRegistry datasets, IOptions<KernelServiceOptions> options)
{
    public static CoreKernels.KernelSpec Kernel(KernelSpec? message, string field = "kernel") => message.ToCore(field);

    public static PreprocessingSpec Preprocessing(Protos.Kernel.V1.Preprocessing? message) => message.ToCore("preprocessing");

    public static double Regularization(double value, string field = "regularization") =>
        double.IsFinite(value) && value >= 0 ? value : throw new ArgumentException($"{field}: must be a non-negative finite number, got {value}", field);

    /// <summary>An inline matrix (an n x ... tensor is flattened to n x rest).</summary>
    public Tensor Matrix(Protos.Kernel.V1.Tensor? message, string field)
    {
        if (message is null) throw new ArgumentException($"{field}: required", field);
        CheckElements(message.Shape.Aggregate(1L, (a, b) => a * Math.Max(b, 0)), field);
        var t = message.ToTorch(field);
        if (t.dim() < 2)
        {
            t.Dispose();
            throw new ArgumentException($"{field}.shape: expected at least 2 dimensions (rows x features), got [{string.Join(",", message.Shape)}]", field);
        }
        return t.dim() == 2 ? t : t.reshape(t.shape[0], -1);
    }

    /// <summary>An operand's feature rows, and the dataset split it came from when it names rows.</summary>
    public (Tensor Rows, RegisteredSplit? Split) Operand(Operand? message, string field)
    {
        switch (message?.SourceCase)
        {
            case Protos.Kernel.V1.Operand.SourceOneofCase.Inline:
                return (Matrix(message.Inline, $"{field}.inline"), null);
            case Protos.Kernel.V1.Operand.SourceOneofCase.Rows:
                var (dataset, split, index) = Rows(message.Rows, $"{field}.rows");
                using (index) return (split.Features.index_select(0, index), split);
            default:
                throw new ArgumentException($"{field}: set either inline or rows", field);
        }
    }

    /// <summary>The dataset, split and row indices a DatasetRows names, all bounds-checked.</summary>
    public (RegisteredDataset Dataset, RegisteredSplit Split, Tensor Index) Rows(DatasetRows? rows, string field)
    {
        if (rows is null) throw new ArgumentException($"{field}: required", field);
        var dataset = datasets.Get(rows.DatasetId, $"{field}.dataset_id");
        if (rows.Split is not (Split.Unspecified or Split.Train or Split.Test))
            throw new ArgumentException($"{field}.split: unknown split {(int)rows.Split}", field);
        var split = dataset.Split(rows.Split);
        var count = split.Count;
        var indices = new List<long>();
        for (int i = 0; i < rows.Ranges.Count; i++)
        {
            var range = rows.Ranges[i];
            if (range.Start < 0 || range.Count < 0 || range.Start + range.Count > count)
                throw new ArgumentException($"{field}.ranges[{i}]: [{range.Start}, {range.Start + range.Count}) is outside the split's {count} rows", field);
            for (long r = 0; r < range.Count; r++) indices.Add(range.Start + r);
        }
        for (int i = 0; i < rows.Indices.Count; i++)
        {
            var index = rows.Indices[i];
            if (index < 0 || index >= count)
                throw new ArgumentException($"{field}.indices[{i}]: {index} is outside the split's {count} rows", field);
            indices.Add(index);
        }
        if (indices.Count == 0)
            throw new ArgumentException($"{field}: names no rows (give ranges or indices)", field);
        CheckElements(indices.Count * dataset.FeatureCount, field);
        return (dataset, split, tensor(indices.ToArray(), dtype: ScalarType.Int64));
    }

    public void CheckElements(long elements, string field)
    {
        if (elements > options.Value.MaxElementsPerRequest)
            throw new ResourceLimitException($"{field}: {elements} elements exceed the server's limit of {options.Value.MaxElementsPerRequest} per request");
    }

    /// <summary>Inline support images, which must have the dataset's feature count.</summary>
    public Tensor Support(Protos.Kernel.V1.Tensor? message, RegisteredDataset dataset)
    {
        var support = Matrix(message, "support");
        if (support.shape[1] != dataset.FeatureCount)
            throw new ArgumentException($"support: has {support.shape[1]} features, the dataset has {dataset.FeatureCount}", "support");
        return support;
    }

    public static void SameFeatures(Tensor a, string fieldA, Tensor b, string fieldB)
    {
        if (a.shape[1] != b.shape[1])
            throw new ArgumentException($"{fieldB}: has {b.shape[1]} features but {fieldA} has {a.shape[1]}", fieldB);
    }
}
