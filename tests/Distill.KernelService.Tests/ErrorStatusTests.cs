using Distill.Core.Errors;
using Distill.ServiceDefaults;
using Google.Rpc;
using Grpc.Core;

namespace Distill.KernelService.Tests;

public class ErrorStatusTests
{
    // Every detail type the interceptor sends: QuotaFailure's violations carry a map
    // (quota_dimensions), which the clipping must step over, not treat as a list.
    [Fact]
    public void Error_LongTexts_AreCutInTheMessageAndInEveryDetail()
    {
        var text = new string('x', 100_000);

        var error = ExceptionStatusInterceptor.Error(Code.ResourceExhausted, text, ErrorReasons.ServerBusy,
            new QuotaFailure { Violations = { new QuotaFailure.Types.Violation { Subject = text, Description = text } } },
            new BadRequest { FieldViolations = { new BadRequest.Types.FieldViolation { Field = text, Description = text } } },
            new ResourceInfo { ResourceName = text },
            new PreconditionFailure { Violations = { new PreconditionFailure.Types.Violation { Subject = text } } });

        var status = error.GetRpcStatus()!;
        Assert.True(status.Message.Length <= ExceptionStatusInterceptor.MaxTextLength);
        Assert.True(status.CalculateSize() < 8 * ExceptionStatusInterceptor.MaxTextLength, $"{status.CalculateSize()} bytes");
        Assert.Equal(ErrorReasons.ServerBusy, status.GetDetail<ErrorInfo>()!.Reason);
        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
    }
}
