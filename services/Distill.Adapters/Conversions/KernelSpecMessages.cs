using Distill.Core.Errors;
using Distill.Protos.Kernel.V1;
using CoreKernels = Distill.Core.Kernels;

namespace Distill.Adapters.Conversions;

/// <summary>
/// Kernel specs between the API and the engine; unset fields take the engine's defaults.
/// The engine names its fields "kernel.x"; here they become "{field}.{oneof member}.x", so an
/// error names the field as the caller sent it (e.g. spec.kernel.convolutional.image_height).
/// </summary>
public static class KernelSpecMessages
{
    /// <summary>The engine's spec; throws <see cref="InvalidFieldException"/> naming <paramref name="field"/>'s subfield.</summary>
    public static CoreKernels.KernelSpec ToCore(this KernelSpec? message, string field = "kernel")
    {
        var defaults = new CoreKernels.KernelSpec();
        var member = message.MemberField(field);
        CoreKernels.KernelSpec spec;
        switch (message?.ArchitectureCase ?? KernelSpec.ArchitectureOneofCase.None)
        {
            case KernelSpec.ArchitectureOneofCase.None:
                return defaults;
            case KernelSpec.ArchitectureOneofCase.FullyConnected:
                var fc = message!.FullyConnected;
                spec = new CoreKernels.KernelSpec(Kind(fc.Kind, $"{member}.kind"),
                    fc.HasDepth ? fc.Depth : defaults.Depth,
                    fc.HasWStd ? fc.WStd : defaults.WStd,
                    fc.HasBStd ? fc.BStd : defaults.BStd);
                break;
            case KernelSpec.ArchitectureOneofCase.Convolutional:
                var conv = message!.Convolutional;
                spec = Convolutional(conv.Architecture, conv.Readout, conv.ImageChannels, conv.ImageHeight, conv.ImageWidth,
                    conv.HasWStd ? conv.WStd : defaults.WStd, conv.HasBStd ? conv.BStd : defaults.BStd, member)
                    with { Kind = Kind(conv.Kind, $"{member}.kind") };
                break;
            case KernelSpec.ArchitectureOneofCase.RandomFeatures:
                var rf = message!.RandomFeatures;
                var features = new CoreKernels.RandomFeatureSpec();
                spec = Convolutional(rf.Architecture, rf.Readout, rf.ImageChannels, rf.ImageHeight, rf.ImageWidth,
                    rf.HasWStd ? rf.WStd : defaults.WStd, rf.HasBStd ? rf.BStd : defaults.BStd, member) with
                {
                    // Random features estimate the NNGP only: the message has no kind to get wrong.
                    Kind = CoreKernels.KernelKind.Nngp,
                    RandomFeatures = new CoreKernels.RandomFeatureSpec(
                        rf.HasNetworks ? rf.Networks : features.Networks, rf.HasWidth ? rf.Width : features.Width, rf.Seed),
                };
                break;
            default:
                throw new InvalidFieldException(field, $"architecture {message!.ArchitectureCase} is not supported");
        }
        try { return spec.Validate(); }
        catch (InvalidFieldException e) { throw e.Within(member, "kernel"); }
    }

    /// <summary>
    /// The field path of the spec's oneof member, e.g. "kernel.convolutional": where an engine
    /// error about the spec ("kernel.image_height") points in the API.
    /// </summary>
    public static string MemberField(this CoreKernels.KernelSpec spec, string field = "kernel") =>
        spec.RandomFeatures is not null ? $"{field}.random_features"
        : spec.IsConvolutional ? $"{field}.convolutional"
        : $"{field}.fully_connected";

    /// <summary>
    /// Refuses images of shape C, H, W that a convolutional kernel does not read, naming the
    /// image field of the spec (as sent under <paramref name="field"/>) that differs. A shape of
    /// another rank (flattened features) is left to the caller's feature-count check.
    /// </summary>
    public static void CheckImages(this CoreKernels.KernelSpec spec, IReadOnlyList<long> imageShape, string field = "kernel")
    {
        if (imageShape.Count != 3) return;
        try { spec.CheckImageShape(imageShape[0], imageShape[1], imageShape[2]); }
        catch (InvalidFieldException e) { throw e.Within(spec.MemberField(field), "kernel"); }
    }

