using Distill.Adapters.Conversions;
using Distill.Core.Data;
using Distill.Core.Distillation;
using Distill.Core.Errors;
using Distill.Core.FeaturePool;
using Distill.Core.Preprocessing;
using Distill.Protos.Distiller.V1;
using Distill.Protos.Kernel.V1;
using CoreKernels = Distill.Core.Kernels;

namespace Distill.DistillerService.Runs;

/// <summary>
/// Run specs to engine options: the API's defaults (written here once), validation with
/// errors that name the spec's field, and the spec with every default made explicit.
/// </summary>
public static class RunSpecs
{
    public const double DefaultLearningRate = 0.01;
    public const int DefaultTargetBatch = 5000;
    public const int DefaultEvaluateEvery = 100;
    public const int DefaultCheckpointEvery = 50;
    public const double DefaultRegularization = 1e-6;

    /// <summary>The spec with every default explicit, validated; the dataset is resolved under the data root.</summary>
    public static RunSpec Normalize(RunSpec? spec, string? dataRoot)
    {
        if (spec is null) throw new InvalidFieldException("spec", "required");
        var filled = spec.Clone();
        var path = ResolveDataset(filled, dataRoot);
        if (filled.Format == DatasetFormat.Unspecified)
        {
            filled.Format = EnumMessages.ToDatasetFormat(DatasetLoader.DetectFormat(path));
            if (filled.Format == DatasetFormat.Unspecified)
                throw new InvalidFieldException("spec.dataset", $"no dataset format recognised in '{spec.Dataset}' ({DatasetLoader.SupportedLayouts})");
        }
        else
            filled.Format.ToCore("spec.format");
        if (filled.Method == Method.Unspecified) filled.Method = Method.Kip;
        if (filled.Initialization == Initialization.Unspecified) filled.Initialization = Initialization.Real;
        filled.Kernel = Kernel(filled.Kernel).ToMessage();
        filled.Preprocessing = Preprocessing(filled).ToMessage();
        if (filled.FeaturePool is { } pool)
        {
            var defaults = new FeaturePoolOptions();
            if (!filled.HasLearningRate) filled.LearningRate = defaults.LearningRate;
            if (!filled.HasTargetBatch) filled.TargetBatch = defaults.TargetBatch;
            if (!pool.HasPoolSize) pool.PoolSize = defaults.PoolSize;
            if (!pool.HasPoolSample) pool.PoolSample = defaults.PoolSample;
            if (!pool.HasWidth) pool.Width = defaults.Width;
            if (!pool.HasTargetSubset) pool.TargetSubset = defaults.TargetSubset;
            if (!pool.HasHeldOutNetworks) pool.HeldOutNetworks = defaults.HeldOutNetworks;
            if (!pool.HasValidationPerClass) pool.ValidationPerClass = defaults.ValidationPerClass;
            if (!pool.HasValidateEvery) pool.ValidateEvery = defaults.ValidateEvery;
            if (pool.Loss == Protos.Kernel.V1.PoolLoss.Unspecified) pool.Loss = Protos.Kernel.V1.PoolLoss.Mse;
            if (!pool.HasTestSubset) pool.TestSubset = 0;
        }
        if (!filled.HasLearningRate) filled.LearningRate = DefaultLearningRate;
        if (!filled.HasTargetBatch) filled.TargetBatch = DefaultTargetBatch;
        if (!filled.HasEvaluateEvery) filled.EvaluateEvery = DefaultEvaluateEvery;
        if (!filled.HasCheckpointEvery) filled.CheckpointEvery = DefaultCheckpointEvery;
        if (!filled.HasRegularization) filled.Regularization = DefaultRegularization;
        ToOptions(filled);
        if (filled.FeaturePool is not null) ToPoolOptions(filled);
        return filled;
    }

    /// <summary>The engine's field names of <see cref="FeaturePoolOptions"/> that differ from the spec's.</summary>
    private static readonly Dictionary<string, string> PoolFields = new()
    {
        ["feature_pool"] = "spec.feature_pool.pool_size",
        ["pool_sample"] = "spec.feature_pool.pool_sample",
        ["rf_width"] = "spec.feature_pool.width",
        ["pool_targets"] = "spec.feature_pool.target_subset",
        ["held_out_networks"] = "spec.feature_pool.held_out_networks",
        ["validation_per_class"] = "spec.feature_pool.validation_per_class",
        ["validate_every"] = "spec.feature_pool.validate_every",
    };

