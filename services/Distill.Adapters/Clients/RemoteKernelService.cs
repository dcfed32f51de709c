using Distill.Core.Distillation;
using Distill.Adapters.Conversions;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using static TorchSharp.torch;
using CoreKernelSpec = Distill.Core.Kernels.KernelSpec;
using Tensor = TorchSharp.torch.Tensor;

namespace Distill.Adapters.Clients;

/// <summary>
/// A typed client of one kernel service: engine values in, engine values out, so callers
/// never handle generated message types.
/// </summary>
public sealed class RemoteKernelService(KernelService.KernelServiceClient client, Metadata? headers = null)
{
    public async Task<Dataset> RegisterDatasetAsync(string path, bool standardize = true, bool zca = false, CancellationToken cancellation = default) =>
        await client.RegisterDatasetAsync(new RegisterDatasetRequest
        {
            Path = path,
            Preprocessing = new Preprocessing { Standardize = standardize, Zca = zca },
        }, headers, cancellationToken: cancellation);

    /// <summary>
    /// One shard of a KIP step on the service; the result has the same meaning as
    /// <see cref="KipObjective.ShardStep"/>'s, and ComputeTime is the server's share of the call.
    /// </summary>
    public async Task<(KipShardResult Result, TimeSpan ComputeTime)> KipShardStepAsync(CoreKernelSpec kernel, Tensor support, Tensor supportLabels,
        string dataset, long[] targetIndices, long totalTargets, double regularization, bool wantLabelGradient,
        CancellationToken cancellation = default)
    {
        var request = new KipShardStepRequest
        {
            Kernel = kernel.ToMessage(),
            Support = support.ToMessage(),
            SupportLabels = supportLabels.ToMessage(),
            Targets = new DatasetRows { Dataset = dataset, Split = Split.Train },
            TotalTargets = totalTargets,
            Regularization = regularization,
            WantLabelGradient = wantLabelGradient,
        };
        request.Targets.Indices.AddRange(targetIndices);
        var response = await client.KipShardStepAsync(request, headers, cancellationToken: cancellation);
        return (response.ToResult(), response.ComputeTime?.ToTimeSpan() ?? TimeSpan.Zero);
    }

    /// <summary>K(rows of a dataset, support) streamed in blocks; returns the number of entries received.</summary>
    public async Task<long> ComputeGramAsync(CoreKernelSpec kernel, string dataset, long start, long count, Tensor support,
        CancellationToken cancellation = default)
    {
        var request = new ComputeGramRequest
        {
            Kernel = kernel.ToMessage(),
            X1 = new Operand { Rows = new DatasetRows { Dataset = dataset, Ranges = { new IndexRange { Start = start, Count = count } } } },
            X2 = new Operand { Inline = support.ToMessage() },
        };
        using var call = client.ComputeGram(request, headers, cancellationToken: cancellation);
        long entries = 0;
        await foreach (var block in call.ResponseStream.ReadAllAsync(cancellation))
            entries += block.Block.Shape.Aggregate(1L, (a, b) => a * b);
        return entries;
    }
}
