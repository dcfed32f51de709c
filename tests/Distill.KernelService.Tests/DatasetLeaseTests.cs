using Distill.Adapters.Conversions;
using Distill.KernelService.Datasets;
using Distill.Protos.Kernel.V1;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static Distill.KernelService.Tests.Messages;

namespace Distill.KernelService.Tests;

/// <summary>Datasets as leased resources: expiry, renewal by use, drops that wait for readers, pages, budgets.</summary>
public class DatasetLeaseTests
{
    private static readonly Duration Minute = Duration.FromTimeSpan(TimeSpan.FromMinutes(1));

    private static async Task<Dataset> UploadLeasedAsync(LoopbackKernelServer server, int rows = 8, string name = "leased", long[]? imageShape = null)
    {
        using var call = server.Client.UploadDataset();
        var message = new UploadDatasetRequest
        {
            Header = new UploadDatasetHeader { DisplayName = name, ClassCount = 2, ImageShape = { imageShape ?? [4] }, LeaseTtl = Minute },
            Features = Random(rows, 4, 1).ToMessage(),
        };
        message.Labels.AddRange(Enumerable.Range(0, rows).Select(i => i % 2));
        await call.RequestStream.WriteAsync(message);
        await call.RequestStream.CompleteAsync();
        return await call;
    }

    private static Task<GramBlock> FirstBlockAsync(LoopbackKernelServer server, string dataset) =>
        server.Client.ComputeGram(new ComputeGramRequest { X1 = Rows(dataset, 0, 2), X2 = Inline(Random(2, 4, 2)) })
            .ResponseStream.ReadAllAsync().FirstAsync().AsTask();

