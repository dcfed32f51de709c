using System.IO.Compression;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using static Distill.KernelService.Tests.Messages;

namespace Distill.KernelService.Tests;

public sealed class DatasetTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("distill-data-root-");

    [Fact]
    public async Task RegisterDataset_IdxFolderUnderDataRoot_IsListedAndDroppable()
    {
        WriteTinyIdx(Path.Combine(_root.FullName, "tiny"));
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:DataRoot"] = _root.FullName });

        var info = await server.Client.RegisterDatasetAsync(new RegisterDatasetRequest { Path = "tiny", Preprocessing = new Preprocessing { Standardize = true } });

        Assert.Equal("tiny", info.DisplayName);
        Assert.StartsWith("datasets/ds-", info.Name);
        Assert.Equal(20, info.TrainCount);
        Assert.Equal(10, info.TestCount);
        Assert.Equal(16, info.FeatureCount);
        Assert.Equal(new long[] { 1, 4, 4 }, info.ImageShape);
        var listed = await server.Client.ListDatasetsAsync(new ListDatasetsRequest());
        Assert.Contains(listed.Datasets, d => d.Name == info.Name);

        await server.Client.DropDatasetAsync(new DropDatasetRequest { Name = info.Name });
        Assert.Empty((await server.Client.ListDatasetsAsync(new ListDatasetsRequest())).Datasets);
        var again = await Assert.ThrowsAsync<RpcException>(() => server.Client.DropDatasetAsync(new DropDatasetRequest { Name = info.Name }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, again.StatusCode);
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("/etc")]
    public async Task RegisterDataset_PathOutsideDataRoot_IsRefused(string path)
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:DataRoot"] = _root.FullName });
        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.RegisterDatasetAsync(new RegisterDatasetRequest { Path = path }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("outside the server's data root", error.Status.Detail);
    }

    [Fact]
    public async Task RegisterDataset_SymlinkLeadingOutside_IsRefused()
    {
        var outside = Directory.CreateTempSubdirectory("distill-outside-");
        try
        {
            Directory.CreateSymbolicLink(Path.Combine(_root.FullName, "link"), outside.FullName);
            await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:DataRoot"] = _root.FullName });
            var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.RegisterDatasetAsync(new RegisterDatasetRequest { Path = "link" }).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        }
        finally
        {
            outside.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task RegisterDataset_MissingFolderOrNoDataRoot_SaysWhy()
    {
        await using (var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:DataRoot"] = _root.FullName }))
        {
            var missing = await Assert.ThrowsAsync<RpcException>(() => server.Client.RegisterDatasetAsync(new RegisterDatasetRequest { Path = "nothing" }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, missing.StatusCode);
        }
        await using (var server = await LoopbackKernelServer.StartAsync())
        {
            var disabled = await Assert.ThrowsAsync<RpcException>(() => server.Client.RegisterDatasetAsync(new RegisterDatasetRequest { Path = "tiny" }).ResponseAsync);
            Assert.Equal(StatusCode.FailedPrecondition, disabled.StatusCode);
            Assert.Contains("DataRoot", disabled.Status.Detail);
        }
    }

    [Fact]
    public async Task RegisterDataset_HeaderDeclaringMoreThanTheBudget_IsRefusedAtOnceWithAQuotaFailure()
    {
        // The reported case: a small gzip file whose header declares 4,000,000 images of 28x28.
        WriteTinyIdx(Path.Combine(_root.FullName, "huge"));
        var images = Path.Combine(_root.FullName, "huge", "train-images-idx3-ubyte.gz");
        using (var file = File.Create(images))
        using (var gzip = new GZipStream(file, CompressionLevel.Fastest))
        {
            foreach (var v in new[] { 0x803, 4_000_000, 28, 28 })
                gzip.Write(BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v)));
            gzip.Write(new byte[1 << 20]);
        }
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?>
        {
            ["KernelService:DataRoot"] = _root.FullName, ["KernelService:MaxDatasetElements"] = "100000000",
        });

        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.RegisterDatasetAsync(new RegisterDatasetRequest { Path = "huge" }).ResponseAsync);

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        var status = error.GetRpcStatus()!;
        Assert.Equal("KernelService:MaxDatasetElements", Assert.Single(status.GetDetail<Google.Rpc.QuotaFailure>()!.Violations).Subject);
        Assert.Equal("DATASET_BUDGET_EXCEEDED", status.GetDetail<Google.Rpc.ErrorInfo>()!.Reason);
        Assert.Contains("4000000 images of 28x28", error.Status.Detail);
        Assert.DoesNotContain(_root.FullName, error.Status.Detail);
        Assert.Equal(0, (await server.Client.GetServerInfoAsync(new GetServerInfoRequest())).DatasetCount);
    }

    [Fact]
    public async Task UploadDataset_InChunks_KeepsRowsAndLabelsInOrder()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var train = Random(50, 6, 1);
        var info = await UploadAsync(server.Client, train, Random(7, 6, 2), classes: 5, chunkRows: 8);
        Assert.Equal(50, info.TrainCount);
        Assert.Equal(7, info.TestCount);
        Assert.Equal(5, info.ClassCount);

        // Rows 40..49 through the service equal the rows sent.
        using var call = server.Client.ComputeGram(new ComputeGramRequest { X1 = Rows(info.Name, 40, 10), X2 = Inline(train.narrow(0, 40, 10)), Kernel = new KernelSpec { FullyConnected = new FullyConnectedSpec { Depth = 0 } } });
        var gram = (await call.ResponseStream.ReadAllAsync().FirstAsync()).Block.ToTorch();
        var direct = new Core.Kernels.FullyConnectedKernel(new Core.Kernels.KernelSpec(Depth: 0)).Compute(train.narrow(0, 40, 10), train.narrow(0, 40, 10));
        Core.Tests.TensorAssert.Close(direct, gram, 1e-12, "rows");
    }

    private static void WriteTinyIdx(string directory)
    {
        Directory.CreateDirectory(directory);
        void Write(string name, byte[] header, byte[] body)
        {
            using var file = File.Create(Path.Combine(directory, name));
            using var gzip = new GZipStream(file, CompressionLevel.Fastest);
            gzip.Write(header);
            gzip.Write(body);
        }
        byte[] Header(int magic, params int[] dims) =>
            new[] { magic }.Concat(dims).SelectMany(v => BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v))).ToArray();
        foreach (var (prefix, n) in new[] { ("train", 20), ("t10k", 10) })
        {
            Write($"{prefix}-images-idx3-ubyte.gz", Header(0x803, n, 4, 4), Enumerable.Range(0, n * 16).Select(i => (byte)(i * 7 % 256)).ToArray());
            Write($"{prefix}-labels-idx1-ubyte.gz", Header(0x801, n), Enumerable.Range(0, n).Select(i => (byte)(i % 10)).ToArray());
        }
    }

    public void Dispose() => _root.Delete(recursive: true);
}
