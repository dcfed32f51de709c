using Distill.Core.Data;
using Distill.Core.Errors;
using Distill.Core.Output;

namespace Distill.Fuzz.Readers;

/// <summary>Every file reader of the engine, by the name fuzz.sh and the corpus folders use.</summary>
public static class ReaderTargets
{
    /// <summary>
    /// What the services pass: a budget, so that a header declaring more than fits is refused
    /// (LimitExceededException) instead of being allocated. Small here, so that fuzzing stays
    /// within memory; the refusal path is the same at any size.
    /// </summary>
    private const long MaxValues = 1 << 24;

    private static DatasetReadBudget Budget() => new(MaxValues, "Fuzz:MaxDatasetElements");

    private static readonly Type[] DatasetErrors = [typeof(DatasetFormatException), typeof(LimitExceededException)];

    // SafetensorsFile documents InvalidDataException for a file that is not what it claims.
    private static readonly Type[] SafetensorsErrors = [typeof(InvalidDataException)];

    public static IReadOnlyList<ReaderTarget> All { get; } =
    [
        // IDX: an image file and a label file (each may be gzipped: the reader sniffs the magic).
        new("idx", (input, scratch) =>
        {
            var parts = InputParts.Split(input, 2);
            IdxReader.Read(scratch.Write("images-idx3-ubyte", parts[0]), scratch.Write("labels-idx1-ubyte", parts[1]), budget: Budget());
        }, DatasetErrors),
        new("cifar10", (input, scratch) => CifarBinaryReader.ReadCifar10([scratch.Write("data_batch_1.bin", input)], budget: Budget()), DatasetErrors),
        new("cifar100", (input, scratch) => CifarBinaryReader.ReadCifar100(scratch.Write("train.bin", input), budget: Budget()), DatasetErrors),
        // Image folder: one train and one test image of one class, through the SkiaSharp decode path
        // (the format is sniffed from the bytes, whatever the extension).
        new("image-folder", (input, scratch) =>
        {
            var parts = InputParts.Split(input, 2);
            scratch.Write("data/train/a/0.png", parts[0]);
            scratch.Write("data/test/a/0.jpg", parts[1]);
            ImageFolderReader.Read(Path.Combine(scratch.Root, "data"), "fuzz", Budget());
        }, DatasetErrors),
        // Checkpoints, snapshots and exports are read back with SafetensorsFile.Read.
        new("safetensors", (input, scratch) =>
        {
            var (tensors, _) = SafetensorsFile.Read(scratch.Write("checkpoint.safetensors", input));
            foreach (var tensor in tensors.Values) Values(tensor);
        }, SafetensorsErrors),
        // The .npz export: a distilled safetensors file read and rewritten as .npz (RunExporter).
        new("npz", (input, scratch) =>
        {
            var (tensors, _) = SafetensorsFile.Read(scratch.Write("distilled.safetensors", input));
            NpzFile.Write(Path.Combine(scratch.Root, "distilled.npz"), tensors);
        }, SafetensorsErrors),
    ];

    public static ReaderTarget? Find(string name) => All.FirstOrDefault(target => target.Name == name);

    /// <summary>The tensor's values, as the checkpoint loader takes them.</summary>
    private static Array Values(SafetensorsTensor tensor) => tensor.DType switch
    {
        "F32" => tensor.ToFloats(),
        "F64" => tensor.ToDoubles(),
        "I64" => tensor.ToLongs(),
        _ => tensor.Data,
    };
}
