using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Distill.Core.Data;
using Distill.Core.Output;
using static TorchSharp.torch;

namespace Distill.Core.Distillation;

/// <summary>
/// Everything needed to continue a KIP run: step, support set, labels and Adam moments,
/// plus the options and dataset identity it belongs to. Saved as a safetensors file
/// (float64 tensors, options as JSON metadata), written atomically.
/// </summary>
public sealed record KipState(
    long Step,
    Tensor SupportImages,
    Tensor SupportLabels,
    int[] SupportClasses,
    (Tensor First, Tensor Second) ImageMoments,
    (Tensor First, Tensor Second)? LabelMoments,
    KipOptions Options,
    string DatasetName,
    long TrainCount) : IDisposable
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    /// <summary>Writes the checkpoint; the file it replaces becomes <paramref name="keepPreviousAs"/> when given.</summary>
    public void Save(string path, string? keepPreviousAs = null)
    {
        var tensors = new Dictionary<string, SafetensorsTensor>
        {
            ["support_images"] = ToSafetensors(SupportImages),
            ["support_labels"] = ToSafetensors(SupportLabels),
            ["support_classes"] = SafetensorsTensor.FromLongs(SupportClasses.Select(c => (long)c).ToArray(), SupportClasses.Length),
            ["adam_images_m"] = ToSafetensors(ImageMoments.First),
            ["adam_images_v"] = ToSafetensors(ImageMoments.Second),
        };
        if (LabelMoments is { } moments)
        {
            tensors["adam_labels_m"] = ToSafetensors(moments.First);
            tensors["adam_labels_v"] = ToSafetensors(moments.Second);
        }
        SafetensorsFile.Write(path, tensors, new Dictionary<string, string>
        {
            ["distill.kind"] = "kip-checkpoint",
            ["distill.step"] = Step.ToString(CultureInfo.InvariantCulture),
            ["distill.options"] = JsonSerializer.Serialize(Options, Json),
            ["distill.dataset"] = DatasetName,
            ["distill.train_count"] = TrainCount.ToString(CultureInfo.InvariantCulture),
        }, keepPreviousAs);
    }

    public static KipState Load(string path)
    {
        var (tensors, metadata) = SafetensorsFile.Read(path);
        string Meta(string key) => metadata.TryGetValue(key, out var value) ? value : throw new InvalidDataException($"{path}: checkpoint metadata lacks '{key}'");
        SafetensorsTensor Tensor(string key) => tensors.TryGetValue(key, out var value) ? value : throw new InvalidDataException($"{path}: checkpoint lacks tensor '{key}'");
        if (Meta("distill.kind") != "kip-checkpoint")
            throw new InvalidDataException($"{path}: not a KIP checkpoint");
        (Tensor, Tensor)? labelMoments = tensors.ContainsKey("adam_labels_m")
            ? (FromSafetensors(Tensor("adam_labels_m")), FromSafetensors(Tensor("adam_labels_v")))
            : null;
        return new KipState(
            long.Parse(Meta("distill.step"), CultureInfo.InvariantCulture),
            FromSafetensors(Tensor("support_images")),
            FromSafetensors(Tensor("support_labels")),
            Tensor("support_classes").ToLongs().Select(c => (int)c).ToArray(),
            (FromSafetensors(Tensor("adam_images_m")), FromSafetensors(Tensor("adam_images_v"))),
            labelMoments,
            JsonSerializer.Deserialize<KipOptions>(Meta("distill.options"), Json) ?? throw new InvalidDataException($"{path}: empty options"),
            Meta("distill.dataset"),
            long.Parse(Meta("distill.train_count"), CultureInfo.InvariantCulture));
    }

    /// <summary>Refuses to continue a run with other data or with options that change its course.</summary>
    public void CheckCompatible(PreparedDataset data, KipOptions options)
    {
        if (DatasetName != data.Name || TrainCount != data.TrainImages.shape[0])
            throw new ArgumentException($"checkpoint belongs to dataset '{DatasetName}' with {TrainCount} training images, not '{data.Name}' with {data.TrainImages.shape[0]}");
        // The step budget and reporting cadence may change on resume; nothing else may.
        var mine = Options with { Steps = 0, EvaluateEvery = 0, CheckpointEvery = 0 };
        var theirs = options with { Steps = 0, EvaluateEvery = 0, CheckpointEvery = 0 };
        if (mine != theirs)
            throw new ArgumentException($"checkpoint was made with other options: {JsonSerializer.Serialize(Options, Json)}");
    }

    /// <summary>A float64 tensor as a safetensors entry; with <see cref="FromSafetensors"/>, what every checkpoint here stores.</summary>
    internal static SafetensorsTensor ToSafetensors(Tensor t) =>
        SafetensorsTensor.FromDoubles(t.cpu().contiguous().data<double>().ToArray(), t.shape);

    internal static Tensor FromSafetensors(SafetensorsTensor t) =>
        tensor(t.ToDoubles(), t.Shape, dtype: ScalarType.Float64, device: Runtime.TorchRuntime.TorchDevice);

    public void Dispose()
    {
        SupportImages.Dispose();
        SupportLabels.Dispose();
        ImageMoments.First.Dispose();
        ImageMoments.Second.Dispose();
        LabelMoments?.First.Dispose();
        LabelMoments?.Second.Dispose();
    }
}
