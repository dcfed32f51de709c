using Distill.Core.Data;
using Distill.Core.Errors;
using static TorchSharp.torch;

namespace Distill.Core.Distillation;

/// <summary>The support set a distillation starts from: class-balanced real images, or noise.</summary>
public static class InitialSupport
{
    /// <summary>The images (n x d) and their classes, the same for the same seed on every device.</summary>
    /// <exception cref="InvalidFieldException">a class has fewer training images than asked for.</exception>
    public static (Tensor Images, int[] Classes) Draw(PreparedDataset data, int supportPerClass, SupportInitialization initialization, int seed)
    {
        var classes = Enumerable.Range(0, data.ClassCount).SelectMany(c => Enumerable.Repeat(c, supportPerClass)).ToArray();
        if (initialization == SupportInitialization.Noise)
        {
            var generator = new Generator((ulong)TargetSampler.StreamSeed(seed, -1, 1));
            // Drawn on the host so that every device starts from the same support set.
            return (randn(classes.Length, data.TrainImages.shape[1], dtype: ScalarType.Float64, generator: generator).to(data.TrainImages.device), classes);
        }

        var sampler = new TargetSampler(data.TrainLabels, data.ClassCount, seed);
        var indices = sampler.Sample(classes.Length, step: -1, stream: 1);
        var drawn = indices.Select(i => data.TrainLabels[i]).ToArray();
        for (int c = 0; c < data.ClassCount; c++)
            if (drawn.Count(x => x == c) < supportPerClass)
                throw new InvalidFieldException("support_per_class", $"class {c} has only {drawn.Count(x => x == c)} training images, {supportPerClass} requested");
        return (data.TrainImages.index_select(0, tensor(indices, dtype: ScalarType.Int64, device: data.TrainImages.device)), drawn);
    }
}
