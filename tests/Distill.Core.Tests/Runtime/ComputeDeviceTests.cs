using Distill.Core.Distillation;
using Distill.Core.Runtime;
using static TorchSharp.torch;

namespace Distill.Core.Tests.Runtime;

public class ComputeDeviceTests
{
    [Theory]
    [InlineData("auto", "auto", false, 0)]
    [InlineData("", "auto", false, 0)]
    [InlineData(null, "auto", false, 0)]
    [InlineData("cpu", "cpu", false, 0)]
    [InlineData(" CPU ", "cpu", false, 0)]
    [InlineData("cuda", "cuda", true, 0)]
    [InlineData("cuda:0", "cuda:0", true, 0)]
    [InlineData("CUDA:3", "cuda:3", true, 3)]
    public void Parse_AcceptsTheDocumentedSpellings(string? setting, string expected, bool cuda, int index)
    {
        var device = ComputeDevice.Parse(setting);
        Assert.Equal(expected, device.Setting);
        Assert.Equal(cuda, device.IsCuda);
        Assert.Equal(index, device.Index);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("cuda0")]
    [InlineData("mps")]
    public void Parse_RefusesOthers_NamingTheSetting(string setting)
    {
        var error = Assert.Throws<ArgumentException>(() => ComputeDevice.Parse(setting, "KernelService:Device"));
        Assert.Contains("KernelService:Device", error.Message);
        Assert.Contains("auto, cpu, cuda or cuda:N", error.Message);
    }

    [Fact]
    public void Resolve_Auto_PicksCudaZeroOnlyWhenCudaIsAvailable()
    {
        Assert.Equal("cpu", ComputeDevice.Parse("auto").Resolve(cudaAvailable: false, cudaDeviceCount: 0).Name);
        Assert.Equal("cuda:0", ComputeDevice.Parse("auto").Resolve(cudaAvailable: true, cudaDeviceCount: 2).Name);
        Assert.Equal("cpu", ComputeDevice.Parse("cpu").Resolve(cudaAvailable: true, cudaDeviceCount: 2).Name);
        Assert.Equal("cuda:1", ComputeDevice.Parse("cuda:1").Resolve(cudaAvailable: true, cudaDeviceCount: 2).Name);
        Assert.Equal("cuda:0", ComputeDevice.Parse("cuda").Resolve(cudaAvailable: true, cudaDeviceCount: 1).Name);
    }

    [Fact]
    public void Resolve_CudaUnavailableOrOutOfRange_FailsNamingTheSetting()
    {
        var missing = Assert.Throws<InvalidOperationException>(() => ComputeDevice.Parse("cuda").Resolve(false, 0, "Distiller:Device"));
        Assert.Contains("Distiller:Device=cuda", missing.Message);
        Assert.Contains("CUDA is not available", missing.Message);
        var range = Assert.Throws<InvalidOperationException>(() => ComputeDevice.Parse("cuda:2").Resolve(true, 2, "--device"));
        Assert.Contains("--device=cuda:2", range.Message);
        Assert.Contains("2 CUDA device(s)", range.Message);
    }

    [Fact]
    public void UseDevice_OnThisCpuBuild_CudaIsAClearError_AutoAndCpuComputeOnTheCpu()
    {
        var error = Assert.Throws<InvalidOperationException>(() => TorchRuntime.UseDevice("cuda", "KernelService:Device"));
        Assert.Contains("KernelService:Device=cuda", error.Message);
        Assert.Equal("cpu", TorchRuntime.UseDevice("auto").Name);
        Assert.Equal("cpu", TorchRuntime.UseDevice("cpu").Name);
        Assert.Equal("cpu", TorchRuntime.DeviceName);
        Assert.Equal(TorchSharp.DeviceType.CPU, TorchRuntime.TorchDevice.type);
    }

    [Fact]
    public void EngineEntryPoints_PlaceTensorsOnTheComputeDevice_ExitsReadThemOnTheHost()
    {
        TorchRuntime.UseDevice("cpu");
        using var targets = CenteredOneHot.Encode([0, 2, 1], 3);
        Assert.Equal(TorchRuntime.TorchDevice.type, targets.device_type);
        using var moved = zeros(2, 2).MoveToComputeDevice();
        Assert.Equal(TorchSharp.DeviceType.CPU, moved.device_type);
    }
}
