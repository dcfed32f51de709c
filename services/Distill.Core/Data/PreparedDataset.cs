using Distill.Core.Distillation;
using Distill.Core.Preprocessing;
using static TorchSharp.torch;

namespace Distill.Core.Data;

/// <summary>
/// A dataset ready for the kernels: preprocessed float64 feature rows and centred
/// one-hot targets for both splits, and the fitted preprocessor that made them.
/// </summary>
public sealed class PreparedDataset : IDisposable
{
    private PreparedDataset(ImageDataset source, Preprocessor preprocessor)
    {
        Source = source;
        Preprocessor = preprocessor;
        TrainImages = preprocessor.Apply(source.Train);
        TrainTargets = CenteredOneHot.Encode(source.Train.Labels, source.Train.ClassCount);
        TestImages = preprocessor.Apply(source.Test);
        TestTargets = CenteredOneHot.Encode(source.Test.Labels, source.Test.ClassCount);
    }

    public ImageDataset Source { get; }
    public Preprocessor Preprocessor { get; }
    public Tensor TrainImages { get; }
    public Tensor TrainTargets { get; }
    public Tensor TestImages { get; }
    public Tensor TestTargets { get; }

    public string Name => Source.Name;
    public int ClassCount => Source.Train.ClassCount;
    public int[] TrainLabels => Source.Train.Labels;
    public int[] TestLabels => Source.Test.Labels;

    public static PreparedDataset Prepare(ImageDataset dataset, PreprocessingSpec spec)
    {
        var train = dataset.Train;
        var test = dataset.Test;
        if (train.Channels != test.Channels || train.Height != test.Height || train.Width != test.Width)
            throw new ArgumentException($"{dataset.Name}: train images are {train.Channels}x{train.Height}x{train.Width} but test images are {test.Channels}x{test.Height}x{test.Width}");
        if (train.ClassCount != test.ClassCount)
            throw new ArgumentException($"{dataset.Name}: train has {train.ClassCount} classes, test has {test.ClassCount}");
        return new PreparedDataset(dataset, Preprocessor.Fit(train, spec));
    }

    public void Dispose()
    {
        TrainImages.Dispose();
        TrainTargets.Dispose();
        TestImages.Dispose();
        TestTargets.Dispose();
        Preprocessor.Dispose();
    }
}
