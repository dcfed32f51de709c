using System.Diagnostics;
using System.Security.Cryptography;
using Distill.Adapters.Conversions;
using Distill.Core.Errors;
using Distill.Core.FeaturePool;
using Distill.Core.Kernels;
using Distill.KernelService.FeaturePools;
using Distill.Protos.Kernel.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using static TorchSharp.torch;
using KernelSpec = Distill.Protos.Kernel.V1.KernelSpec;

namespace Distill.KernelService.Grpc;

/// <summary>Feature-pool KIP: pools of target features held here, and steps over their rows.</summary>
public sealed partial class KernelGrpcService
{
    public override Task<FeaturePool> RegisterFeaturePool(RegisterFeaturePoolRequest request, ServerCallContext context) =>
        RegisterAsync(request, progress: null, context);

    public override Task StreamRegisterFeaturePool(StreamRegisterFeaturePoolRequest request,
        IServerStreamWriter<StreamRegisterFeaturePoolResponse> responseStream, ServerCallContext context)
    {
        if (request.Registration is null) throw new InvalidFieldException("registration", "required");
        return StreamWithProgressAsync<FeaturePoolProgress, FeaturePool, StreamRegisterFeaturePoolResponse>(
            progress => RegisterAsync(request.Registration, progress, context),
            progress => new() { Progress = progress }, pool => new() { Pool = pool }, responseStream, context);
    }

    private Task<FeaturePool> RegisterAsync(RegisterFeaturePoolRequest request, Action<FeaturePoolProgress>? progress, ServerCallContext context)
    {
        return compute.RunAsync(() =>
        {
            var watch = Stopwatch.StartNew();
            if (request.Networks is null) throw new InvalidFieldException("networks", "required");
            Core.Kernels.KernelSpec spec;
            try { spec = new KernelSpec { RandomFeatures = request.Networks }.ToCore(); }
            catch (InvalidFieldException e) { throw e.Within("networks", "kernel.random_features"); }
            var type = request.FeatureType switch
            {
                DataType.Unspecified or DataType.Float32 => ScalarType.Float32,
                DataType.Float64 => ScalarType.Float64,
                _ => throw new InvalidFieldException("feature_type", $"unknown data type {(int)request.FeatureType}"),
            };
            var ttl = LeaseTtl(request.LeaseTtl, "lease_ttl");
            using var targets = reader.Rows(request.Targets, "targets");
            var dataset = targets.Dataset;
            if (dataset.ImageShape.Count != 3)
                throw new InvalidFieldException("targets.dataset", $"{dataset.Name} has no C x H x W image shape for a ConvNet to read");
            try { spec.CheckImageShape(dataset.ImageShape[0], dataset.ImageShape[1], dataset.ImageShape[2]); }
            catch (InvalidFieldException e) { throw e.Within("networks", "kernel"); }

            var features = spec.RandomFeatures!;
            reader.CheckNetworkWidth(features.Width, "networks.width");
            // One network's first activations over every row are computed at once.
            reader.CheckElements(targets.Count * features.Width * dataset.ImageShape[1] * dataset.ImageShape[2], "targets");
            var source = new RandomFeatureConvKernel(spec with { RandomFeatures = null }, features.Networks, features.Width, features.Seed);
            var (first, count) = request.NetworkRange is { } range ? (range.Start, range.Count) : (0, source.Networks);
            if (first < 0 || count < 1 || first > source.Networks - count)
                throw new InvalidFieldException("network_range", $"[{first}, {first + count}) is not a range of the pool's {source.Networks} networks");
            long bytes = NetworkFeatureBuffer.SizeOf((int)count, targets.Count, source.FeatureCount, type);
            var id = PoolId(request);
            var cancellation = context.CancellationToken;
            var (pool, computed) = pools.Register(id, bytes, () =>
            {
                using var scope = NewDisposeScope();
                var shard = FeaturePoolShard.Compute(source, targets.Split.Features.index_select(0, targets.Index),
                    targets.Split.Targets.index_select(0, targets.Index),
                    type, long.MaxValue, (done, total) =>
                    {
                        progress?.Invoke(new FeaturePoolProgress { NetworksDone = done, TotalNetworks = total });
                        cancellation.ThrowIfCancellationRequested();
                    }, first: (int)first, count: (int)count);
                return new HeldFeaturePool(id, dataset.Name, dataset.ClassCount, dataset.ImageShape, shard) { LeaseTtl = ttl };
            });
            if (computed) metrics.Computed(nameof(RegisterFeaturePool), count * targets.Count);
            return pool.ToMessage(computed ? watch.Elapsed : TimeSpan.Zero);
        }, context.CancellationToken);
    }

    public override Task<DropFeaturePoolResponse> DropFeaturePool(DropFeaturePoolRequest request, ServerCallContext context)
    {
        pools.Drop(request.Name, "name");
        return Task.FromResult(new DropFeaturePoolResponse());
    }