    private static string MemberField(this KernelSpec? message, string field) =>
        (message?.ArchitectureCase ?? KernelSpec.ArchitectureOneofCase.None) switch
        {
            KernelSpec.ArchitectureOneofCase.Convolutional => $"{field}.convolutional",
            KernelSpec.ArchitectureOneofCase.RandomFeatures => $"{field}.random_features",
            // Unset is a fully connected kernel with every default.
            _ => $"{field}.fully_connected",
        };

    /// <summary>The message for a spec, every field explicit.</summary>
    public static KernelSpec ToMessage(this CoreKernels.KernelSpec spec)
    {
        if (spec.RandomFeatures is { } features)
            return new KernelSpec
            {
                RandomFeatures = new RandomFeatureConvSpec
                {
                    Architecture = Architecture(spec.Architecture), Readout = Readout(spec.Readout),
                    ImageChannels = spec.ImageChannels, ImageHeight = spec.ImageHeight, ImageWidth = spec.ImageWidth,
                    WStd = spec.WStd, BStd = spec.BStd,
                    Networks = features.Networks, Width = features.Width, Seed = features.Seed,
                },
            };
        if (spec.IsConvolutional)
            return new KernelSpec
            {
                Convolutional = new ConvolutionalSpec
                {
                    Architecture = Architecture(spec.Architecture), Kind = Kind(spec.Kind), Readout = Readout(spec.Readout),
                    ImageChannels = spec.ImageChannels, ImageHeight = spec.ImageHeight, ImageWidth = spec.ImageWidth,
                    WStd = spec.WStd, BStd = spec.BStd,
                },
            };
        return new KernelSpec
        {
            FullyConnected = new FullyConnectedSpec { Kind = Kind(spec.Kind), Depth = spec.Depth, WStd = spec.WStd, BStd = spec.BStd },
        };
    }

    /// <summary>The fields both convolutional messages share; the kind and random features are the caller's.</summary>
    private static CoreKernels.KernelSpec Convolutional(ConvArchitecture architecture, ConvReadout readout,
        int channels, int height, int width, double wStd, double bStd, string member) => new(
        Architecture: architecture switch
        {
            ConvArchitecture.ConvNet => CoreKernels.KernelArchitecture.ConvNet,
            ConvArchitecture.ConvNet3 => CoreKernels.KernelArchitecture.ConvNet3,
            ConvArchitecture.Myrtle5 => CoreKernels.KernelArchitecture.Myrtle5,
            ConvArchitecture.Unspecified => throw new InvalidFieldException($"{member}.architecture", "required: CONV_NET, CONV_NET3 or MYRTLE5"),
            _ => throw new InvalidFieldException($"{member}.architecture", $"unknown architecture {(int)architecture}"),
        },
        Readout: readout switch
        {
            ConvReadout.Unspecified or ConvReadout.Flatten => CoreKernels.KernelReadout.Flatten,
            ConvReadout.GlobalAveragePool => CoreKernels.KernelReadout.GlobalAveragePool,
            _ => throw new InvalidFieldException($"{member}.readout", $"unknown readout {(int)readout}"),
        },
        ImageChannels: channels, ImageHeight: height, ImageWidth: width, WStd: wStd, BStd: bStd);

    private static CoreKernels.KernelKind Kind(KernelKind kind, string field) => kind switch
    {
        KernelKind.Unspecified or KernelKind.Ntk => CoreKernels.KernelKind.Ntk,
        KernelKind.Nngp => CoreKernels.KernelKind.Nngp,
        _ => throw new InvalidFieldException(field, $"unknown kernel kind {(int)kind}"),
    };

    private static KernelKind Kind(CoreKernels.KernelKind kind) => kind == CoreKernels.KernelKind.Nngp ? KernelKind.Nngp : KernelKind.Ntk;

    private static ConvArchitecture Architecture(CoreKernels.KernelArchitecture architecture) => architecture switch
    {
        CoreKernels.KernelArchitecture.ConvNet => ConvArchitecture.ConvNet,
        CoreKernels.KernelArchitecture.ConvNet3 => ConvArchitecture.ConvNet3,
        CoreKernels.KernelArchitecture.Myrtle5 => ConvArchitecture.Myrtle5,
        _ => throw new ArgumentOutOfRangeException(nameof(architecture), architecture, "not a convolutional architecture"),
    };

    private static ConvReadout Readout(CoreKernels.KernelReadout readout) =>
        readout == CoreKernels.KernelReadout.GlobalAveragePool ? ConvReadout.GlobalAveragePool : ConvReadout.Flatten;
}
