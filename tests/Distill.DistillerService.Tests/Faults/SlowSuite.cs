namespace Distill.DistillerService.Tests.Faults;

/// <summary>Tests of a minute or more run only in the opt-in slow suite (./test.sh --slow sets DISTILL_SLOW_TESTS=1).</summary>
internal static class SlowSuite
{
    public static void Require() =>
        Skip.IfNot(Environment.GetEnvironmentVariable("DISTILL_SLOW_TESTS") == "1", "slow suite not requested (./test.sh --slow)");
}