    public override Task<FeaturePoolStepResponse> FeaturePoolStep(FeaturePoolStepRequest request, ServerCallContext context) =>
        OnPoolAsync(nameof(FeaturePoolStep), request.Pool, request.Support, request.Networks.Count, request.Rows.Count, context, (pool, support) =>
        {
            var labels = Labels(request.SupportLabels, "support_labels", support.Rows.shape[0], pool.ClassCount);
            var loss = request.Loss.ToCore();
            if (request.HasLogScale && !double.IsFinite(request.LogScale))
                throw new InvalidFieldException("log_scale", $"must be finite, got {request.LogScale}");
            var regularization = RequestReader.Regularization(request.HasRegularization, request.Regularization);
            long total = request.TotalTargets == 0 ? request.Rows.Count : request.TotalTargets;
            using var result = pool.Shard.Step(new PoolStepRequest(support.Rows, labels, request.HasLogScale ? request.LogScale : null,
                request.Networks.ToArray(), request.Rows.ToArray(), total, request.WantLabelGradient, Step: 0), loss, regularization);
            var response = new FeaturePoolStepResponse
            {
                Loss = result.Loss, Correct = result.Correct, TargetCount = result.Count,
                SupportGradient = result.SupportGradient.ToMessage(shape: support.Shape), LogScaleGradient = result.ScaleGradient,
            };
            if (result.LabelGradient is not null) response.LabelGradient = result.LabelGradient.ToMessage();
            return response;
        }, (response, time) => response.ComputeTime = time);

    public override Task<FeaturePoolProductsResponse> FeaturePoolProducts(FeaturePoolProductsRequest request, ServerCallContext context) =>
        OnPoolAsync(nameof(FeaturePoolProducts), request.Pool, request.Support, request.Networks.Count, request.Rows.Count, context, (pool, support) =>
        {
            var products = pool.Shard.Products(support.Rows, request.Networks.ToArray(), request.Rows.ToArray());
            var response = new FeaturePoolProductsResponse
            {
                SupportProducts = products.SupportProducts.detach().ToMessage(), TargetProducts = products.TargetProducts.detach().ToMessage(),
            };
            if (request.KeepForGradient) response.GradientToken = pool.Keep(products);
            else products.Dispose();
            return response;
        }, (response, time) => response.ComputeTime = time);

    public override Task<FeaturePoolProductsGradientResponse> FeaturePoolProductsGradient(FeaturePoolProductsGradientRequest request, ServerCallContext context) =>
        OnPoolAsync(nameof(FeaturePoolProductsGradient), request.Pool, request.Support, request.Networks.Count, request.Rows.Count, context, (pool, support) =>
        {
            var supportCotangent = reader.Matrix(request.SupportCotangent, "support_cotangent");
            var targetCotangent = reader.Matrix(request.TargetCotangent, "target_cotangent");
            using var kept = pool.Take(request.GradientToken);
            var gradient = kept is not null
                ? kept.Gradient(supportCotangent, targetCotangent)
                : pool.Shard.ProductsGradient(support.Rows, request.Networks.ToArray(), request.Rows.ToArray(), supportCotangent, targetCotangent);
            return new FeaturePoolProductsGradientResponse { SupportGradient = gradient.ToMessage(shape: support.Shape) };
        }, (response, time) => response.ComputeTime = time);

    /// <summary>
    /// A pool call on the compute thread: the pool held while it runs, the support read and checked
    /// (<see cref="PoolSupport"/>), tensors in one dispose scope, the work counted, and the compute
    /// time put on the response.
    /// </summary>
    private Task<T> OnPoolAsync<T>(string method, string poolName, Protos.Kernel.V1.Tensor? supportMessage, int networks, int rows,
        ServerCallContext context, Func<HeldFeaturePool, InlineImages, T> work, Action<T, Duration> setComputeTime) =>
        compute.RunAsync(() =>
        {
            var watch = Stopwatch.StartNew();
            using var use = pools.Use(poolName, "pool");
            using var scope = NewDisposeScope();
            var support = PoolSupport(supportMessage, use.Resource, networks, rows);
            var response = work(use.Resource, support);
            metrics.Computed(method, (rows + support.Rows.shape[0]) * support.Rows.shape[0] * networks);
            setComputeTime(response, Duration.FromTimeSpan(watch.Elapsed));
            return response;
        }, context.CancellationToken);

    /// <summary>
    /// The inline support of a pool call, which must be the pool's images, and the bounds every
    /// pool call shares: at least one network and row, and Gram entries and support features
    /// within KernelService:MaxElementsPerRequest.
    /// </summary>
    private InlineImages PoolSupport(Protos.Kernel.V1.Tensor? message, HeldFeaturePool pool, int networks, int rows)
    {
        var support = reader.Images(message, "support");
        long featureCount = pool.ImageShape.Aggregate(1L, (a, b) => a * b);
        if (support.Rows.shape[1] != featureCount)
            throw new InvalidFieldException("support", $"has {support.Rows.shape[1]} features, the pool's images have {featureCount}");
        if (support.Shape.Length > 2 && !support.Shape.Skip(1).SequenceEqual(pool.ImageShape))
            throw new InvalidFieldException("support.shape", $"images are [{string.Join(",", support.Shape.Skip(1))}], the pool's are [{string.Join(",", pool.ImageShape)}]");
        if (networks == 0) throw new InvalidFieldException("networks", "name at least one of the pool's networks");
        if (rows == 0) throw new InvalidFieldException("rows", "name at least one of the pool's targets");
        reader.CheckElements((rows + support.Rows.shape[0]) * support.Rows.shape[0] * networks, "rows x support x networks");
        return support;
    }

    /// <summary>A pool's id: a digest of what it holds, so the same registration finds the same pool.</summary>
    private static string PoolId(RegisterFeaturePoolRequest request)
    {
        var what = new RegisterFeaturePoolRequest
        {
            Networks = request.Networks, Targets = request.Targets, FeatureType = request.FeatureType, NetworkRange = request.NetworkRange,
        };
        return "fp-" + Convert.ToHexStringLower(SHA256.HashData(what.ToByteArray()))[..24];
    }
}
