using Distill.Adapters.Conversions;
using Distill.Core.Data;
using Distill.Core.Preprocessing;
using Distill.Protos.Kernel.V1;
using Distill.KernelService.Leases;
using Google.Protobuf.WellKnownTypes;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.KernelService.Datasets;

/// <summary>One split of a registered dataset: preprocessed feature rows, centred one-hot targets, labels.</summary>
public sealed record RegisteredSplit(Tensor Features, Tensor Targets, int[] Labels)
{
    // From the managed labels, not the tensor: a listing may describe a dataset whose tensors a drop has just freed.
    public long Count => Labels.Length;
}

/// <summary>
/// A dataset held by the service and addressed by its name; targets never travel per step.
/// Its tensors are freed as a <see cref="LeasedResource"/>'s: after a drop or expiry, once no call reads it.
/// </summary>
public sealed class RegisteredDataset : LeasedResource
{
    private readonly IDisposable? _owner;

    public RegisteredDataset(string id, string displayName, int classCount, RegisteredSplit train, RegisteredSplit test,
        IReadOnlyList<long> imageShape, IReadOnlyList<string> classNames, PreprocessingSpec? preprocessing,
        IReadOnlyDictionary<string, string> preprocessingDetails, IDisposable? owner = null)
    {
        Id = id;
        DisplayName = displayName;
        ClassCount = classCount;
        Train = train;
        Test = test;
        ImageShape = imageShape;
        ClassNames = classNames;
        PreprocessingSpec = preprocessing;
        PreprocessingDetails = preprocessingDetails;
        _owner = owner;
        FeatureCount = train.Features.shape[1];
        // Kept as values: the budget is settled after the tensors may be gone.
        ElementCount = (train.Count + test.Count) * (FeatureCount + classCount);
    }

    public const string NamePrefix = "datasets/";

    public override string Id { get; }
    public string Name => NamePrefix + Id;
    public string DisplayName { get; }
    public int ClassCount { get; }
    public RegisteredSplit Train { get; }
    public RegisteredSplit Test { get; }
    public IReadOnlyList<long> ImageShape { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public PreprocessingSpec? PreprocessingSpec { get; }
    public IReadOnlyDictionary<string, string> PreprocessingDetails { get; }
    public long FeatureCount { get; }
    public long ElementCount { get; }
    public override long Footprint => ElementCount;

    public RegisteredSplit Split(Split split) => split == Protos.Kernel.V1.Split.Test ? Test : Train;

    public static RegisteredDataset FromPrepared(string id, PreparedDataset data, PreprocessingSpec preprocessing,
        DateTimeOffset createTime, TimeSpan? leaseTtl) => new(
        id, data.Name, data.ClassCount,
        new RegisteredSplit(data.TrainImages, data.TrainTargets, data.TrainLabels),
        new RegisteredSplit(data.TestImages, data.TestTargets, data.TestLabels),
        [data.Preprocessor.Channels, data.Preprocessor.Height, data.Preprocessor.Width],
        data.Source.Train.ClassNames, preprocessing, data.Preprocessor.Describe(), owner: data)
    {
        CreateTime = createTime, LeaseTtl = leaseTtl,
    };

    protected override void Free()
    {
        if (_owner is not null)
        {
            _owner.Dispose();
            return;
        }
        Train.Features.Dispose();
        Train.Targets.Dispose();
        Test.Features.Dispose();
        Test.Targets.Dispose();
    }

    public Dataset ToMessage()
    {
        var message = new Dataset
        {
            Name = Name, DisplayName = DisplayName, TrainCount = Train.Count, TestCount = Test.Count,
            FeatureCount = FeatureCount, ClassCount = ClassCount,
            Preprocessing = PreprocessingSpec?.ToMessage(),
            CreateTime = Timestamp.FromDateTimeOffset(CreateTime),
            ExpireTime = ExpireTime is { } expire ? Timestamp.FromDateTimeOffset(expire) : null,
            LeaseTtl = LeaseTtl is { } ttl ? Duration.FromTimeSpan(ttl) : null,
        };
        message.ImageShape.AddRange(ImageShape);
        message.ClassNames.AddRange(ClassNames);
        foreach (var (key, value) in PreprocessingDetails) message.PreprocessingDetails[key] = value;
        return message;
    }
}
