using TorchSharp;

namespace Distill.Core.Runtime;

/// <summary>
/// Scalars that live as long as the process. TorchSharp frees a Scalar in its finalizer and keeps
/// nothing alive during a native call, so a temporary one (an implicit conversion, or the alpha
/// that <c>add(x)</c> makes) can be freed by a garbage collection while libtorch reads it. The
/// build refuses such temporaries (tools/Distill.Analyzers); held locals (<c>using Scalar</c>) and
/// these stand in for them.
/// </summary>
public static class HeldScalars
{
    /// <summary>The alpha of a plain sum: <c>a.add(b, One)</c>.</summary>
    public static readonly Scalar One = 1;
}
