using Distill.Core.Data;
using static TorchSharp.torch;

namespace Distill.Core.Transfer;

/// <summary>
/// What a transfer evaluation scores on, from a prepared dataset: held-out training images
/// for early stopping, and the test split or a fixed class-balanced part of it. Both are
/// drawn from fixed seeds, so every evaluation of every set sees the same images.
/// </summary>
public sealed class TransferSets : IDisposable
{
    /// <summary>Seed of the class-balanced test part (<c>maxTest</c>), the same for every set scored.</summary>
    public const int TestSubsetSeed = 12345;

    private readonly List<Tensor> _owned;

    private TransferSets(LabeledTensor? heldOut, LabeledTensor test, List<Tensor> owned) => (HeldOut, Test, _owned) = (heldOut, test, owned);

    public LabeledTensor? HeldOut { get; }
    public LabeledTensor Test { get; }

    /// <param name="heldOutIndex">Training images to hold out (empty: none); see <see cref="ClassBalancedSplit"/>.</param>
    /// <param name="maxTest">Score on this many test images, class-balanced; null or at least the split's size: all.</param>
    public static TransferSets For(PreparedDataset data, int[] heldOutIndex, int? maxTest)
    {
        var owned = new List<Tensor>();
        LabeledTensor Rows(Tensor images, int[] labels, int[] index)
        {
            using var rows = tensor(index.Select(i => (long)i).ToArray(), device: images.device);
            var selected = images.index_select(0, rows);
            owned.Add(selected);
            return new LabeledTensor(selected, index.Select(i => labels[i]).ToArray());
        }

        var heldOut = heldOutIndex.Length > 0 ? Rows(data.TrainImages, data.TrainLabels, heldOutIndex) : null;
        var test = new LabeledTensor(data.TestImages, data.TestLabels);
        if (maxTest is { } max && max < data.TestLabels.Length)
            test = Rows(data.TestImages, data.TestLabels, ClassBalancedSplit.Draw(data.TestLabels, data.ClassCount, max, 0, TestSubsetSeed).First);
        return new TransferSets(heldOut, test, owned);
    }

    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
    }
}
