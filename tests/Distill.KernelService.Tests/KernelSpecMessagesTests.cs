using Distill.Adapters.Conversions;
using Distill.Core.Errors;
using Distill.Core.Kernels;
using Distill.Protos.Kernel.V1;
using Google.Protobuf;
using CoreKernelSpec = Distill.Core.Kernels.KernelSpec;
using KernelKind = Distill.Core.Kernels.KernelKind;
using KernelSpec = Distill.Protos.Kernel.V1.KernelSpec;

namespace Distill.KernelService.Tests;

/// <summary>Kernel specs through the API's messages and back: every field survives, every bad value is named.</summary>
public class KernelSpecMessagesTests
{
    private static readonly CoreKernelSpec[] All =
    [
        new CoreKernelSpec(KernelKind.Nngp, Depth: 3, WStd: 1.5, BStd: 0.25),
        new CoreKernelSpec(KernelKind.Ntk, WStd: 1.25, BStd: 0, Architecture: KernelArchitecture.ConvNet,
            ImageChannels: 3, ImageHeight: 32, ImageWidth: 16, Readout: KernelReadout.Flatten),
        new CoreKernelSpec(KernelKind.Nngp, WStd: 2, BStd: 0.5, Architecture: KernelArchitecture.ConvNet3,
            ImageChannels: 1, ImageHeight: 8, ImageWidth: 9, Readout: KernelReadout.GlobalAveragePool),
        new CoreKernelSpec(KernelKind.Ntk, Architecture: KernelArchitecture.Myrtle5,
            ImageChannels: 2, ImageHeight: 4, ImageWidth: 4, Readout: KernelReadout.GlobalAveragePool),
        new CoreKernelSpec(KernelKind.Nngp, WStd: 1.1, BStd: 0.2, Architecture: KernelArchitecture.Myrtle5,
            ImageChannels: 3, ImageHeight: 12, ImageWidth: 10, Readout: KernelReadout.GlobalAveragePool,
            RandomFeatures: new RandomFeatureSpec(Networks: 5, Width: 48, Seed: ulong.MaxValue)),
    ];

    public static TheoryData<CoreKernelSpec> Specs() => new(All);

    [Theory]
    [MemberData(nameof(Specs))]
    public void ToMessage_ThenToCore_KeepsEveryField(CoreKernelSpec spec)
    {
        var message = spec.ToMessage();
        // Through the wire format too: what a server reads is what a client wrote.
        var read = KernelSpec.Parser.ParseFrom(message.ToByteArray()).ToCore();

        Assert.Equal(spec, read);
        Assert.Equal(message, read.ToMessage());
    }

    [Fact]
    public void ToMessage_EachArchitecture_UsesItsOwnOneofMember()
    {
        Assert.Equal(KernelSpec.ArchitectureOneofCase.FullyConnected, All[0].ToMessage().ArchitectureCase);
        Assert.Equal(KernelSpec.ArchitectureOneofCase.Convolutional, All[1].ToMessage().ArchitectureCase);
        Assert.Equal(KernelSpec.ArchitectureOneofCase.RandomFeatures, All[^1].ToMessage().ArchitectureCase);
    }

    [Fact]
    public void ToCore_UnsetConvolutionalOptions_TakeTheEngineDefaults()
    {
        var conv = new KernelSpec { Convolutional = new ConvolutionalSpec { Architecture = ConvArchitecture.ConvNet, ImageChannels = 1, ImageHeight = 8, ImageWidth = 8 } }.ToCore();
        var features = new KernelSpec { RandomFeatures = new RandomFeatureConvSpec { Architecture = ConvArchitecture.ConvNet, ImageChannels = 1, ImageHeight = 8, ImageWidth = 8 } }.ToCore();

        Assert.Equal(new CoreKernelSpec(KernelKind.Ntk, Architecture: KernelArchitecture.ConvNet, ImageChannels: 1, ImageHeight: 8, ImageWidth: 8), conv);
        Assert.Equal(conv with { Kind = KernelKind.Nngp, RandomFeatures = new RandomFeatureSpec() }, features);
    }

    [Theory]
    [InlineData("spec.kernel", "spec.kernel.convolutional.image_height")]
    [InlineData("kernel", "kernel.convolutional.image_height")]
    public void ToCore_BadField_IsNamedUnderTheCallersPath(string field, string expected)
    {
        var message = new KernelSpec { Convolutional = new ConvolutionalSpec { Architecture = ConvArchitecture.ConvNet, ImageChannels = 1, ImageHeight = 7, ImageWidth = 8 } };
        Assert.Equal(expected, Assert.Throws<InvalidFieldException>(() => message.ToCore(field)).Field);
    }

    [Fact]
    public void CheckImages_AnotherShape_NamesTheDifferingField()
    {
        var spec = new CoreKernelSpec(Architecture: KernelArchitecture.ConvNet3, ImageChannels: 3, ImageHeight: 8, ImageWidth: 8,
            Kind: KernelKind.Nngp, RandomFeatures: new RandomFeatureSpec());

        spec.CheckImages([3, 8, 8], "spec.kernel");
        Assert.Equal("spec.kernel.random_features.image_width",
            Assert.Throws<InvalidFieldException>(() => spec.CheckImages([3, 8, 16], "spec.kernel")).Field);
        // Any image shape suits a fully connected kernel.
        new CoreKernelSpec().CheckImages([3, 8, 16]);
    }
}
