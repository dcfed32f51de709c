using Distill.Core.Data;
using Distill.Protos.Kernel.V1;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.KernelService.Datasets;

/// <summary>One split of a registered dataset: preprocessed feature rows, centred one-hot targets, labels.</summary>
public sealed record RegisteredSplit(Tensor Features, Tensor Targets, int[] Labels)
{
    public long Count => Features.shape[0];
}

/// <summary>A dataset held by the service and addressed by id; targets never travel per step.</summary>
public sealed class RegisteredDataset : IDisposable
{
    private readonly IDisposable? _owner;

    public RegisteredDataset(string id, string name, int classCount, RegisteredSplit train, RegisteredSplit test,
        IReadOnlyList<long> imageShape, IReadOnlyDictionary<string, string> preprocessing, IDisposable? owner = null)
    {
        Id = id;
        Name = name;
        ClassCount = classCount;
        Train = train;
        Test = test;
        ImageShape = imageShape;
        Preprocessing = preprocessing;
        _owner = owner;
    }

    public string Id { get; }
    public string Name { get; }
    public int ClassCount { get; }
    public RegisteredSplit Train { get; }
    public RegisteredSplit Test { get; }
    public IReadOnlyList<long> ImageShape { get; }
    public IReadOnlyDictionary<string, string> Preprocessing { get; }
    public long FeatureCount => Train.Features.shape[1];
    public long ElementCount => (Train.Count + Test.Count) * (FeatureCount + ClassCount);

    public RegisteredSplit Split(Split split) => split == Protos.Kernel.V1.Split.Test ? Test : Train;

    public static RegisteredDataset FromPrepared(string id, PreparedDataset data) => new(
        id, data.Name, data.ClassCount,
        new RegisteredSplit(data.TrainImages, data.TrainTargets, data.TrainLabels),
        new RegisteredSplit(data.TestImages, data.TestTargets, data.TestLabels),
        [data.Preprocessor.Channels, data.Preprocessor.Height, data.Preprocessor.Width],
        data.Preprocessor.Describe(), owner: data);

    public DatasetInfo ToInfo()
    {
        var info = new DatasetInfo
        {
            DatasetId = Id, Name = Name, TrainCount = Train.Count, TestCount = Test.Count,
            FeatureCount = FeatureCount, ClassCount = ClassCount,
        };
        info.ImageShape.AddRange(ImageShape);
        foreach (var (key, value) in Preprocessing) info.Preprocessing[key] = value;
        return info;
    }

    public void Dispose()
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
}