    [Fact]
    public async Task Lease_UnusedPastItsTimeToLive_DatasetIsDroppedAndNamedNotFound()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        await using var server = await LoopbackKernelServer.StartAsync(time: time);
        var dataset = await UploadLeasedAsync(server);
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromMinutes(1), dataset.ExpireTime.ToDateTimeOffset());

        time.Advance(TimeSpan.FromSeconds(61));

        Assert.Empty((await server.Client.ListDatasetsAsync(new ListDatasetsRequest())).Datasets);
        var error = await Assert.ThrowsAsync<RpcException>(() => FirstBlockAsync(server, dataset.Name));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        var status = error.GetRpcStatus()!;
        Assert.Equal("DATASET_NOT_FOUND", status.GetDetail<ErrorInfo>()!.Reason);
        Assert.Equal(dataset.Name, status.GetDetail<ResourceInfo>()!.ResourceName);
        Assert.Equal(0, (await server.Client.GetServerInfoAsync(new GetServerInfoRequest())).DatasetElements);
    }

    [Fact]
    public async Task Lease_UsedWithinItsTimeToLive_IsRenewed()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        await using var server = await LoopbackKernelServer.StartAsync(time: time);
        var dataset = await UploadLeasedAsync(server);

        time.Advance(TimeSpan.FromSeconds(40));
        await FirstBlockAsync(server, dataset.Name);
        time.Advance(TimeSpan.FromSeconds(40));

        var listed = Assert.Single((await server.Client.ListDatasetsAsync(new ListDatasetsRequest())).Datasets);
        Assert.Equal(time.GetUtcNow() + TimeSpan.FromSeconds(20), listed.ExpireTime.ToDateTimeOffset());
    }

    [Fact]
    public async Task Drop_WhileACallReadsTheDataset_FreesItOnlyWhenTheReaderEnds()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var dataset = await UploadLeasedAsync(server);
        var registry = server.App.Services.GetRequiredService<DatasetRegistry>();

        var reader = registry.Use(dataset.Name, "test");
        await server.Client.DropDatasetAsync(new DropDatasetRequest { Name = dataset.Name });

        // Gone for new calls, but the running one still reads valid memory.
        Assert.Equal(StatusCode.NotFound, (await Assert.ThrowsAsync<RpcException>(() => FirstBlockAsync(server, dataset.Name))).StatusCode);
        Assert.False(reader.Resource.Train.Features.IsInvalid);
        Assert.Equal(8, reader.Resource.Train.Features.shape[0]);
        reader.Dispose();
        Assert.True(reader.Resource.Train.Features.IsInvalid);
    }

    [Fact]
    public async Task ListDatasets_InPages_ReturnsEachOnceAndRefusesATokenOfAnotherOrder()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        foreach (var name in new[] { "c", "a", "b" }) await UploadLeasedAsync(server, name: name);

        var first = await server.Client.ListDatasetsAsync(new ListDatasetsRequest { PageSize = 2, OrderBy = "display_name" });
        var second = await server.Client.ListDatasetsAsync(new ListDatasetsRequest { PageSize = 2, OrderBy = "display_name", PageToken = first.NextPageToken });

        Assert.Equal(["a", "b", "c"], first.Datasets.Concat(second.Datasets).Select(d => d.DisplayName));
        Assert.Equal(3, first.TotalSize);
        Assert.Equal("", second.NextPageToken);
        var error = await Assert.ThrowsAsync<RpcException>(() => server.Client.ListDatasetsAsync(
            new ListDatasetsRequest { PageSize = 2, OrderBy = "create_time", PageToken = first.NextPageToken }).ResponseAsync);
        Assert.Equal("page_token", Assert.Single(error.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }

    [Fact]
    public async Task Upload_OverTheDatasetBudget_IsAQuotaFailureWithoutRetry()
    {
        await using var server = await LoopbackKernelServer.StartAsync(new Dictionary<string, string?> { ["KernelService:MaxDatasetElements"] = "60" });
        await UploadLeasedAsync(server, rows: 8);  // 8 x (4 + 2) = 48 elements

        var error = await Assert.ThrowsAsync<RpcException>(() => UploadLeasedAsync(server, rows: 8));

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        var status = error.GetRpcStatus()!;
        Assert.Equal("DATASET_BUDGET_EXCEEDED", status.GetDetail<ErrorInfo>()!.Reason);
        Assert.Equal("KernelService:MaxDatasetElements", Assert.Single(status.GetDetail<QuotaFailure>()!.Violations).Subject);
        Assert.Null(status.GetDetail<RetryInfo>());
    }

    [Fact]
    public async Task KipShardStep_SupportSentAsImages_GradientComesBackInTheirShapeWithTheSameValues()
    {
        await using var server = await LoopbackKernelServer.StartAsync();
        var dataset = await UploadLeasedAsync(server, rows: 12, imageShape: [1, 2, 2]);
        var support = Random(2, 4, 7);
        KipShardStepRequest Request(Protos.Kernel.V1.Tensor s) => new()
        {
            Support = s, SupportLabels = Labels(2, 2).ToMessage(),
            Targets = new DatasetRows { Dataset = dataset.Name, Ranges = { new IndexRange { Start = 0, Count = 12 } } },
        };

        var flat = await server.Client.KipShardStepAsync(Request(support.ToMessage()));
        var shaped = await server.Client.KipShardStepAsync(Request(support.ToMessage(shape: [2, 1, 2, 2])));

        Assert.Equal([2L, 1, 2, 2], shaped.SupportGradient.Shape);
        Assert.Equal([2L, 4], flat.SupportGradient.Shape);
        Assert.Equal(flat.SupportGradient.Data, shaped.SupportGradient.Data);
        Assert.Equal(flat.Loss, shaped.Loss);
        Assert.True(shaped.ComputeTime.ToTimeSpan() > TimeSpan.Zero);

        var wrongShape = await Assert.ThrowsAsync<RpcException>(() => server.Client.KipShardStepAsync(Request(support.ToMessage(shape: [2, 1, 1, 4]))).ResponseAsync);
        Assert.Equal("support.shape", Assert.Single(wrongShape.GetRpcStatus()!.GetDetail<BadRequest>()!.FieldViolations).Field);
    }
}
