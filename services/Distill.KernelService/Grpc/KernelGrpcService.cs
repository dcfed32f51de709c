using System.Reflection;
using System.Threading.Channels;
using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using Distill.Core.Regression;
using Distill.Core.Runtime;
using Distill.KernelService.Datasets;
using Distill.KernelService.FeaturePools;
using Distill.KernelService.Leases;
using Distill.KernelService.Telemetry;
using Distill.Adapters.Conversions;
using Distill.Adapters.Paging;
using Distill.Core.Errors;
using Distill.Protos.Kernel.V1;
using Distill.ServiceDefaults;
using Grpc.Core;
using Microsoft.Extensions.Options;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.KernelService.Grpc;

/// <summary>
/// Maps kernel-service messages to Distill.Core calls. No arithmetic of its own: requests
/// are read (and validated) by <see cref="RequestReader"/>, computed by the engine, and
/// tensors converted back. Tensor work is synchronous inside dispose scopes; awaits
/// happen only between them.
/// </summary>
public sealed partial class KernelGrpcService(
    DatasetRegistry datasets,
    FeaturePoolRegistry pools,
    RequestReader reader,
    KernelServiceMetrics metrics,
    TensorThreadPool compute,
    ComputeGateInterceptor gate,
    IOptions<ServerOptions> server,
    IOptions<Configuration.KernelServiceOptions> options) : Protos.Kernel.V1.KernelService.KernelServiceBase
{
    private static readonly string Version =
        typeof(KernelGrpcService).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";

    public override Task<ServerInfo> GetServerInfo(GetServerInfoRequest request, ServerCallContext context)
    {
        var info = new ServerInfo
        {
            Version = Version,
            Device = TorchRuntime.DeviceName,
            Threads = get_num_threads(),
            MaxMessageBytes = server.Value.MaxMessageBytes,
            MaxElementsPerRequest = options.Value.MaxElementsPerRequest,
            MaxConcurrentRequests = options.Value.MaxConcurrentRequests,
            DataRootConfigured = !string.IsNullOrEmpty(options.Value.DataRoot),
            CallsInFlight = gate.CallsInFlight,
            DatasetCount = datasets.All.Count,
            DatasetElements = datasets.Elements,
            MaxDatasetElements = options.Value.MaxDatasetElements,
            FeaturePoolCount = pools.Count,
            FeaturePoolBytes = pools.Bytes,
            MaxFeaturePoolBytes = options.Value.MaxFeaturePoolBytes,
        };
        info.Kernels.Add(["fully_connected/ntk", "fully_connected/nngp", "convolutional/ntk", "convolutional/nngp", "random_features/nngp"]);
        return Task.FromResult(info);
    }

    public override async Task<Dataset> UploadDataset(IAsyncStreamReader<UploadDatasetRequest> requestStream, ServerCallContext context)
    {
        UploadDatasetHeader? header = null;
        long featureCount = 0;
        var parts = new Dictionary<Split, (List<Tensor> Features, List<int> Labels)>
        {
            [Split.Train] = ([], []),
            [Split.Test] = ([], []),
        };
        long elements = 0;
        int index = 0;
        try
        {
            await foreach (var message in requestStream.ReadAllAsync(context.CancellationToken))
            {
                var field = $"message[{index++}]";
                if (header is null)
                {
                    header = message.Header ?? throw new InvalidFieldException($"{field}.header", "the first message must carry the header");
                    if (header.ClassCount < 1) throw new InvalidFieldException("header.class_count", $"must be positive, got {header.ClassCount}");
                    if (header.ImageShape.Count is < 1 or > 3 || header.ImageShape.Any(d => d < 1))
                        throw new InvalidFieldException("header.image_shape", $"must be C, H, W (or one feature count), all positive; got [{string.Join(",", header.ImageShape)}]");
                    featureCount = header.ImageShape.Aggregate(1L, (a, b) => a * b);
                    reader.CheckElements(featureCount, "header.image_shape");
                    LeaseTtl(header.LeaseTtl, "header.lease_ttl");
                }
                if (message.Features is null && message.Labels.Count == 0) continue;
                var split = message.Split == Split.Test ? Split.Test : Split.Train;
                var features = reader.Images(message.Features, $"{field}.features").Rows;
                parts[split].Features.Add(features);
                if (features.shape[1] != featureCount)
                    throw new InvalidFieldException($"{field}.features", $"rows have {features.shape[1]} features, the header's image shape has {featureCount}");
                if (message.Labels.Count != features.shape[0])
                    throw new InvalidFieldException($"{field}.labels", $"{message.Labels.Count} labels for {features.shape[0]} rows");
                foreach (var label in message.Labels)
                    if (label < 0 || label >= header.ClassCount)
                        throw new InvalidFieldException($"{field}.labels", $"label {label} is outside 0..{header.ClassCount - 1}");
                parts[split].Labels.AddRange(message.Labels);
                elements += features.numel();
                if (elements > options.Value.MaxDatasetElements)
                    throw new LimitExceededException(ErrorReasons.DatasetBudgetExceeded, "KernelService:MaxDatasetElements",
                        $"the upload exceeds the server's dataset budget of {options.Value.MaxDatasetElements} elements");
            }
            if (header is null) throw new InvalidFieldException("header", "the stream was empty");
            if (parts[Split.Train].Labels.Count == 0) throw new InvalidFieldException("features", "no training rows were sent");

            (Tensor, int[]) Joined(Split split) => (parts[split].Features.Count == 0
                ? zeros(0, featureCount, dtype: ScalarType.Float64, device: TorchRuntime.TorchDevice)
                : cat(parts[split].Features, 0), parts[split].Labels.ToArray());
            var h = header;
            return await compute.RunAsync(() => datasets.RegisterUploaded(h.DisplayName, h.ClassCount, h.ImageShape.ToArray(),
                Joined(Split.Train), Joined(Split.Test), LeaseTtl(h.LeaseTtl, "header.lease_ttl")).ToMessage());
        }
        finally
        {
            foreach (var part in parts.Values)
                foreach (var t in part.Features) t.Dispose();
        }
    }

    public override Task<Dataset> RegisterDataset(RegisterDatasetRequest request, ServerCallContext context)
    {
        var preprocessing = RequestReader.Preprocessing(request.Preprocessing);
        var format = request.Format.ToCore();
        var lease = LeaseTtl(request.LeaseTtl, "lease_ttl");
        return compute.RunAsync(() => datasets.RegisterFromPath(request.Path, format, preprocessing, lease).ToMessage(), context.CancellationToken);
    }

    public override Task<ListDatasetsResponse> ListDatasets(ListDatasetsRequest request, ServerCallContext context)
    {
        IEnumerable<RegisteredDataset> ordered = request.OrderBy switch
        {
            "" or "create_time" => datasets.All.OrderBy(d => d.CreateTime).ThenBy(d => d.Id, StringComparer.Ordinal),
            "create_time desc" => datasets.All.OrderByDescending(d => d.CreateTime).ThenBy(d => d.Id, StringComparer.Ordinal),
            "display_name" => datasets.All.OrderBy(d => d.DisplayName, StringComparer.Ordinal).ThenBy(d => d.Id, StringComparer.Ordinal),
            _ => throw new InvalidFieldException("order_by", $"'{request.OrderBy}' is not one of: create_time, create_time desc, display_name"),
        };
        var page = Pages.Take(ordered.ToArray(), request.PageSize, request.PageToken, request.OrderBy);
        var response = new ListDatasetsResponse { NextPageToken = page.NextPageToken, TotalSize = page.TotalSize };
        response.Datasets.AddRange(page.Items.Select(d => d.ToMessage()));
        return Task.FromResult(response);
    }

    public override Task<DropDatasetResponse> DropDataset(DropDatasetRequest request, ServerCallContext context)
    {
        datasets.Drop(request.Name, "name");
        return Task.FromResult(new DropDatasetResponse());
    }

    public override async Task ComputeGram(ComputeGramRequest request, IServerStreamWriter<GramBlock> responseStream, ServerCallContext context)
    {
        var kernel = reader.Kernel(request.Kernel);
        var dtype = request.Dtype == DataType.Float32 ? DataType.Float32 : DataType.Float64;
        var (x1, x2) = await compute.RunAsync(() =>
        {
            using var scope = NewDisposeScope();
            var (a, shape1, selection1) = reader.Operand(request.X1, "x1");
            using var held1 = selection1;
            RequestReader.CheckImages(kernel, a, shape1, selection1, "x1");
            var (b, shape2, selection2) = reader.Operand(request.X2, "x2");
            using var held2 = selection2;
            RequestReader.CheckImages(kernel, b, shape2, selection2, "x2");
            RequestReader.SameFeatures(a, "x1", b, "x2");
            reader.CheckElements(a.shape[0] * b.shape[0], "x1 x x2");
            // Rows are copied out of the dataset, so it may be dropped while blocks stream.
            return (a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope());
        }, context.CancellationToken);
        try
        {
            long n1 = x1.shape[0], n2 = x2.shape[0];
            var blockRows = GramMatrix.RowsPerBlock(n2, TensorMessages.ElementSize(dtype), server.Value.MaxMessageBytes);
            if (blockRows < 1)
                throw new LimitExceededException(ErrorReasons.RequestTooLarge, "x2",
                    $"x2: one row of {n2} entries does not fit in the server's {server.Value.MaxMessageBytes}-byte message limit (Server:MaxMessageBytes)");

            for (long start = 0; start < n1; start += blockRows)
            {
                context.CancellationToken.ThrowIfCancellationRequested();
                var rowStart = start;
                var length = Math.Min(blockRows, n1 - start);
                var block = await compute.RunAsync(() =>
                {
                    using var blockScope = NewDisposeScope();
                    var values = kernel.Kernel.Compute(x1.narrow(0, rowStart, length), x2);
                    return new GramBlock { RowStart = rowStart, TotalRows = n1, Block = values.ToMessage(dtype) };
                }, context.CancellationToken);
                metrics.Computed(nameof(ComputeGram), length * n2);
                await responseStream.WriteAsync(block, context.CancellationToken);
            }
        }
        finally
        {
            x1.Dispose();
            x2.Dispose();
        }
    }

    public override Task<VectorJacobianProductResponse> VectorJacobianProduct(VectorJacobianProductRequest request, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var kernel = reader.Kernel(request.Kernel);
            using var scope = NewDisposeScope();
            var (x1, shape1, selection1) = reader.Operand(request.X1, "x1");
            using var held1 = selection1;
            RequestReader.CheckImages(kernel, x1, shape1, selection1, "x1");
            if (request.WantX1 && selection1 is not null)
                throw new InvalidFieldException("want_x1", "x1 names dataset rows; only inline operands have gradients");
            var response = new VectorJacobianProductResponse();
            if (request.Symmetric)
            {
                if (request.X2 is not null && request.X2.SourceCase != Operand.SourceOneofCase.None)
                    throw new InvalidFieldException("x2", "leave empty for a symmetric product (x2 = x1)");
                var cotangent = Cotangent(request.Cotangent, x1.shape[0], x1.shape[0]);
                var (grad, _) = GramMatrix.VectorJacobianProduct(kernel.Kernel, x1, x1, cotangent, symmetric: true);
                response.GradX1 = grad!.ToMessage(shape: shape1);
                metrics.Computed(nameof(VectorJacobianProduct), x1.shape[0] * x1.shape[0]);
                return response;
            }

            var (x2, shape2, selection2) = reader.Operand(request.X2, "x2");
            using var held2 = selection2;
            RequestReader.CheckImages(kernel, x2, shape2, selection2, "x2");
            if (request.WantX2 && selection2 is not null)
                throw new InvalidFieldException("want_x2", "x2 names dataset rows; only inline operands have gradients");
            RequestReader.SameFeatures(x1, "x1", x2, "x2");
            reader.CheckElements(x1.shape[0] * x2.shape[0], "x1 x x2");
            var cot = Cotangent(request.Cotangent, x1.shape[0], x2.shape[0]);
            var (g1, g2) = GramMatrix.VectorJacobianProduct(kernel.Kernel, x1, x2, cot, request.WantX1, request.WantX2,
                cancellation: context.CancellationToken);
            if (g1 is not null) response.GradX1 = g1.ToMessage(shape: shape1);
            if (g2 is not null) response.GradX2 = g2.ToMessage(shape: shape2);
            metrics.Computed(nameof(VectorJacobianProduct), x1.shape[0] * x2.shape[0]);
            return response;
        }, context.CancellationToken);
    }

    public override Task<SolveKrrResponse> SolveKrr(SolveKrrRequest request, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var kernel = reader.Kernel(request.Kernel);
            var regularization = RequestReader.Regularization(request.HasRegularization, request.Regularization);
            using var scope = NewDisposeScope();
            var (support, supportShape, selection) = reader.Operand(request.Support, "support");
            using var held = selection;
            RequestReader.CheckImages(kernel, support, supportShape, selection, "support");
            var labels = Labels(request.SupportLabels, "support_labels", support.shape[0], classCount: null);
            reader.CheckElements(support.shape[0] * support.shape[0], "support x support");
            Tensor? query = null;
            if (request.Query is not null && request.Query.SourceCase != Operand.SourceOneofCase.None)
            {
                var (q, queryShape, querySelection) = reader.Operand(request.Query, "query");
                using var heldQuery = querySelection;
                RequestReader.CheckImages(kernel, q, queryShape, querySelection, "query");
                RequestReader.SameFeatures(support, "support", q, "query");
                reader.CheckElements(q.shape[0] * support.shape[0], "query x support");
                query = q;
            }
            var fit = KernelRidgeRegression.FitAndPredict(kernel.Kernel, support, labels, regularization, query);
            var response = new SolveKrrResponse { Alpha = fit.Alpha.ToMessage(), Ridge = fit.Ridge, SolveMethod = fit.Method.ToMessage() };
            if (fit.Predictions is not null)
            {
                response.Predictions = fit.Predictions.ToMessage();
                metrics.Computed(nameof(SolveKrr), query!.shape[0] * support.shape[0]);
            }
            metrics.Computed(nameof(SolveKrr), support.shape[0] * support.shape[0]);
            return response;
        }, context.CancellationToken);
    }

    /// <summary>Blocks of a row-blocked call at most, so that its progress messages are bounded too.</summary>
    private const int MaxBlocks = 1000;

    /// <summary>A stream's block_rows: 0 or more than the default is the default.</summary>
    private static int StreamBlockRows(long requested)
    {
        if (requested < 0) throw new InvalidFieldException("block_rows", $"must not be negative (got {requested})");
        return requested == 0 ? GramMatrix.DefaultBlockRows : (int)Math.Min(requested, GramMatrix.DefaultBlockRows);
    }

    /// <summary>Rows per block raised where <paramref name="rows"/> would need more than <see cref="MaxBlocks"/> blocks.</summary>
    private static int BoundedBlockRows(int blockRows, long rows) => Math.Max(blockRows, (int)((rows + MaxBlocks - 1) / MaxBlocks));

    public override Task<EvaluateKrrResponse> EvaluateKrr(EvaluateKrrRequest request, ServerCallContext context) =>
        EvaluateAsync(nameof(EvaluateKrr), request, GramMatrix.DefaultBlockRows, progress: null, context);

    public override Task StreamEvaluateKrr(StreamEvaluateKrrRequest request, IServerStreamWriter<StreamEvaluateKrrResponse> responseStream,
        ServerCallContext context)
    {
        if (request.Evaluation is null) throw new InvalidFieldException("evaluation", "required");
        var blockRows = StreamBlockRows(request.BlockRows);
        return StreamWithProgressAsync<RowsDone, EvaluateKrrResponse, StreamEvaluateKrrResponse>(
            progress => EvaluateAsync(nameof(StreamEvaluateKrr), request.Evaluation, blockRows, progress, context),
            rows => new()
            {
                Progress = rows.SupportGram
                    ? new EvaluationProgress { SupportPairsDone = rows.Done, SupportPairs = rows.Total }
                    : new EvaluationProgress { RowsDone = rows.Done, TotalRows = rows.Total },
            },
            result => new() { Result = result }, responseStream, context);
    }

    /// <summary>
    /// A computation's progress streamed as it comes, then its result. The computation runs on
    /// a compute thread and only queues its progress: a slow reader never holds it up. Each
    /// computation bounds its own progress messages (one per block or network).
    /// </summary>
    private static async Task StreamWithProgressAsync<TProgress, TResult, TResponse>(Func<Action<TProgress>, Task<TResult>> work,
        Func<TProgress, TResponse> progressMessage, Func<TResult, TResponse> resultMessage, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context)
    {
        var updates = Channel.CreateUnbounded<TProgress>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var computing = work(progress => updates.Writer.TryWrite(progress));
        _ = computing.ContinueWith(_ => updates.Writer.Complete(), TaskScheduler.Default);
        await foreach (var progress in updates.Reader.ReadAllAsync(context.CancellationToken))
            await responseStream.WriteAsync(progressMessage(progress), context.CancellationToken);
        await responseStream.WriteAsync(resultMessage(await computing), context.CancellationToken);
    }

    private Task<EvaluateKrrResponse> EvaluateAsync(string method, EvaluateKrrRequest request, int blockRows, Action<RowsDone>? progress, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var kernel = reader.Kernel(request.Kernel);
            var regularization = RequestReader.Regularization(request.HasRegularization, request.Regularization);
            var splitName = request.Split == Split.Train ? Split.Train : Split.Test;
            // The whole split unless rows are named.
            using var selection = request.Indices.Count > 0 ? SelectRows(request, splitName) : null;
            using var use = selection is null ? datasets.Use(request.Dataset, "dataset") : null;
            var dataset = selection?.Dataset ?? use!.Resource;
            // The support must match the dataset (RequestReader.Support), so checking the dataset covers both.
            RequestReader.CheckImages(kernel, dataset.FeatureCount, dataset.ImageShape, "dataset");
            var split = dataset.Split(splitName);
            using var scope = NewDisposeScope();
            var (features, targets, classes) = selection is null ? (split.Features, split.Targets, split.Labels)
                : (split.Features.index_select(0, selection.Index), split.Targets.index_select(0, selection.Index),
                    request.Indices.Select(i => split.Labels[i]).ToArray());
            var support = reader.Support(request.Support, dataset).Rows;
            var labels = Labels(request.SupportLabels, "support_labels", support.shape[0], dataset.ClassCount);
            reader.CheckElements(classes.Length * support.shape[0], "split x support");
            // A cancelled call stops at the next row block instead of computing to the end.
            var result = KrrEvaluator.Evaluate(kernel.Kernel, support, labels, features, classes, targets, regularization,
                BoundedBlockRows(blockRows, classes.Length), CountBlocks(method, support.shape[0]) + progress, context.CancellationToken);
            return new EvaluateKrrResponse
            {
                Accuracy = result.Accuracy, Mse = result.Mse, Count = result.Count, SolveMethod = result.Method.ToMessage(),
            };
        }, context.CancellationToken);
    }

    /// <summary>The rows EvaluateKrr names, with errors naming the request's own fields.</summary>
    private DatasetSelection SelectRows(EvaluateKrrRequest request, Split split)
    {
        try
        {
            return reader.Rows(new DatasetRows { Dataset = request.Dataset, Split = split, Indices = { request.Indices } }, "rows");
        }
        catch (InvalidFieldException e) when (e.Field.StartsWith("rows.", StringComparison.Ordinal))
        {
            throw new InvalidFieldException(e.Field["rows.".Length..], e.Description);
        }
    }

    public override Task<KipShardStepResponse> KipShardStep(KipShardStepRequest request, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var kernel = reader.Kernel(request.Kernel);
            var regularization = RequestReader.Regularization(request.HasRegularization, request.Regularization);
            using var scope = NewDisposeScope();
            using var targets = reader.Rows(request.Targets, "targets");
            RequestReader.CheckImages(kernel, targets.Dataset.FeatureCount, targets.Dataset.ImageShape, "targets.dataset");
            var support = reader.Support(request.Support, targets.Dataset);
            var labels = Labels(request.SupportLabels, "support_labels", support.Rows.shape[0], targets.Dataset.ClassCount);
            var count = targets.Count;
            var total = request.TotalTargets == 0 ? count : request.TotalTargets;
            if (total < count)
                throw new InvalidFieldException("total_targets", $"{total} is less than this shard's {count} targets");
            reader.CheckElements(count * support.Rows.shape[0], "targets x support");

            var objective = new KipObjective(kernel.Kernel, regularization);
            using var result = objective.ShardStep(support.Rows, labels, targets.Split.Features.index_select(0, targets.Index),
                targets.Split.Targets.index_select(0, targets.Index), total, request.WantLabelGradient);
            metrics.Computed(nameof(KipShardStep), (count + support.Rows.shape[0]) * support.Rows.shape[0]);
            var response = new KipShardStepResponse
            {
                Loss = result.Loss,
                Reduction = result.Reduction.ToMessage(),
                SupportGradient = result.SupportGradient.ToMessage(shape: support.Shape),
                SolveMethod = result.Method.ToMessage(),
                TargetCount = count,
            };
            if (result.LabelGradient is not null) response.LabelGradient = result.LabelGradient.ToMessage();
            response.ComputeTime = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(watch.Elapsed);
            return response;
        }, context.CancellationToken);
    }

    public override Task<LabelSolveShardResponse> LabelSolveShard(LabelSolveShardRequest request, ServerCallContext context) =>
        LabelSolveAsync(nameof(LabelSolveShard), request, GramMatrix.DefaultBlockRows, progress: null, context);

    public override Task StreamLabelSolveShard(StreamLabelSolveShardRequest request, IServerStreamWriter<StreamLabelSolveShardResponse> responseStream,
        ServerCallContext context)
    {
        if (request.Shard is null) throw new InvalidFieldException("shard", "required");
        var blockRows = StreamBlockRows(request.BlockRows);
        return StreamWithProgressAsync<RowsDone, LabelSolveShardResponse, StreamLabelSolveShardResponse>(
            progress => LabelSolveAsync(nameof(StreamLabelSolveShard), request.Shard, blockRows, progress, context),
            rows => new()
            {
                Progress = rows.SupportGram
                    ? new LabelSolveProgress { SupportPairsDone = rows.Done, SupportPairs = rows.Total }
                    : new LabelSolveProgress { RowsDone = rows.Done, TotalRows = rows.Total },
            },
            result => new() { Result = result }, responseStream, context);
    }

    private Task<LabelSolveShardResponse> LabelSolveAsync(string method, LabelSolveShardRequest request, int blockRows, Action<RowsDone>? progress,
        ServerCallContext context)
    {
        var kernel = reader.Kernel(request.Kernel);
        return compute.RunAsync(() =>
        {
            using var scope = NewDisposeScope();
            using var targets = reader.Rows(request.Targets, "targets");
            RequestReader.CheckImages(kernel, targets.Dataset.FeatureCount, targets.Dataset.ImageShape, "targets.dataset");
            var support = reader.Support(request.Support, targets.Dataset).Rows;
            reader.CheckElements(targets.Count * support.shape[0], "targets x support");
            // A cancelled call stops at the next row block instead of computing to the end.
            var counted = CountBlocks(method, support.shape[0]) + progress;
            var (normal, projected) = LabelSolver.Accumulate(kernel.Kernel, support, targets.Split.Features.index_select(0, targets.Index),
                targets.Split.Targets.index_select(0, targets.Index), BoundedBlockRows(blockRows, targets.Count), counted, context.CancellationToken);
            var response = new LabelSolveShardResponse { Normal = normal.ToMessage(), Projected = projected.ToMessage() };
            if (!request.OmitSupportGram)
                response.SupportGram = GramMatrix.ComputeSymmetric(kernel.Kernel, support, progress: counted, cancellation: context.CancellationToken).ToMessage();
            return response;
        }, context.CancellationToken);
    }

    /// <summary>
    /// Counts a row-blocked computation's kernel entries block by block (the support Gram's by its
    /// image pairs), so that the metrics of a call cancelled half-way show the half it computed.
    /// </summary>
    private Action<RowsDone> CountBlocks(string method, long supportRows)
    {
        long rowsCounted = 0, pairsCounted = 0;
        return rows =>
        {
            if (rows.SupportGram)
            {
                metrics.Computed(method, rows.Done - pairsCounted);
                pairsCounted = rows.Done;
                return;
            }
            metrics.Computed(method, (rows.Done - rowsCounted) * supportRows);
            rowsCounted = rows.Done;
        };
    }

    /// <summary>A lease's time to live: unset means none; otherwise between a second and a week.</summary>
    private static TimeSpan? LeaseTtl(Google.Protobuf.WellKnownTypes.Duration? ttl, string field)
    {
        if (ttl is null) return null;
        // Checked before ToTimeSpan, which throws on a duration that is not normalized (nanos
        // out of range or of the other sign): a client's malformed value, not a server fault.
        if (ttl.Seconds is < 0 or > 7 * 86400 || ttl.Nanos is < 0 or >= 1_000_000_000)
            throw new InvalidFieldException(field, $"must be between 1 s and 7 days, got {ttl.Seconds} s and {ttl.Nanos} ns");
        var span = ttl.ToTimeSpan();
        return span >= TimeSpan.FromSeconds(1) && span <= TimeSpan.FromDays(7) ? span
            : throw new InvalidFieldException(field, $"must be between 1 s and 7 days, got {span}");
    }

    private Tensor Labels(Protos.Kernel.V1.Tensor? message, string field, long rows, int? classCount)
    {
        var labels = reader.Matrix(message, field);
        if (labels.shape[0] != rows)
            throw new InvalidFieldException(field, $"{labels.shape[0]} rows for {rows} support images");
        if (classCount is { } c && labels.shape[1] != c)
            throw new InvalidFieldException(field, $"{labels.shape[1]} columns, the dataset has {c} classes");
        return labels;
    }

    private Tensor Cotangent(Protos.Kernel.V1.Tensor? message, long rows, long columns)
    {
        var cotangent = reader.Matrix(message, "cotangent");
        if (cotangent.shape[0] != rows || cotangent.shape[1] != columns)
            throw new InvalidFieldException("cotangent", $"shape [{cotangent.shape[0]},{cotangent.shape[1]}] should be [{rows},{columns}]");
        return cotangent;
    }
}
