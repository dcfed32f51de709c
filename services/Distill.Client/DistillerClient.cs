using System.Runtime.CompilerServices;
using Distill.Client.Internal;
using Distill.Protos.Distiller.V1;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;

namespace Distill.Client;

/// <summary>
/// A typed client of the distiller service. Every method takes a bare run id or a run
/// resource name, returns the client's own records, and throws <see cref="DistillerException"/>
/// for a failed call (<see cref="OperationCanceledException"/> when the caller's token cancelled it).
/// Thread-safe; the caller owns the channel.
/// </summary>
public sealed class DistillerClient
{
    private readonly DistillerService.DistillerServiceClient client;

    public DistillerClient(GrpcChannel channel, string? apiKey = null)
        : this(channel.CreateCallInvoker(), apiKey)
    {
    }

    public DistillerClient(CallInvoker invoker, string? apiKey = null)
    {
        ArgumentNullException.ThrowIfNull(invoker);
        // The key goes on every call, streams included, as the server's ApiKeyInterceptor expects.
        if (!string.IsNullOrEmpty(apiKey))
            invoker = invoker.Intercept(headers =>
            {
                headers.Add("authorization", $"Bearer {apiKey}");
                return headers;
            });
        client = new DistillerService.DistillerServiceClient(invoker);
    }

    /// <summary>
    /// Validates and queues a run. With a request id (e.g. a Guid kept across retries), a repeated
    /// call returns the run the first one created; the same id with another spec fails with
    /// ALREADY_EXISTS (reason REQUEST_ID_REUSED).
    /// </summary>
    public async Task<RunInfo> StartRunAsync(RunSpecification spec, string? requestId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var request = new StartRunRequest { Spec = Messages.ToProto(spec), RequestId = requestId ?? "" };
        return Messages.FromProto(await Call(client.StartRunAsync(request, cancellationToken: cancellationToken), cancellationToken));
    }

    public async Task<RunInfo> GetRunAsync(string run, CancellationToken cancellationToken = default) =>
        Messages.FromProto(await Call(client.GetRunAsync(new GetRunRequest { Name = RunNames.ToName(run) }, cancellationToken: cancellationToken), cancellationToken));

    public async Task<RunPage> ListRunsAsync(ListRunsQuery? query = null, CancellationToken cancellationToken = default)
    {
        var response = await Call(client.ListRunsAsync(Messages.ToProto(query ?? new ListRunsQuery()), cancellationToken: cancellationToken), cancellationToken);
        return new RunPage(response.Runs.Select(Messages.FromProto).ToArray(), NullIfEmpty(response.NextPageToken), response.TotalSize);
    }

    /// <summary>Every run the query matches, page after page.</summary>
    public async IAsyncEnumerable<RunInfo> ListAllRunsAsync(ListRunsQuery? query = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        query ??= new ListRunsQuery();
        do
        {
            var page = await ListRunsAsync(query, cancellationToken);
            foreach (var run in page.Runs) yield return run;
            query = query with { PageToken = page.NextPageToken };
        } while (query.PageToken is not null);
    }

    /// <summary>
    /// The run's events after <paramref name="afterSequence"/>, then its live ones. Without
    /// <paramref name="follow"/> the sequence ends with the event that ends the run; with it,
    /// it stays open across ends and resumes until the caller stops or the run is deleted.
    /// Resume a broken watch with the last sequence seen: numbers are gapless per run.
    /// </summary>
    public async IAsyncEnumerable<RunEventRecord> WatchRunAsync(string run, long afterSequence = 0, bool follow = false,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = new WatchRunRequest { Name = RunNames.ToName(run), AfterSequence = afterSequence, Follow = follow };
        using var call = client.WatchRun(request, cancellationToken: cancellationToken);
        while (true)
        {
            // yield cannot sit in a try with a catch, so only the read is guarded.
            bool more;
            try
            {
                more = await call.ResponseStream.MoveNext(cancellationToken);
            }
            catch (RpcException e)
            {
                throw Translate(e, cancellationToken);
            }
            if (!more) yield break;
            yield return Messages.FromProto(call.ResponseStream.Current);
        }
    }

    /// <summary>Stops a queued, running or paused run; it can be resumed from its latest checkpoint.</summary>
    public async Task<RunInfo> CancelRunAsync(string run, CancellationToken cancellationToken = default) =>
        Messages.FromProto(await Call(client.CancelRunAsync(new CancelRunRequest { Name = RunNames.ToName(run) }, cancellationToken: cancellationToken), cancellationToken));

    /// <summary>Continues an ended run from its latest checkpoint.</summary>
    /// <param name="steps">The run's new total of steps; null keeps the spec's.</param>
    public async Task<RunInfo> ResumeRunAsync(string run, int? steps = null, CancellationToken cancellationToken = default)
    {
        var request = new ResumeRunRequest { Name = RunNames.ToName(run) };
        if (steps is { } total) request.Steps = total;
        return Messages.FromProto(await Call(client.ResumeRunAsync(request, cancellationToken: cancellationToken), cancellationToken));
    }

    /// <summary>Deletes an ended run with its events, checkpoints and snapshots.</summary>
    public async Task DeleteRunAsync(string run, CancellationToken cancellationToken = default) =>
        await Call(client.DeleteRunAsync(new DeleteRunRequest { Name = RunNames.ToName(run) }, cancellationToken: cancellationToken), cancellationToken);

