using Distill.Client;
using Distill.Dashboard.Services;

namespace Distill.Dashboard.Tests;

public class DisplayTests
{
    [Fact]
    public void Kernels_read_by_their_network_and_a_feature_pool_run_names_its_pool()
    {
        Assert.Equal("NTK FC-2", Display.Kernel(new KernelSpecification(Depth: 2)));
        Assert.Equal("NNGP ConvNet3", Display.Kernel(KernelSpecification.ConvolutionalKernel(ConvolutionalNetwork.ConvNet3, 3, 32, 32, KernelKind.Nngp)));
        Assert.Equal("NNGP Myrtle5 (16 random networks)", Display.Kernel(KernelSpecification.RandomFeatureKernel(ConvolutionalNetwork.Myrtle5, 3, 32, 32, networks: 16)));
        Assert.Equal("KIP (feature pool of 128)", Display.Method(RunFormTests.PoolRun()));
        Assert.Equal("Label solve", Display.Method(new RunSpecification { Dataset = "mnist", Method = DistillationMethod.LabelSolve }));
    }
}
