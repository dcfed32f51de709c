using Distill.Core.Distillation;
using Distill.Core.Preprocessing;
using Distill.Adapters.Conversions;
using Distill.Protos.Distiller.V1;
using Distill.Protos.Kernel.V1;
using CoreKernels = Distill.Core.Kernels;

namespace Distill.DistillerService.Runs;

/// <summary>Run specs to engine options, with the API's defaults and errors that name the spec's field.</summary>
public static class RunSpecs
{
    public static KipOptions ToOptions(RunSpec spec)
    {
        var options = new KipOptions
        {
            Method = spec.Method switch
            {
                Method.Unspecified or Method.Kip => DistillationMethod.Kip,
                Method.LabelSolve => DistillationMethod.LabelSolve,
                _ => throw Invalid("method", $"unknown method {(int)spec.Method}"),
            },
            Kernel = Kernel(spec.Kernel),
            SupportPerClass = spec.SupportPerClass,
            Steps = spec.Steps,
            LearningRate = spec.LearningRate == 0 ? 0.01 : spec.LearningRate,
            TargetBatch = spec.TargetBatch == 0 ? 5000 : spec.TargetBatch,
            LearnLabels = !spec.FixedLabels,
            Initialization = spec.Initialization switch
            {
                Initialization.Unspecified or Initialization.Real => SupportInitialization.Real,
                Initialization.Noise => SupportInitialization.Noise,
                _ => throw Invalid("initialization", $"unknown initialization {(int)spec.Initialization}"),
            },
            Regularization = spec.Regularization == 0 ? 1e-6 : spec.Regularization,
            Seed = spec.Seed,
            EvaluateEvery = spec.EvaluateEvery,
            CheckpointEvery = spec.CheckpointEvery == 0 ? 50 : spec.CheckpointEvery,
        };
        if (string.IsNullOrWhiteSpace(spec.Dataset)) throw Invalid("dataset", "required (a folder under the data root)");
        try { return options.Validate(); }
        catch (ArgumentException e) { throw Invalid(e.ParamName ?? "", e.Message.Split(" (Parameter")[0].Replace("kernel.", "", StringComparison.Ordinal), prefix: false); }
    }

    public static PreprocessingSpec Preprocessing(RunSpec spec) => spec.Preprocessing.ToCore("spec.preprocessing");

    /// <summary>The preprocessing message that kernel services register the dataset with (defaults made explicit).</summary>
    public static Protos.Kernel.V1.Preprocessing PreprocessingMessage(RunSpec spec) => Preprocessing(spec).ToMessage();

    public static CoreKernels.KernelSpec Kernel(Protos.Kernel.V1.KernelSpec? message) => message.ToCore("spec.kernel");

    private static ArgumentException Invalid(string field, string problem, bool prefix = true) =>
        new(prefix ? $"spec.{field}: {problem}" : $"spec.{problem}", $"spec.{field}");
}
