using System.Globalization;
using System.Text.Json;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Output;
using static TorchSharp.torch;

namespace Distill.Core.FeaturePool;

/// <summary>
/// What a feature-pool run needs to continue: the distiller's tensors (support images and
/// labels, Platt's scale, the Adam moments, the best validated support) and the run's record
/// (baseline evaluation, curve, training time). The pool is not saved: its networks and
/// features are a pure function of the options, recomputed on resume. A safetensors file of
/// float64 tensors with JSON metadata, written like KIP checkpoints (see CheckpointFiles).
/// </summary>
public sealed class FeaturePoolCheckpoint : IDisposable
{
    private const string Kind = "feature-pool-checkpoint";
    /// <summary>KIP's JSON conventions, with NaN allowed (curve points without a validation).</summary>
    internal static readonly JsonSerializerOptions Json = new(KipState.Json) { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public required long Step { get; init; }
    public required long BestStep { get; init; }
    public required double BestValidationAccuracy { get; init; }
    /// <summary>Named tensors of the distiller (see <see cref="FeaturePoolDistiller.Capture"/>).</summary>
    public required IReadOnlyDictionary<string, Tensor> Tensors { get; init; }
    public required PoolEvaluation Baseline { get; init; }
    public required IReadOnlyList<PoolCurvePoint> Curve { get; init; }
    public required double TrainingSeconds { get; init; }
    public required FeaturePoolOptions Options { get; init; }
    public required string DatasetName { get; init; }
    public required long TrainCount { get; init; }

    public void Save(string path, string? keepPreviousAs = null)
    {
        var tensors = Tensors.ToDictionary(kv => kv.Key, kv => KipState.ToSafetensors(kv.Value));
        SafetensorsFile.Write(path, tensors, new Dictionary<string, string>
        {
            ["distill.kind"] = Kind,
            ["distill.step"] = Step.ToString(CultureInfo.InvariantCulture),
            ["distill.best_step"] = BestStep.ToString(CultureInfo.InvariantCulture),
            ["distill.best_validation"] = BestValidationAccuracy.ToString("R", CultureInfo.InvariantCulture),
            ["distill.baseline"] = JsonSerializer.Serialize(Baseline, Json),
            ["distill.curve"] = JsonSerializer.Serialize(Curve, Json),
            ["distill.training_seconds"] = TrainingSeconds.ToString("R", CultureInfo.InvariantCulture),
            ["distill.options"] = JsonSerializer.Serialize(Options, Json),
            ["distill.dataset"] = DatasetName,
            ["distill.train_count"] = TrainCount.ToString(CultureInfo.InvariantCulture),
        }, keepPreviousAs);
    }

    public static FeaturePoolCheckpoint Load(string path)
    {
        var (tensors, metadata) = SafetensorsFile.Read(path);
        string Meta(string key) => metadata.TryGetValue(key, out var value) ? value : throw new InvalidDataException($"{path}: checkpoint metadata lacks '{key}'");
        if (Meta("distill.kind") != Kind) throw new InvalidDataException($"{path}: not a feature-pool checkpoint");
        T Parse<T>(string key) => JsonSerializer.Deserialize<T>(Meta(key), Json) ?? throw new InvalidDataException($"{path}: empty '{key}'");
        return new FeaturePoolCheckpoint
        {
            Step = long.Parse(Meta("distill.step"), CultureInfo.InvariantCulture),
            BestStep = long.Parse(Meta("distill.best_step"), CultureInfo.InvariantCulture),
            BestValidationAccuracy = double.Parse(Meta("distill.best_validation"), CultureInfo.InvariantCulture),
            Tensors = tensors.ToDictionary(kv => kv.Key, kv => KipState.FromSafetensors(kv.Value)),
            Baseline = Parse<PoolEvaluation>("distill.baseline"),
            Curve = Parse<List<PoolCurvePoint>>("distill.curve"),
            TrainingSeconds = double.Parse(Meta("distill.training_seconds"), CultureInfo.InvariantCulture),
            Options = Parse<FeaturePoolOptions>("distill.options"),
            DatasetName = Meta("distill.dataset"),
            TrainCount = long.Parse(Meta("distill.train_count"), CultureInfo.InvariantCulture),
        };
    }

    /// <summary>Refuses to continue with other data or with options that change the run's course (only the step budget may change).</summary>
    public void CheckCompatible(PreparedDataset data, FeaturePoolOptions options)
    {
        if (DatasetName != data.Name || TrainCount != data.TrainImages.shape[0])
            throw new ArgumentException($"checkpoint belongs to dataset '{DatasetName}' with {TrainCount} training images, not '{data.Name}' with {data.TrainImages.shape[0]}");
        if (Options with { Steps = 0 } != options with { Steps = 0 })
            throw new ArgumentException($"checkpoint was made with other options: {JsonSerializer.Serialize(Options, Json)}");
    }

    public void Dispose()
    {
        foreach (var t in Tensors.Values) t.Dispose();
    }
}
