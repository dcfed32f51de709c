using Distill.Adapters.Conversions;
using Distill.Core.Errors;
using Distill.Core.Preprocessing;
using Distill.KernelService.Configuration;
using Distill.KernelService.Datasets;
using Distill.KernelService.Leases;
using Distill.Protos.Kernel.V1;
using Microsoft.Extensions.Options;
using static TorchSharp.torch;
using CoreKernels = Distill.Core.Kernels;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.KernelService.Grpc;

/// <summary>Inline images flattened to the rows the engine's kernels take, with the shape they arrived in.</summary>
public sealed record InlineImages(Tensor Rows, long[] Shape);

/// <summary>A request's kernel: the engine's spec and the kernel built from it within the server's memory budget.</summary>
public sealed record RequestKernel(CoreKernels.KernelSpec Spec, CoreKernels.IKernel Kernel);

/// <summary>Rows that a request names in a registered dataset, held (see <see cref="ResourceUse{T}"/>) until disposed.</summary>
public sealed class DatasetSelection(ResourceUse<RegisteredDataset> use, RegisteredSplit split, Tensor index) : IDisposable
{
    public RegisteredDataset Dataset => use.Resource;
    public RegisteredSplit Split { get; } = split;
    public Tensor Index { get; } = index;
    public long Count => Index.shape[0];

    public void Dispose()
    {
        Index.Dispose();
        use.Dispose();
    }
}

/// <summary>
/// Turns request messages into engine values, checking every field and naming it in the
/// error: <see cref="InvalidFieldException"/> (INVALID_ARGUMENT),
/// <see cref="ResourceNotFoundException"/> (NOT_FOUND), <see cref="LimitExceededException"/>
/// (RESOURCE_EXHAUSTED).
/// </summary>
public sealed class RequestReader(DatasetRegistry datasets, IOptions<KernelServiceOptions> options)
{
    public const double DefaultRegularization = Core.Regression.KernelRidgeRegression.DefaultRegularization;

    /// <summary>The request's kernel, through the engine's one factory, chunked within KernelService:MaxChunkElements.</summary>
    public RequestKernel Kernel(KernelSpec? message, string field = "kernel")
    {
        var spec = message.ToCore(field);
        if (spec.RandomFeatures is { } features) CheckNetworkWidth(features.Width, $"{field}.random_features.width");
        return new RequestKernel(spec, spec.Create(options.Value.MaxChunkElements));
    }

    /// <summary>A random network's widest weight (width x width x 3 x 3) is drawn whole: bounded like any request's tensors.</summary>
    public void CheckNetworkWidth(long width, string field) => CheckElements(width * width * 9, field);

    /// <summary>
    /// Refuses an operand that a convolutional kernel cannot read as its C x H x W images: images
    /// of another shape name the kernel's image field that differs; flattened rows of another
    /// feature count name the operand. <paramref name="imageShape"/> is one image's C, H, W when known.
    /// </summary>
    public static void CheckImages(RequestKernel kernel, long featureCount, IReadOnlyList<long>? imageShape, string operandField)
    {
        var spec = kernel.Spec;
        if (!spec.IsConvolutional) return;
        if (imageShape is not null) spec.CheckImages(imageShape);
        long expected = (long)spec.ImageChannels * spec.ImageHeight * spec.ImageWidth;
        if (featureCount != expected)
            throw new InvalidFieldException(operandField,
                $"has {featureCount} features, the kernel reads {spec.ImageChannels}x{spec.ImageHeight}x{spec.ImageWidth} = {expected}");
    }

    /// <summary><see cref="CheckImages"/> for inline images (their own shape) or dataset rows (the dataset's image shape).</summary>
    public static void CheckImages(RequestKernel kernel, Tensor rows, long[]? inlineShape, DatasetSelection? selection, string operandField) =>
        CheckImages(kernel, rows.shape[1], inlineShape is { Length: > 2 } ? inlineShape[1..] : selection?.Dataset.ImageShape, operandField);

    public static PreprocessingSpec Preprocessing(Protos.Kernel.V1.Preprocessing? message) => message.ToCore("preprocessing");

    public static double Regularization(bool set, double value, string field = "regularization") =>
        !set ? DefaultRegularization
        : double.IsFinite(value) && value >= 0 ? value
        : throw new InvalidFieldException(field, $"must be a non-negative finite number, got {value}");

