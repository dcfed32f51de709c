using Distill.Core.Distillation;
using Distill.Core.Runs;
using Distill.DistillerService.Export;
using Distill.DistillerService.Runs;
using Distill.Protos.Distiller.V1;
using Google.Protobuf;
using Grpc.Core;
using RunEvent = Distill.Protos.Distiller.V1.RunEvent;

namespace Distill.DistillerService.Grpc;

/// <summary>Maps distiller messages to the <see cref="RunSupervisor"/>, the store and the exporter.</summary>
public sealed class DistillerGrpcService(RunSupervisor supervisor, RunStore store, RunEventHub hub, RunExporter exporter)
    : Distiller.DistillerBase
{
    private const int ChunkBytes = 1 << 20;

    public override Task<Run> StartRun(StartRunRequest request, ServerCallContext context) =>
        Task.FromResult(supervisor.Start(request.Spec ?? throw new ArgumentException("spec: required", "spec")));

    public override Task<Run> GetRun(GetRunRequest request, ServerCallContext context) => Task.FromResult(supervisor.Require(request.RunId));

    public override Task<ListRunsResponse> ListRuns(ListRunsRequest request, ServerCallContext context) =>
        Task.FromResult(new ListRunsResponse { Runs = { store.List() } });

    public override Task<Run> CancelRun(CancelRunRequest request, ServerCallContext context) => Task.FromResult(supervisor.Cancel(request.RunId));

    public override Task<Run> ResumeRun(ResumeRunRequest request, ServerCallContext context) =>
        Task.FromResult(supervisor.Resume(request.RunId, request.Steps));

    public override Task<DeleteRunResponse> DeleteRun(DeleteRunRequest request, ServerCallContext context)
    {
        supervisor.Delete(request.RunId);
        return Task.FromResult(new DeleteRunResponse());
    }

    public override async Task WatchRun(WatchRunRequest request, IServerStreamWriter<RunEvent> responseStream, ServerCallContext context)
    {
        var run = supervisor.Require(request.RunId);
        // Subscribe before reading history so that nothing falls between the two.
        using var subscription = hub.Subscribe(run.Id, out var live);
        var last = request.AfterSequence;
        foreach (var past in store.Events(run.Id, last))
        {
            await responseStream.WriteAsync(past, context.CancellationToken);
            last = past.Sequence;
            if (IsEnd(past)) return;
        }
        if (RunSupervisor.IsTerminal(supervisor.Require(run.Id).State) && store.Events(run.Id, last).Count == 0) return;
        await foreach (var next in live.ReadAllAsync(context.CancellationToken))
        {
            if (next.Sequence <= last) continue;
            await responseStream.WriteAsync(next, context.CancellationToken);
            last = next.Sequence;
            if (IsEnd(next)) return;
        }
    }

    public override async Task ExportRun(ExportRunRequest request, IServerStreamWriter<FileChunk> responseStream, ServerCallContext context)
    {
        var run = supervisor.Require(request.RunId);
        var path = await exporter.FileAsync(run, request.Format);
        await using var file = File.OpenRead(path);
        var buffer = new byte[ChunkBytes];
        var first = true;
        int read;
        while ((read = await file.ReadAsync(buffer, context.CancellationToken)) > 0 || first)
        {
            var chunk = new FileChunk { Data = ByteString.CopyFrom(buffer, 0, read) };
            if (first)
            {
                chunk.FileName = $"{run.Id}-{Path.GetFileName(path)}";
                chunk.TotalBytes = file.Length;
                first = false;
            }
            await responseStream.WriteAsync(chunk, context.CancellationToken);
            if (read == 0) break;
        }
    }

    public override async Task<EvaluateResponse> Evaluate(EvaluateRequest request, ServerCallContext context)
    {
        var run = supervisor.Require(request.RunId);
        var checkpoint = Path.Combine(store.RunFolder(run.Id), LocalRun.CheckpointFile);
        if (!File.Exists(checkpoint))
            throw new InvalidOperationException($"run_id: run {run.Id} has no checkpoint to evaluate yet");
        using var state = KipState.Load(checkpoint);
        var kernel = request.Kernel is null ? state.Options.Kernel : RunSpecs.Kernel(request.Kernel);
        var data = await supervisor.DatasetAsync(run.Spec);
        var backend = supervisor.Backend(run.Spec, kernel, state.Options.Regularization, data.TrainImages.shape[0], run.Id);
        var result = await backend.EvaluateAsync(state.SupportImages, state.SupportLabels, context.CancellationToken);
        return new EvaluateResponse { TestAccuracy = result.Accuracy, TestMse = result.Mse, Step = state.Step };
    }

    private static bool IsEnd(RunEvent e) => e.EventCase == RunEvent.EventOneofCase.State && RunSupervisor.IsTerminal(e.State.State);
}
