using Distill.Adapters.Conversions;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using static TorchSharp.torch;
using TensorMessage = Distill.Protos.Kernel.V1.Tensor;

namespace Distill.KernelService.Tests;

/// <summary>Request building blocks shared by the tests.</summary>
internal static class Messages
{
    public static Operand Inline(TorchSharp.torch.Tensor t) => new() { Inline = t.ToMessage() };

    public static Operand Rows(string dataset, long start, long count, Split split = Split.Train) =>
        new() { Rows = new DatasetRows { Dataset = dataset, Split = split, Ranges = { new IndexRange { Start = start, Count = count } } } };

    public static TorchSharp.torch.Tensor Random(long rows, long columns, ulong seed) =>
        randn(rows, columns, dtype: ScalarType.Float64, generator: new Generator(seed));

    /// <summary>
    /// Uploads an n x d dataset with labels i mod classes, streamed in chunks of <paramref name="chunkRows"/>;
    /// <paramref name="imageShape"/> (C, H, W) declares the rows as images, otherwise d flat features.
    /// </summary>
    public static async Task<Dataset> UploadAsync(Protos.Kernel.V1.KernelService.KernelServiceClient client,
        TorchSharp.torch.Tensor train, TorchSharp.torch.Tensor test, int classes, int chunkRows = 16, long[]? imageShape = null)
    {
        using var call = client.UploadDataset();
        bool first = true;
        foreach (var (split, features) in new[] { (Split.Train, train), (Split.Test, test) })
        {
            for (long start = 0; start < features.shape[0]; start += chunkRows)
            {
                var length = Math.Min(chunkRows, features.shape[0] - start);
                var message = new UploadDatasetRequest { Split = split, Features = features.narrow(0, start, length).ToMessage() };
                message.Labels.AddRange(Enumerable.Range((int)start, (int)length).Select(i => i % classes));
                if (first) message.Header = new UploadDatasetHeader { DisplayName = "upload", ClassCount = classes, ImageShape = { imageShape ?? [features.shape[1]] } };
                first = false;
                await call.RequestStream.WriteAsync(message);
            }
        }
        await call.RequestStream.CompleteAsync();
        return await call;
    }

    public static TorchSharp.torch.Tensor Labels(long rows, int classes) =>
        Core.Distillation.CenteredOneHot.Encode(Enumerable.Range(0, (int)rows).Select(i => i % classes).ToArray(), classes);

    public static TorchSharp.torch.Tensor ToTorch(this TensorMessage message) => message.ToTorch("test");

    /// <summary>The status a call failed with, and its message.</summary>
    public static async Task<RpcException> FailsAsync(Func<Task> call)
    {
        return await Assert.ThrowsAsync<RpcException>(call);
    }
}
