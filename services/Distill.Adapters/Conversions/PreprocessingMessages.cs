using Distill.Core.Errors;
using Distill.Core.Preprocessing;
using Distill.Protos.Kernel.V1;

namespace Distill.Adapters.Conversions;

/// <summary>Preprocessing settings between the API and the engine; an unset message means standardisation only.</summary>
public static class PreprocessingMessages
{
    /// <summary>The engine's spec; throws <see cref="InvalidFieldException"/> naming <paramref name="field"/>'s subfield.</summary>
    public static PreprocessingSpec ToCore(this Preprocessing? message, string field = "preprocessing")
    {
        var spec = message is null
            ? new PreprocessingSpec()
            : new PreprocessingSpec(message.Standardize, message.Zca, message.HasZcaRegularization ? message.ZcaRegularization : 0.1);
        try { return spec.Validate(); }
        catch (InvalidFieldException e) { throw e.Within(field, "preprocessing"); }
    }

    /// <summary>The message for a spec, every field explicit.</summary>
    public static Preprocessing ToMessage(this PreprocessingSpec spec) =>
        new() { Standardize = spec.Standardize, Zca = spec.Zca, ZcaRegularization = spec.ZcaRegularization };
}
