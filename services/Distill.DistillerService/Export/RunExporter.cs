using Distill.Core.Distillation;
using Distill.Core.Output;
using Distill.Core.Runs;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;

namespace Distill.DistillerService.Export;

/// <summary>
/// The files of a run's distilled set: what a finished run wrote, or for a run still in
/// progress (or stopped), the same files made from its latest checkpoint.
/// </summary>
public sealed class RunExporter(RunStore store, RunSupervisor supervisor)
{
    public async Task<string> FileAsync(Run run, ExportFormat format)
    {
        var folder = store.RunFolder(run.Id);
        var checkpoint = Path.Combine(folder, LocalRun.CheckpointFile);
        var finished = run.State == RunState.Succeeded && File.Exists(Path.Combine(folder, LocalRun.DistilledFile));
        if (!finished && !File.Exists(checkpoint))
            throw new InvalidOperationException($"run_id: run {run.Id} has no checkpoint yet; try again after step {Math.Max(1, run.Spec.CheckpointEvery)}");

        var source = folder;
        if (!finished)
        {
            source = Path.Combine(folder, "export");
            using var state = KipState.Load(checkpoint);
            var data = await supervisor.DatasetAsync(run.Spec);
            LocalRun.WriteOutputs(state.SupportImages, state.SupportLabels, state.SupportClasses, state.Step, state.Options, data, source);
        }

        switch (format)
        {
            case ExportFormat.Unspecified or ExportFormat.Safetensors:
                return Path.Combine(source, LocalRun.DistilledFile);
            case ExportFormat.PngGrid:
                return Path.Combine(source, LocalRun.GridFile);
            case ExportFormat.Npz:
                var (tensors, _) = SafetensorsFile.Read(Path.Combine(source, LocalRun.DistilledFile));
                var npz = Path.Combine(source, "distilled.npz");
                NpzFile.Write(npz, tensors);
                return npz;
            default:
                throw new ArgumentException($"format: unknown export format {(int)format}", "format");
        }
    }
}