    /// <summary>The run's snapshots, oldest first; with <paramref name="full"/> each carries its tensors.</summary>
    /// <param name="pageSize">Null: 100; at most 1000.</param>
    public async Task<SnapshotPage> ListSnapshotsAsync(string run, bool full = false, int? pageSize = null, string? pageToken = null,
        CancellationToken cancellationToken = default)
    {
        var request = new ListSnapshotsRequest
        {
            Parent = RunNames.ToName(run),
            PageSize = pageSize ?? 0,
            PageToken = pageToken ?? "",
            View = full ? SnapshotView.Full : SnapshotView.Basic,
        };
        var response = await Call(client.ListSnapshotsAsync(request, cancellationToken: cancellationToken), cancellationToken);
        return new SnapshotPage(response.Snapshots.Select(Messages.FromProto).ToArray(), NullIfEmpty(response.NextPageToken), response.TotalSize);
    }

    /// <summary>One snapshot, by default with its images and labels.</summary>
    public async Task<SnapshotInfo> GetSnapshotAsync(string run, long step, bool full = true, CancellationToken cancellationToken = default)
    {
        var request = new GetSnapshotRequest { Name = RunNames.SnapshotName(run, step), View = full ? SnapshotView.Full : SnapshotView.Basic };
        return Messages.FromProto(await Call(client.GetSnapshotAsync(request, cancellationToken: cancellationToken), cancellationToken));
    }

    /// <summary>Writes the distilled set to <paramref name="destination"/> and returns the server's file name.</summary>
    /// <param name="step">A snapshot's step; null: the finished set, or else the latest checkpoint.</param>
    public async Task<string> ExportRunAsync(string run, ExportFormat format, long? step, Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var request = new ExportRunRequest { Name = RunNames.ToName(run), Format = Messages.ToProto(format) };
        if (step is { } s) request.Step = s;
        using var call = client.ExportRun(request, cancellationToken: cancellationToken);
        string? fileName = null;
        long expected = 0, written = 0;
        try
        {
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                var chunk = call.ResponseStream.Current;
                if (fileName is null)
                {
                    fileName = chunk.FileName;
                    expected = chunk.TotalBytes;
                }
                await destination.WriteAsync(chunk.Data.Memory, cancellationToken);
                written += chunk.Data.Length;
            }
        }
        catch (RpcException e)
        {
            throw Translate(e, cancellationToken);
        }
        // A stream that ends early is not a file: say so rather than leave a truncated one unnoticed.
        if (fileName is null || (expected > 0 && written != expected))
            throw new IOException($"export of {request.Name} ended after {written} of {expected} bytes");
        return fileName;
    }

    /// <summary>The distilled set in memory.</summary>
    public async Task<ExportedFile> ExportRunAsync(string run, ExportFormat format, long? step = null, CancellationToken cancellationToken = default)
    {
        using var buffer = new MemoryStream();
        var name = await ExportRunAsync(run, format, step, buffer, cancellationToken);
        return new ExportedFile(name, buffer.ToArray());
    }

    /// <summary>KRR test accuracy of the run's support set under any kernel; never changes the run.</summary>
    /// <param name="kernel">Null: the run's kernel.</param>
    /// <param name="step">A snapshot's step; null: the latest checkpoint.</param>
    public async Task<EvaluationResult> EvaluateRunAsync(string run, KernelSpecification? kernel = null, long? step = null,
        CancellationToken cancellationToken = default)
    {
        var request = new EvaluateRunRequest { Name = RunNames.ToName(run), Kernel = kernel is null ? null : Messages.ToProto(kernel) };
        if (step is { } s) request.Step = s;
        var response = await Call(client.EvaluateRunAsync(request, cancellationToken: cancellationToken), cancellationToken);
        return new EvaluationResult(response.TestAccuracy, response.TestMse, response.Step,
            response.Kernel is null ? new KernelSpecification() : Messages.FromProto(response.Kernel));
    }

    /// <summary>
    /// Trains finite networks on the run's support set in the distiller and scores them on the
    /// test split; never changes the run. Takes minutes on a CPU, and a distiller runs one at a time.
    /// </summary>
    /// <param name="step">A snapshot's step; null: the latest checkpoint.</param>
    public async Task<TransferEvaluation> TransferRunAsync(string run, TransferSpecification? transfer = null, long? step = null,
        CancellationToken cancellationToken = default)
    {
        var request = new EvaluateRunRequest { Name = RunNames.ToName(run), Transfer = Messages.ToProto(transfer ?? new TransferSpecification()) };
        if (step is { } s) request.Step = s;
        return Messages.FromProto(await Call(client.EvaluateRunAsync(request, cancellationToken: cancellationToken), cancellationToken));
    }

    /// <summary>The kernel services this distiller uses, with their health and load.</summary>
    public async Task<IReadOnlyList<KernelServiceInfo>> ListKernelServicesAsync(CancellationToken cancellationToken = default)
    {
        var response = await Call(client.ListKernelServicesAsync(new ListKernelServicesRequest(), cancellationToken: cancellationToken), cancellationToken);
        return response.KernelServices.Select(Messages.FromProto).ToArray();
    }

    /// <summary>Dataset folders under the data root that runs can name.</summary>
    public async Task<IReadOnlyList<DatasetFolderInfo>> ListDatasetsAsync(CancellationToken cancellationToken = default)
    {
        var response = await Call(client.ListDatasetsAsync(new ListDatasetsRequest(), cancellationToken: cancellationToken), cancellationToken);
        return response.Datasets.Select(Messages.FromProto).ToArray();
    }

    private static async Task<T> Call<T>(AsyncUnaryCall<T> call, CancellationToken cancellationToken)
    {
        using (call)
        {
            try
            {
                return await call.ResponseAsync.ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                throw Translate(e, cancellationToken);
            }
        }
    }

    /// <summary>The caller's own cancellation stays an OperationCanceledException; everything else is decoded.</summary>
    private static Exception Translate(RpcException e, CancellationToken cancellationToken) =>
        e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested
            ? new OperationCanceledException(e.Message, e, cancellationToken)
            : DistillerException.FromRpcException(e);

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;
}