    /// <summary>The feature-pool options of a run with <c>feature_pool</c> set (after <see cref="Normalize"/>); errors name spec fields.</summary>
    public static FeaturePoolOptions ToPoolOptions(RunSpec spec)
    {
        var pool = spec.FeaturePool ?? throw new InvalidFieldException("spec.feature_pool", "required");
        var kip = ToOptions(spec);
        if (kip.Method != DistillationMethod.Kip) throw new InvalidFieldException("spec.method", "a feature pool runs KIP, not Label Solve");
        if (pool.TestSubset < 0) throw new InvalidFieldException("spec.feature_pool.test_subset", $"must not be negative, got {pool.TestSubset}");
        var defaults = new FeaturePoolOptions();
        var options = new FeaturePoolOptions
        {
            Kernel = kip.Kernel,
            PoolSize = pool.HasPoolSize ? pool.PoolSize : defaults.PoolSize,
            PoolSample = pool.HasPoolSample ? pool.PoolSample : defaults.PoolSample,
            Width = pool.HasWidth ? pool.Width : defaults.Width,
            NetworkSeed = pool.NetworkSeed,
            TargetSubset = pool.HasTargetSubset ? pool.TargetSubset : defaults.TargetSubset,
            TargetBatch = spec.HasTargetBatch ? spec.TargetBatch : defaults.TargetBatch,
            HeldOutNetworks = pool.HasHeldOutNetworks ? pool.HeldOutNetworks : defaults.HeldOutNetworks,
            ValidationPerClass = pool.HasValidationPerClass ? pool.ValidationPerClass : defaults.ValidationPerClass,
            ValidateEvery = pool.HasValidateEvery ? pool.ValidateEvery : defaults.ValidateEvery,
            SupportPerClass = kip.SupportPerClass,
            Steps = kip.Steps,
            LearningRate = spec.HasLearningRate ? spec.LearningRate : defaults.LearningRate,
            LearnLabels = kip.LearnLabels,
            Mirror = pool.Mirror,
            Initialization = kip.Initialization,
            Loss = pool.Loss.ToCore("spec.feature_pool.loss"),
            Regularization = kip.Regularization,
            Seed = kip.Seed,
        };
        try { return options.Validate(); }
        catch (InvalidFieldException e)
        {
            throw new InvalidFieldException(PoolFields.TryGetValue(e.Field, out var field) ? field : "spec." + e.Field, e.Description);
        }
    }

    /// <summary>The engine's options for a spec; every problem an <see cref="InvalidFieldException"/> naming spec.field.</summary>
    public static KipOptions ToOptions(RunSpec spec)
    {
        var method = spec.Method switch
        {
            Method.Unspecified or Method.Kip => DistillationMethod.Kip,
            Method.LabelSolve => DistillationMethod.LabelSolve,
            _ => throw new InvalidFieldException("spec.method", $"unknown method {(int)spec.Method}"),
        };
        if (string.IsNullOrWhiteSpace(spec.Dataset)) throw new InvalidFieldException("spec.dataset", "required (a folder under the data root)");
        if (method == DistillationMethod.Kip && spec.Steps < 1)
            throw new InvalidFieldException("spec.steps", $"KIP needs 1 or more steps, got {spec.Steps}");
        if (method == DistillationMethod.LabelSolve && spec.Steps != 0)
            throw new InvalidFieldException("spec.steps", $"must be unset or 0 for Label Solve, got {spec.Steps}");
        if (spec.SupportPerClass < 1) throw new InvalidFieldException("spec.support_per_class", $"must be 1 or more, got {spec.SupportPerClass}");
        var options = new KipOptions
        {
            Method = method,
            Kernel = Kernel(spec.Kernel),
            SupportPerClass = spec.SupportPerClass,
            Steps = spec.Steps,
            LearningRate = spec.HasLearningRate ? spec.LearningRate : DefaultLearningRate,
            TargetBatch = spec.HasTargetBatch ? spec.TargetBatch : DefaultTargetBatch,
            LearnLabels = !spec.FixedLabels,
            Initialization = spec.Initialization switch
            {
                Initialization.Unspecified or Initialization.Real => SupportInitialization.Real,
                Initialization.Noise => SupportInitialization.Noise,
                _ => throw new InvalidFieldException("spec.initialization", $"unknown initialization {(int)spec.Initialization}"),
            },
            Regularization = spec.HasRegularization ? spec.Regularization : DefaultRegularization,
            Seed = spec.Seed,
            EvaluateEvery = spec.HasEvaluateEvery ? spec.EvaluateEvery : DefaultEvaluateEvery,
            CheckpointEvery = spec.HasCheckpointEvery ? spec.CheckpointEvery : DefaultCheckpointEvery,
        };
        try { return options.Validate(); }
        catch (InvalidFieldException e) { throw new InvalidFieldException("spec." + e.Field, e.Description); }
    }

    public static PreprocessingSpec Preprocessing(RunSpec spec) => spec.Preprocessing.ToCore("spec.preprocessing");

    public static CoreKernels.KernelSpec Kernel(Protos.Kernel.V1.KernelSpec? message, string field = "spec.kernel") => message.ToCore(field);

    /// <summary>The dataset folder's full path under the data root.</summary>
    public static string ResolveDataset(RunSpec spec, string? dataRoot)
    {
        if (string.IsNullOrEmpty(dataRoot))
            throw new StateConflictException(ErrorReasons.DataRootNotConfigured, "Distiller:DataRoot", "the distiller has no Distiller:DataRoot configured");
        try { return DataRoot.Resolve(dataRoot, spec.Dataset); }
        catch (InvalidFieldException e) { throw new InvalidFieldException("spec.dataset", e.Description); }
    }
}