    /// <summary>An inline tensor of at least two dimensions, flattened to n x rest.</summary>
    public InlineImages Images(Protos.Kernel.V1.Tensor? message, string field)
    {
        if (message is null) throw new InvalidFieldException(field, "required");
        CheckElements(message.Shape.Aggregate(1L, (a, b) => b <= 0 ? a : a > long.MaxValue / b ? long.MaxValue : a * b), field);
        if (message.Shape.Count < 2)
            throw new InvalidFieldException($"{field}.shape", $"expected at least 2 dimensions (rows x features, or N x C x H x W), got [{string.Join(",", message.Shape)}]");
        var t = message.ToTorch(field);
        if (t.dim() == 2) return new InlineImages(t, message.Shape.ToArray());
        using (t) return new InlineImages(t.reshape(t.shape[0], -1), message.Shape.ToArray());
    }

    /// <summary>An inline n x k matrix (labels, cotangents).</summary>
    public Tensor Matrix(Protos.Kernel.V1.Tensor? message, string field) => Images(message, field).Rows;

    /// <summary>An operand's feature rows; for dataset rows, the selection holding the dataset.</summary>
    public (Tensor Rows, long[]? Shape, DatasetSelection? Selection) Operand(Operand? message, string field)
    {
        switch (message?.SourceCase)
        {
            case Protos.Kernel.V1.Operand.SourceOneofCase.Inline:
                var images = Images(message.Inline, $"{field}.inline");
                return (images.Rows, images.Shape, null);
            case Protos.Kernel.V1.Operand.SourceOneofCase.Rows:
                var selection = Rows(message.Rows, $"{field}.rows");
                return (selection.Split.Features.index_select(0, selection.Index), null, selection);
            default:
                throw new InvalidFieldException(field, "set either inline or rows");
        }
    }

    /// <summary>The dataset, split and row indices a DatasetRows names, all bounds-checked.</summary>
    public DatasetSelection Rows(DatasetRows? rows, string field)
    {
        if (rows is null) throw new InvalidFieldException(field, "required");
        if (rows.Split is not (Split.Unspecified or Split.Train or Split.Test))
            throw new InvalidFieldException($"{field}.split", $"unknown split {(int)rows.Split}");
        var use = datasets.Use(rows.Dataset, $"{field}.dataset");
        try
        {
            var split = use.Resource.Split(rows.Split);
            var count = split.Count;
            var indices = new List<long>();
            for (int i = 0; i < rows.Ranges.Count; i++)
            {
                var range = rows.Ranges[i];
                if (range.Start < 0 || range.Count < 0 || range.Start > count - range.Count)
                    throw new InvalidFieldException($"{field}.ranges[{i}]", $"[{range.Start}, {range.Start + range.Count}) is outside the split's {count} rows");
                CheckElements((indices.Count + range.Count) * use.Resource.FeatureCount, field);
                for (long r = 0; r < range.Count; r++) indices.Add(range.Start + r);
            }
            for (int i = 0; i < rows.Indices.Count; i++)
            {
                var index = rows.Indices[i];
                if (index < 0 || index >= count)
                    throw new InvalidFieldException($"{field}.indices[{i}]", $"{index} is outside the split's {count} rows");
                indices.Add(index);
            }
            if (indices.Count == 0)
                throw new InvalidFieldException(field, "names no rows (give ranges or indices)");
            CheckElements(indices.Count * use.Resource.FeatureCount, field);
            return new DatasetSelection(use, split, tensor(indices.ToArray(), dtype: ScalarType.Int64, device: split.Features.device));
        }
        catch
        {
            use.Dispose();
            throw;
        }
    }

    public void CheckElements(long elements, string field)
    {
        if (elements > options.Value.MaxElementsPerRequest)
            throw new LimitExceededException(ErrorReasons.RequestTooLarge, field,
                $"{field}: {elements} elements exceed the server's limit of {options.Value.MaxElementsPerRequest} per request (KernelService:MaxElementsPerRequest)");
    }

    /// <summary>Inline support images, which must have the dataset's feature count (and image shape, when sent as images).</summary>
    public InlineImages Support(Protos.Kernel.V1.Tensor? message, RegisteredDataset dataset)
    {
        var support = Images(message, "support");
        if (support.Rows.shape[1] != dataset.FeatureCount)
            throw new InvalidFieldException("support", $"has {support.Rows.shape[1]} features, the dataset has {dataset.FeatureCount}");
        if (support.Shape.Length > 2 && dataset.ImageShape.Count > 0 && !support.Shape.Skip(1).SequenceEqual(dataset.ImageShape))
            throw new InvalidFieldException("support.shape", $"images are [{string.Join(",", support.Shape.Skip(1))}], the dataset's are [{string.Join(",", dataset.ImageShape)}]");
        return support;
    }

    public static void SameFeatures(Tensor a, string fieldA, Tensor b, string fieldB)
    {
        if (a.shape[1] != b.shape[1])
            throw new InvalidFieldException(fieldB, $"has {b.shape[1]} features but {fieldA} has {a.shape[1]}");
    }
}
