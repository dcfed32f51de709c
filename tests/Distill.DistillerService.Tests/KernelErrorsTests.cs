using Distill.Adapters.Clients;
using Distill.DistillerService.Kernels;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;
using Status = Google.Rpc.Status;

namespace Distill.DistillerService.Tests;

/// <summary>Which kernel service errors the distiller retries, read from their google.rpc details.</summary>
public class KernelErrorsTests
{
    private static RpcException Error(Code code, string reason, TimeSpan? retryAfter = null)
    {
        var status = new Status { Code = (int)code, Message = "what happened" };
        status.Details.Add(Any.Pack(new ErrorInfo { Reason = reason, Domain = "distill" }));
        if (retryAfter is { } delay) status.Details.Add(Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(delay) }));
        return status.ToRpcException();
    }

    [Theory]
    [InlineData(Code.Unavailable, "", false, true)]
    [InlineData(Code.DeadlineExceeded, "", false, true)]
    [InlineData(Code.ResourceExhausted, "SERVER_BUSY", true, true)]
    [InlineData(Code.ResourceExhausted, "DATASET_BUDGET_EXCEEDED", false, false)]
    [InlineData(Code.InvalidArgument, "INVALID_FIELD", false, false)]
    [InlineData(Code.Internal, "INTERNAL", false, false)]
    [InlineData(Code.Unknown, "", false, false)]
    public void IsRetryable_ByCodeAndRetryInfo_OnlyOutagesAndRetryInfo(Code code, string reason, bool withRetryInfo, bool retryable)
    {
        var error = Error(code, reason, withRetryInfo ? TimeSpan.FromMilliseconds(250) : null);
        Assert.Equal(retryable, KernelErrors.IsRetryable(error));
        Assert.Equal(withRetryInfo ? TimeSpan.FromMilliseconds(250) : null, KernelErrors.RetryDelay(error));
    }

    [Fact]
    public void Describe_AnError_NamesServiceCodeReasonAndMessage()
    {
        var error = Error(Code.ResourceExhausted, "DATASET_BUDGET_EXCEEDED");
        Assert.Equal("DATASET_BUDGET_EXCEEDED", KernelErrors.Reason(error));
        Assert.Equal("kernel service http://k:5051 failed: ResourceExhausted (DATASET_BUDGET_EXCEEDED): what happened",
            KernelErrors.Describe("http://k:5051", error));
        Assert.Null(KernelErrors.Reason(new RpcException(new global::Grpc.Core.Status(StatusCode.NotFound, "dataset gone"))));
    }
}
