using System.Globalization;
using Distill.Core.Checkpoints;
using Distill.Core.Errors;
using Distill.Core.Output;
using Distill.Core.Runs;
using Distill.DistillerService.Datasets;
using Distill.DistillerService.Runs;
using Distill.DistillerService.Snapshots;
using Distill.Protos.Distiller.V1;

namespace Distill.DistillerService.Export;

/// <summary>
/// The files of a run's distilled set: at a snapshot's step, or what a finished run wrote,
/// or for a run still in progress (or stopped) the same files made from its latest
/// checkpoint. The file name a client sees is made here, from the run and the step.
/// </summary>
public sealed class RunExporter(RunStore store, RunSnapshots snapshots, DatasetCache datasets)
{
    public sealed record ExportFile(string Path, string FileName);

    public async Task<ExportFile> FileAsync(Run run, ExportFormat format, long? step)
    {
        var id = RunNames.Id(run.Name);
        var folder = store.RunFolder(id);
        string distilled;
        long at;
        string target;
        // A feature-pool run's checkpoint is not a KIP state; it writes a snapshot with each one.
        if (step is null && run.State != RunState.Succeeded && run.Spec.FeaturePool is not null && snapshots.Steps(id) is [.., var newest])
            step = newest;
        if (step is { } requested)
        {
            distilled = snapshots.Require(id, requested);
            at = requested;
            target = Path.Combine(folder, "export", $"step-{requested.ToString(CultureInfo.InvariantCulture)}");
        }
        else if (run.State == RunState.Succeeded && File.Exists(Path.Combine(folder, LocalRun.DistilledFile)))
        {
            distilled = Path.Combine(folder, LocalRun.DistilledFile);
            at = run.Step;
            target = folder;
        }
        else
        {
            // The newest checkpoint that verifies, as a resume would take it.
            using var state = CheckpointFiles.LoadNewestGood(folder)
                ?? throw new StateConflictException(ErrorReasons.NoCheckpointYet, run.Name,
                    $"{run.Name} has no checkpoint yet; try again after step {Math.Max(1, run.Spec.CheckpointEvery)}");
            target = Path.Combine(folder, "export");
            using (var lease = await datasets.AcquireAsync(run.Spec))
                LocalRun.WriteOutputs(state.SupportImages, state.SupportLabels, state.SupportClasses, state.Step, state.Options, lease.Data, target);
            distilled = Path.Combine(target, LocalRun.DistilledFile);
            at = state.Step;
        }
        Directory.CreateDirectory(target);

        var baseName = $"{id}-step-{at.ToString(CultureInfo.InvariantCulture)}";
        switch (format)
        {
            case ExportFormat.Unspecified or ExportFormat.Safetensors:
                return new ExportFile(distilled, baseName + ".safetensors");
            case ExportFormat.PngGrid:
                var grid = Path.Combine(target, LocalRun.GridFile);
                if (step is not null || !File.Exists(grid)) WriteGrid(distilled, grid);
                return new ExportFile(grid, baseName + ".png");
            case ExportFormat.Npz:
                var (tensors, _) = SafetensorsFile.Read(distilled);
                var npz = Path.Combine(target, "distilled.npz");
                NpzFile.Write(npz, tensors);
                return new ExportFile(npz, baseName + ".npz");
            default:
                throw new InvalidFieldException("format", $"unknown export format {(int)format}");
        }
    }

    /// <summary>The PNG grid of a distilled set's pixel-space images.</summary>
    private static void WriteGrid(string distilled, string grid)
    {
        var (tensors, _) = SafetensorsFile.Read(distilled);
        var pixels = tensors["images_pixels"];
        var labels = tensors["labels"];
        var classes = tensors["classes"].ToLongs().Select(c => (int)c).ToArray();
        int channels = (int)pixels.Shape[1], height = (int)pixels.Shape[2], width = (int)pixels.Shape[3];
        ImageGrid.WritePng(grid, pixels.ToFloats(), classes, channels, height, width, (int)labels.Shape[1],
            scale: Math.Max(1, 64 / Math.Max(height, width)));
    }
}
