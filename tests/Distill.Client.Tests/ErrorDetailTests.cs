using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using Grpc.Core;

namespace Distill.Client.Tests;

public class ErrorDetailTests
{
    [Fact]
    public void Rich_status_details_are_decoded()
    {
        var status = new Google.Rpc.Status { Code = (int)Code.InvalidArgument, Message = "spec.steps must be 1 or more" };
        status.Details.Add(Any.Pack(new ErrorInfo { Reason = "INVALID_FIELD", Domain = "distill" }));
        status.Details.Add(Any.Pack(new BadRequest
        {
            FieldViolations =
            {
                new BadRequest.Types.FieldViolation { Field = "spec.steps", Description = "must be 1 or more" },
                new BadRequest.Types.FieldViolation { Field = "spec.support_per_class", Description = "must be 1 or more" },
                new BadRequest.Types.FieldViolation { Field = "spec.steps", Description = "must be 0 for Label Solve" },
            },
        }));
        status.Details.Add(Any.Pack(new RetryInfo { RetryDelay = Duration.FromTimeSpan(TimeSpan.FromSeconds(2.5)) }));
        status.Details.Add(Any.Pack(new DebugInfo { Detail = "a detail this client skips" }));

        var error = DistillerException.FromRpcException(status.ToRpcException());

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("spec.steps must be 1 or more", error.Detail);
        Assert.Equal("INVALID_FIELD", error.Reason);
        Assert.Equal("distill", error.Domain);
        Assert.Equal(2, error.FieldViolations.Count);
        Assert.Equal("must be 1 or more; must be 0 for Label Solve", error.FieldViolations["spec.steps"]);
        Assert.Equal("must be 1 or more", error.FieldViolations["spec.support_per_class"]);
        Assert.Equal(TimeSpan.FromSeconds(2.5), error.RetryDelay);
        Assert.True(error.IsRetryable);
        Assert.IsType<RpcException>(error.InnerException);
    }

    [Fact]
    public void Not_found_and_state_conflicts_name_their_subject()
    {
        var missing = new Google.Rpc.Status { Code = (int)Code.NotFound, Message = "no run runs/run-x" };
        missing.Details.Add(Any.Pack(new ErrorInfo { Reason = "RUN_NOT_FOUND", Domain = "distill" }));
        missing.Details.Add(Any.Pack(new ResourceInfo { ResourceType = "run", ResourceName = "runs/run-x" }));
        var conflict = new Google.Rpc.Status { Code = (int)Code.FailedPrecondition, Message = "run is running" };
        conflict.Details.Add(Any.Pack(new ErrorInfo { Reason = "RUN_STATE_CONFLICT", Domain = "distill" }));
        conflict.Details.Add(Any.Pack(new PreconditionFailure
        {
            Violations = { new PreconditionFailure.Types.Violation { Type = "RUN_STATE_CONFLICT", Subject = "runs/run-x", Description = "RUNNING" } },
        }));

        var notFound = DistillerException.FromStatus(missing);
        var state = DistillerException.FromStatus(conflict);

        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        Assert.Equal("runs/run-x", notFound.ResourceName);
        Assert.False(notFound.IsRetryable);
        Assert.Equal("RUN_STATE_CONFLICT", state.Reason);
        Assert.Equal(new PreconditionViolation("RUN_STATE_CONFLICT", "runs/run-x", "RUNNING"), Assert.Single(state.PreconditionViolations));
        Assert.Empty(state.FieldViolations);
    }

    [Fact]
    public void A_status_without_details_keeps_code_and_message()
    {
        var error = DistillerException.FromRpcException(new RpcException(new Grpc.Core.Status(StatusCode.Unavailable, "connection refused")));

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Equal("connection refused", error.Detail);
        Assert.Null(error.Reason);
        Assert.Null(error.RetryDelay);
        Assert.Empty(error.FieldViolations);
        Assert.True(error.IsRetryable);
    }

    [Fact]
    public void Violations_for_a_form_split_into_its_fields_and_the_rest()
    {
        var error = new DistillerException(StatusCode.InvalidArgument, "invalid", fieldViolations: new Dictionary<string, string>
        {
            ["spec.transfer.width"] = "must be at most 1024",
            ["spec.steps"] = "must be positive",
            ["run"] = "unknown",
        });

        var (fields, others) = error.ViolationsFor(path => path == "spec.transfer.width" ? "width" : path == "spec.steps" ? "steps" : null);

        Assert.Equal(new Dictionary<string, string> { ["width"] = "must be at most 1024", ["steps"] = "must be positive" }, fields);
        Assert.Equal(["run: unknown"], others);
    }
}
