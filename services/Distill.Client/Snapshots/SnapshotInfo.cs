namespace Distill.Client;

/// <summary>
/// The support set kept at one checkpoint. The tensors are null in the basic view (lists);
/// the full view carries them.
/// </summary>
/// <param name="Name">runs/{run}/snapshots/{step}</param>
/// <param name="Images">Pixel space (preprocessing inverted), N x C x H x W.</param>
/// <param name="PreprocessedImages">As the kernels see them, N x C x H x W.</param>
/// <param name="Labels">Learned labels, N x classes.</param>
/// <param name="Classes">The class each image was initialised from.</param>
public sealed record SnapshotInfo(
    string Name,
    long Step,
    DateTimeOffset Time,
    TensorData? Images,
    TensorData? PreprocessedImages,
    TensorData? Labels,
    IReadOnlyList<int> Classes,
    IReadOnlyList<string> ClassNames);
