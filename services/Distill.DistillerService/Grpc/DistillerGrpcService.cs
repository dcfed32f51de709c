using Distill.DistillerService.Datasets;
using Distill.DistillerService.Export;
using Distill.DistillerService.Kernels;
using Distill.DistillerService.Runs;
using Distill.DistillerService.Snapshots;
using Distill.Adapters.Paging;
using Distill.Core.Errors;
using Distill.Protos.Distiller.V1;
using Google.Protobuf;
using Grpc.Core;
using GeneratedService = Distill.Protos.Distiller.V1.DistillerService;
using RunEvent = Distill.Protos.Distiller.V1.RunEvent;

namespace Distill.DistillerService.Grpc;

/// <summary>Maps distiller messages to the run operations, the watcher, snapshots, export, evaluation and status.</summary>
public sealed class DistillerGrpcService(RunOperations runs, RunWatcher watcher, RunSnapshots snapshots, RunExporter exporter,
    RunEvaluator evaluator, RunTransferEvaluator transferEvaluator, KernelServiceStatuses kernelServices, DatasetFolders datasets, IHostApplicationLifetime lifetime)
    : GeneratedService.DistillerServiceBase
{
    private const int ChunkBytes = 1 << 20;

    public override Task<Run> StartRun(StartRunRequest request, ServerCallContext context) =>
        Task.FromResult(runs.Start(request.Spec, request.RequestId));

    public override Task<Run> GetRun(GetRunRequest request, ServerCallContext context) => Task.FromResult(runs.Get(request.Name));

    public override Task<ListRunsResponse> ListRuns(ListRunsRequest request, ServerCallContext context)
    {
        var page = runs.List(request);
        return Task.FromResult(new ListRunsResponse { Runs = { page.Items }, NextPageToken = page.NextPageToken, TotalSize = page.TotalSize });
    }

    public override Task<Run> CancelRun(CancelRunRequest request, ServerCallContext context) => Task.FromResult(runs.Cancel(request.Name));

    public override Task<Run> ResumeRun(ResumeRunRequest request, ServerCallContext context) =>
        Task.FromResult(runs.Resume(request.Name, request.HasSteps ? request.Steps : null));

    public override Task<DeleteRunResponse> DeleteRun(DeleteRunRequest request, ServerCallContext context)
    {
        runs.Delete(request.Name);
        return Task.FromResult(new DeleteRunResponse());
    }

    public override async Task WatchRun(WatchRunRequest request, IServerStreamWriter<RunEvent> responseStream, ServerCallContext context)
    {
        var id = RunNames.Id(request.Name);
        // A stopping host ends its watch streams (clients reconnect with after_sequence)
        // instead of holding the shutdown open until its timeout.
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        try
        {
            await foreach (var e in watcher.WatchAsync(id, request.AfterSequence, request.Follow, ended.Token))
                await responseStream.WriteAsync(e, ended.Token);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
        }
    }

    public override Task<ListSnapshotsResponse> ListSnapshots(ListSnapshotsRequest request, ServerCallContext context)
    {
        var id = RunNames.Id(request.Parent, "parent");
        runs.Get(request.Parent);
        var full = request.View == SnapshotView.Full;
        var page = Pages.Take(snapshots.Steps(id), request.PageSize, request.PageToken, $"{request.Parent}/snapshots", defaultSize: 100);
        var response = new ListSnapshotsResponse { NextPageToken = page.NextPageToken, TotalSize = page.TotalSize };
        response.Snapshots.AddRange(page.Items.Select(step => snapshots.Read(id, step, full)));
        return Task.FromResult(response);
    }

    public override Task<Snapshot> GetSnapshot(GetSnapshotRequest request, ServerCallContext context)
    {
        var (id, step) = RunNames.Snapshot(request.Name);
        runs.Get(RunNames.Name(id));
        return Task.FromResult(snapshots.Read(id, step, full: request.View != SnapshotView.Basic));
    }

    public override async Task ExportRun(ExportRunRequest request, IServerStreamWriter<FileChunk> responseStream, ServerCallContext context)
    {
        var run = runs.Get(request.Name);
        var export = await exporter.FileAsync(run, request.Format, request.HasStep ? request.Step : null);
        await using var file = File.OpenRead(export.Path);
        var buffer = new byte[ChunkBytes];
        var first = true;
        int read;
        while ((read = await file.ReadAsync(buffer, context.CancellationToken)) > 0 || first)
        {
            var chunk = new FileChunk { Data = ByteString.CopyFrom(buffer, 0, read) };
            if (first)
            {
                chunk.FileName = export.FileName;
                chunk.TotalBytes = file.Length;
                first = false;
            }
            await responseStream.WriteAsync(chunk, context.CancellationToken);
            if (read == 0) break;
        }
    }

    public override Task<EvaluateRunResponse> EvaluateRun(EvaluateRunRequest request, ServerCallContext context)
    {
        var step = request.HasStep ? request.Step : (long?)null;
        if (request.Transfer is null)
            return evaluator.EvaluateAsync(runs.Get(request.Name), request.Kernel, step, context.CancellationToken);
        if (request.Kernel is not null)
            throw new InvalidFieldException("kernel", "a transfer evaluation trains networks and uses no kernel: send kernel or transfer, not both");
        return transferEvaluator.EvaluateAsync(runs.Get(request.Name), request.Transfer, step, context.CancellationToken);
    }

    public override Task<ListKernelServicesResponse> ListKernelServices(ListKernelServicesRequest request, ServerCallContext context) =>
        kernelServices.ListAsync(context.CancellationToken);

    public override Task<ListDatasetsResponse> ListDatasets(ListDatasetsRequest request, ServerCallContext context) =>
        Task.FromResult(datasets.List());
}
