using Distill.ServiceDefaults;

namespace Distill.KernelService.Tests;

/// <summary>The container health check: SERVICE --health-probe against the service's own port.</summary>
public class HealthProbeTests
{
    [Fact]
    public void WithoutTheSwitch_DoesNothing() => Assert.Null(HealthProbe.RunIfAsked(["--urls", "http://127.0.0.1:1"], 5051));

    [Fact]
    public async Task ServingService_ExitsZero_NothingListening_ExitsOne()
    {
        // The probe reads Server__Port first; this test needs it unset to aim at its own server.
        if (Environment.GetEnvironmentVariable("Server__Port") is not null) return;
        var server = await LoopbackKernelServer.StartAsync();
        var port = new Uri(server.Address).Port;
        Assert.Equal(0, HealthProbe.RunIfAsked([HealthProbe.Argument], port));
        await server.DisposeAsync();
        Assert.Equal(1, HealthProbe.RunIfAsked([HealthProbe.Argument], port));
    }
}
