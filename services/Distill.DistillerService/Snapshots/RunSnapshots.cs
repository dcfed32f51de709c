using System.Globalization;
using Distill.Core.Errors;
using Distill.Core.Output;
using Distill.Core.Runs;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Distill.Protos.Kernel.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using TensorMessage = Distill.Protos.Kernel.V1.Tensor;

namespace Distill.DistillerService.Snapshots;

/// <summary>A run's snapshots as the engine wrote them: runs/ID/snapshots/step-N.safetensors.</summary>
public sealed class RunSnapshots(RunStore store)
{
    public string Folder(string runId) => Path.Combine(store.RunFolder(runId), LocalRun.SnapshotsFolder);

    public IReadOnlyList<long> Steps(string runId) => LocalRun.SnapshotSteps(Folder(runId));

    /// <summary>The snapshot file at a step; NOT_FOUND (SNAPSHOT_NOT_FOUND) when there is none.</summary>
    public string Require(string runId, long step)
    {
        var path = Path.Combine(Folder(runId), LocalRun.SnapshotFileName(step));
        return File.Exists(path) ? path : throw RunNames.SnapshotNotFound(runId, step);
    }

    /// <summary>The snapshot message; with tensors when <paramref name="full"/>.</summary>
    public Snapshot Read(string runId, long step, bool full)
    {
        var path = Require(runId, step);
        var snapshot = new Snapshot
        {
            Name = RunNames.SnapshotName(runId, step), Step = step,
            CreateTime = Timestamp.FromDateTime(File.GetLastWriteTimeUtc(path)),
        };
        if (!full) return snapshot;
        var (tensors, metadata) = SafetensorsFile.Read(path);
        snapshot.Images = Message(tensors["images_pixels"]);
        snapshot.PreprocessedImages = Message(tensors["images"]);
        snapshot.Labels = Message(tensors["labels"]);
        snapshot.Classes.AddRange(tensors["classes"].ToLongs().Select(c => (int)c));
        if (metadata.TryGetValue("distill.class_names", out var names) && names.Length > 0) snapshot.ClassNames.AddRange(names.Split(','));
        return snapshot;
    }

    private static TensorMessage Message(SafetensorsTensor tensor) => tensor.DType == "F32"
        ? new TensorMessage { Dtype = DataType.Float32, Shape = { tensor.Shape }, Data = ByteString.CopyFrom(tensor.Data) }
        : throw new InvalidOperationException($"snapshot tensor of type {tensor.DType}, expected F32");

    public static string StepText(long step) => step.ToString(CultureInfo.InvariantCulture);
}
