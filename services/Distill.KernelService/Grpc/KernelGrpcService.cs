using System.Reflection;
using Distill.Core.Distillation;
using Distill.Core.Evaluation;
using Distill.Core.Kernels;
using Distill.Core.Regression;
using Distill.Core.Runtime;
using Distill.KernelService.Datasets;
using Distill.KernelService.Telemetry;
using Distill.Adapters.Conversions;
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
public sealed class KernelGrpcService(
    DatasetRegistry datasets,
    RequestReader reader,
    KernelServiceMetrics metrics,
    TensorThreadPool compute,
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
            Device = cuda.is_available() ? "cuda" : "cpu",
            Threads = get_num_threads(),
            MaxMessageBytes = server.Value.MaxMessageBytes,
            MaxElementsPerRequest = options.Value.MaxElementsPerRequest,
            MaxConcurrentRequests = options.Value.MaxConcurrentRequests,
            DataRootConfigured = !string.IsNullOrEmpty(options.Value.DataRoot),
        };
        info.Kernels.Add(["fully_connected/ntk", "fully_connected/nngp"]);
        return Task.FromResult(info);
    }

    public override async Task<DatasetInfo> UploadDataset(IAsyncStreamReader<UploadDatasetRequest> requestStream, ServerCallContext context)
    {
        UploadDatasetHeader? header = null;
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
                    header = message.Header ?? throw new ArgumentException($"{field}.header: the first message must carry the header", "header");
                    if (header.ClassCount < 1) throw new ArgumentException($"header.class_count: must be positive, got {header.ClassCount}", "header.class_count");
                    if (header.FeatureCount < 1) throw new ArgumentException($"header.feature_count: must be positive, got {header.FeatureCount}", "header.feature_count");
                }
                if (message.Features is null && message.Labels.Count == 0) continue;
                var split = message.Split == Split.Test ? Split.Test : Split.Train;
                var features = reader.Matrix(message.Features, $"{field}.features");
                parts[split].Features.Add(features);
                if (features.shape[1] != header.FeatureCount)
                    throw new ArgumentException($"{field}.features: rows have {features.shape[1]} features, the header says {header.FeatureCount}", "features");
                if (message.Labels.Count != features.shape[0])
                    throw new ArgumentException($"{field}.labels: {message.Labels.Count} labels for {features.shape[0]} rows", "labels");
                foreach (var label in message.Labels)
                    if (label < 0 || label >= header.ClassCount)
                        throw new ArgumentException($"{field}.labels: label {label} is outside 0..{header.ClassCount - 1}", "labels");
                parts[split].Labels.AddRange(message.Labels);
                elements += features.numel();
                if (elements > options.Value.MaxDatasetElements)
                    throw new ResourceLimitException($"upload exceeds the server's dataset budget of {options.Value.MaxDatasetElements} elements");
            }
            if (header is null) throw new ArgumentException("header: the stream was empty", "header");
            if (parts[Split.Train].Labels.Count == 0) throw new ArgumentException("features: no training rows were sent", "features");

            (Tensor, int[]) Joined(Split split) => (parts[split].Features.Count == 0
                ? zeros(0, header.FeatureCount, dtype: ScalarType.Float64)
                : cat(parts[split].Features, 0), parts[split].Labels.ToArray());
            var name = header.Name;
            var classes = header.ClassCount;
            return await compute.RunAsync(() => datasets.RegisterUploaded(name, classes, Joined(Split.Train), Joined(Split.Test)).ToInfo());
        }
        finally
        {
            foreach (var part in parts.Values)
                foreach (var t in part.Features) t.Dispose();
        }
    }

    public override Task<DatasetInfo> RegisterDataset(RegisterDatasetRequest request, ServerCallContext context)
    {
        var preprocessing = RequestReader.Preprocessing(request.Preprocessing);
        return compute.RunAsync(() => datasets.RegisterFromPath(request.Path, request.Format, preprocessing).ToInfo(), context.CancellationToken);
    }

    public override Task<ListDatasetsResponse> ListDatasets(ListDatasetsRequest request, ServerCallContext context)
    {
        var response = new ListDatasetsResponse();
        response.Datasets.AddRange(datasets.All.Select(d => d.ToInfo()));
        return Task.FromResult(response);
    }

    public override Task<DropDatasetResponse> DropDataset(DropDatasetRequest request, ServerCallContext context) =>
        datasets.Drop(request.DatasetId)
            ? Task.FromResult(new DropDatasetResponse())
            : throw new KeyNotFoundException($"dataset_id: no dataset with id '{request.DatasetId}'");

    public override async Task ComputeGram(GramRequest request, IServerStreamWriter<GramBlock> responseStream, ServerCallContext context)
    {
        var kernel = RequestReader.Kernel(request.Kernel).Create();
        var dtype = request.Dtype == DType.Float32 ? DType.Float32 : DType.Float64;
        var (x1, x2) = await compute.RunAsync(() =>
        {
            using var scope = NewDisposeScope();
            var (a, _) = reader.Operand(request.X1, "x1");
            var (b, _) = reader.Operand(request.X2, "x2");
            RequestReader.SameFeatures(a, "x1", b, "x2");
            reader.CheckElements(a.shape[0] * b.shape[0], "x1 x x2");
            return (a.MoveToOuterDisposeScope(), b.MoveToOuterDisposeScope());
        }, context.CancellationToken);
        try
        {
            long n1 = x1.shape[0], n2 = x2.shape[0];
            long rowBytes = Math.Max(1, n2) * TensorMessages.ElementSize(dtype);
            long blockRows = (long)(server.Value.MaxMessageBytes * 0.9 - 1024) / rowBytes;
            if (blockRows < 1)
                throw new ResourceLimitException($"x2: one row of {n2} entries ({rowBytes} bytes) does not fit in the server's {server.Value.MaxMessageBytes}-byte message limit");

            for (long start = 0; start < n1; start += blockRows)
            {
                context.CancellationToken.ThrowIfCancellationRequested();
                var rowStart = start;
                var length = Math.Min(blockRows, n1 - start);
                var block = await compute.RunAsync(() =>
                {
                    using var blockScope = NewDisposeScope();
                    var values = kernel.Compute(x1.narrow(0, rowStart, length), x2);
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

    public override Task<VjpResponse> VectorJacobianProduct(VjpRequest request, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var kernel = RequestReader.Kernel(request.Kernel).Create();
            using var scope = NewDisposeScope();
            var (x1, split1) = reader.Operand(request.X1, "x1");
            if (request.WantX1 && split1 is not null)
                throw new ArgumentException("want_x1: x1 names dataset rows; only inline operands have gradients", "want_x1");
            var response = new VjpResponse();
            if (request.Symmetric)
            {
                if (request.X2 is not null && request.X2.SourceCase != Operand.SourceOneofCase.None)
                    throw new ArgumentException("x2: leave empty for a symmetric product (x2 = x1)", "x2");
                var cotangent = Cotangent(request.Cotangent, x1.shape[0], x1.shape[0]);
                var (grad, _) = GramMatrix.VectorJacobianProduct(kernel, x1, x1, cotangent, symmetric: true);
                response.GradX1 = grad!.ToMessage();
                metrics.Computed(nameof(VectorJacobianProduct), x1.shape[0] * x1.shape[0]);
                return response;
            }

            var (x2, split2) = reader.Operand(request.X2, "x2");
            if (request.WantX2 && split2 is not null)
                throw new ArgumentException("want_x2: x2 names dataset rows; only inline operands have gradients", "want_x2");
            RequestReader.SameFeatures(x1, "x1", x2, "x2");
            reader.CheckElements(x1.shape[0] * x2.shape[0], "x1 x x2");
            var cot = Cotangent(request.Cotangent, x1.shape[0], x2.shape[0]);
            var (g1, g2) = GramMatrix.VectorJacobianProduct(kernel, x1, x2, cot, request.WantX1, request.WantX2,
                cancellation: context.CancellationToken);
            if (g1 is not null) response.GradX1 = g1.ToMessage();
            if (g2 is not null) response.GradX2 = g2.ToMessage();
            metrics.Computed(nameof(VectorJacobianProduct), x1.shape[0] * x2.shape[0]);
            return response;
        }, context.CancellationToken);
    }

    public override Task<KrrResponse> SolveKrr(KrrRequest request, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var kernel = RequestReader.Kernel(request.Kernel).Create();
            var regularization = RequestReader.Regularization(request.Regularization);
            using var scope = NewDisposeScope();
            var (support, _) = reader.Operand(request.Support, "support");
            var labels = Labels(request.SupportLabels, "support_labels", support.shape[0], classCount: null);
            reader.CheckElements(support.shape[0] * support.shape[0], "support x support");
            var gram = kernel.ComputeSymmetric(support);
            var ridge = KernelRidgeRegression.Ridge(gram, regularization).item<double>();
            var (alpha, method) = KernelRidgeRegression.Solve(gram, ridge, labels);
            var response = new KrrResponse { Alpha = alpha.ToMessage(), Ridge = ridge, SolveMethod = method.ToString() };
            if (request.Query is not null && request.Query.SourceCase != Operand.SourceOneofCase.None)
            {
                var (query, _) = reader.Operand(request.Query, "query");
                RequestReader.SameFeatures(support, "support", query, "query");
                reader.CheckElements(query.shape[0] * support.shape[0], "query x support");
                response.Predictions = GramMatrix.Compute(kernel, query, support).matmul(alpha).ToMessage();
                metrics.Computed(nameof(SolveKrr), query.shape[0] * support.shape[0]);
            }
            metrics.Computed(nameof(SolveKrr), support.shape[0] * support.shape[0]);
            return response;
        }, context.CancellationToken);
    }

    public override Task<EvaluateKrrResponse> EvaluateKrr(EvaluateKrrRequest request, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var kernel = RequestReader.Kernel(request.Kernel).Create();
            var regularization = RequestReader.Regularization(request.Regularization);
            var dataset = datasets.Get(request.DatasetId, "dataset_id");
            var split = dataset.Split(request.Split == Split.Train ? Split.Train : Split.Test);
            using var scope = NewDisposeScope();
            var support = reader.Support(request.Support, dataset);
            var labels = Labels(request.SupportLabels, "support_labels", support.shape[0], dataset.ClassCount);
            reader.CheckElements(split.Count * support.shape[0], "split x support");
            var result = KrrEvaluator.Evaluate(kernel, support, labels, split.Features, split.Labels, split.Targets, regularization);
            metrics.Computed(nameof(EvaluateKrr), split.Count * support.shape[0]);
            return new EvaluateKrrResponse
            {
                Accuracy = result.Accuracy, Mse = result.Mse, Count = result.Count, SolveMethod = result.Method.ToString(),
            };
        }, context.CancellationToken);
    }

    public override Task<KipShardResponse> KipShardStep(KipShardRequest request, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var kernel = RequestReader.Kernel(request.Kernel).Create();
            var regularization = RequestReader.Regularization(request.Regularization);
            using var scope = NewDisposeScope();
            var (dataset, split, index) = reader.Rows(request.Targets, "targets");
            var support = reader.Support(request.Support, dataset);
            var labels = Labels(request.SupportLabels, "support_labels", support.shape[0], dataset.ClassCount);
            var count = index.shape[0];
            var total = request.TotalTargets == 0 ? count : request.TotalTargets;
            if (total < count)
                throw new ArgumentException($"total_targets: {total} is less than this shard's {count} targets", "total_targets");
            reader.CheckElements(count * support.shape[0], "targets x support");

            var objective = new KipObjective(kernel, regularization);
            using var result = objective.ShardStep(support, labels, split.Features.index_select(0, index), split.Targets.index_select(0, index),
                total, request.WantLabelGradient);
            metrics.Computed(nameof(KipShardStep), (count + support.shape[0]) * support.shape[0]);
            var response = new KipShardResponse
            {
                Loss = result.Loss,
                Reduction = result.Reduction.ToMessage(),
                SupportGradient = result.SupportGradient.ToMessage(),
                SolveMethod = result.Method.ToString(),
                TargetCount = count,
            };
            response.ComputeSeconds = watch.Elapsed.TotalSeconds;
            if (result.LabelGradient is not null) response.LabelGradient = result.LabelGradient.ToMessage();
            return response;
        }, context.CancellationToken);
    }

    public override Task<LabelSolveShardResponse> LabelSolveShard(LabelSolveShardRequest request, ServerCallContext context)
    {
        var kernel = RequestReader.Kernel(request.Kernel).Create();
        return compute.RunAsync(() =>
        {
            using var scope = NewDisposeScope();
            var (dataset, split, index) = reader.Rows(request.Targets, "targets");
            var support = reader.Support(request.Support, dataset);
            reader.CheckElements(index.shape[0] * support.shape[0], "targets x support");
            var (normal, projected) = LabelSolver.Accumulate(kernel, support, split.Features.index_select(0, index), split.Targets.index_select(0, index));
            metrics.Computed(nameof(LabelSolveShard), (index.shape[0] + support.shape[0]) * support.shape[0]);
            return new LabelSolveShardResponse
            {
                Normal = normal.ToMessage(), Projected = projected.ToMessage(), SupportGram = kernel.ComputeSymmetric(support).ToMessage(),
            };
        }, context.CancellationToken);
    }

    private Tensor Labels(Protos.Kernel.V1.Tensor? message, string field, long rows, int? classCount)
    {
        var labels = reader.Matrix(message, field);
        if (labels.shape[0] != rows)
            throw new ArgumentException($"{field}: {labels.shape[0]} rows for {rows} support images", field);
        if (classCount is { } c && labels.shape[1] != c)
            throw new ArgumentException($"{field}: {labels.shape[1]} columns, the dataset has {c} classes", field);
        return labels;
    }

    private Tensor Cotangent(Protos.Kernel.V1.Tensor? message, long rows, long columns)
    {
        var cotangent = reader.Matrix(message, "cotangent");
        if (cotangent.shape[0] != rows || cotangent.shape[1] != columns)
            throw new ArgumentException($"cotangent: shape [{cotangent.shape[0]},{cotangent.shape[1]}] should be [{rows},{columns}]", "cotangent");
        return cotangent;
    }
}
