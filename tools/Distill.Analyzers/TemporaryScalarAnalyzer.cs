using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Distill.Analyzers;

/// <summary>
/// Finds TorchSharp Scalars that live only for one native call. A Scalar frees its native value in
/// its finalizer, and nothing keeps a temporary one reachable while libtorch reads it, so a garbage
/// collection during the call can free it under libtorch: an integer add then fails ("alpha must
/// not be a floating point number"), a floating-point one silently computes with a wrong value.
/// A Scalar held in a local (<c>using Scalar half = 0.5;</c>) or a static field lives past the call.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class TemporaryScalarAnalyzer : DiagnosticAnalyzer
{
    private const string Category = "Reliability";
    private const string Why = "TorchSharp frees a Scalar in its finalizer, so a garbage collection during the native call can free a temporary one while libtorch reads it.";

    public static readonly DiagnosticDescriptor ConvertedArgument = new(
        "DIST001", "Temporary TorchSharp Scalar",
        "'{0}' becomes a temporary Scalar for this call; hold it in a 'using Scalar' local or a static field",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true, description: Why);

    public static readonly DiagnosticDescriptor MadeInside = new(
        "DIST002", "Temporary Scalar made inside TorchSharp",
        "'{0}' makes a temporary Scalar inside TorchSharp; {1}",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true, description: Why);

    public static readonly DiagnosticDescriptor NumberOperand = new(
        "DIST003", "Tensor operator with a number",
        "TorchSharp turns the number of '{0}' into a temporary Scalar; use a held Scalar and the named method",
        Category, DiagnosticSeverity.Error, isEnabledByDefault: true, description: Why);

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } =
        ImmutableArray.Create(ConvertedArgument, MadeInside, NumberOperand);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            var tensor = start.Compilation.GetTypeByMetadataName("TorchSharp.torch+Tensor");
            if (scalar is null || tensor is null) return;
            start.RegisterOperationAction(c => OnConversion(c, scalar), OperationKind.Conversion);
            start.RegisterOperationAction(OnInvocation, OperationKind.Invocation);
            start.RegisterOperationAction(c => OnBinary(c, tensor), OperationKind.Binary);
        });
    }

    private static void OnConversion(OperationAnalysisContext context, INamedTypeSymbol scalar)
    {
        var conversion = (IConversionOperation)context.Operation;
        if (conversion.OperatorMethod is null || !Is(conversion.Type, scalar) || Is(conversion.Operand.Type, scalar)) return;
        // Stored values (a local, a field, a returned value) outlive the call; consumed ones do not.
        if (conversion.Parent is IArgumentOperation or IBinaryOperation or ICompoundAssignmentOperation)
            context.ReportDiagnostic(Diagnostic.Create(ConvertedArgument, conversion.Syntax.GetLocation(), conversion.Operand.Syntax.ToString()));
    }

    // The TorchSharp 0.107 methods that turn a default or a number into a Scalar of their own.
    private static void OnInvocation(OperationAnalysisContext context)
    {
        var invocation = (IInvocationOperation)context.Operation;
        var method = invocation.TargetMethod;
        if (method.ContainingAssembly?.Name != "TorchSharp") return;
        string? remedy = method.Name switch
        {
            "add" or "add_" when !Has(method, "alpha") => "pass a held alpha",
            "addcdiv" or "addcdiv_" when !Has(method, "value") => "pass a held value",
            "vector_norm" or "matrix_norm" when method.ContainingType.Name == "linalg" => "compute the norm another way (Tensor.norm takes its order as a number)",
            _ when method.ContainingType.Name == "optim" => "so does every step of a TorchSharp optimiser: write the update with held Scalars",
            _ => null,
        };
        if (remedy is not null)
            context.ReportDiagnostic(Diagnostic.Create(MadeInside, invocation.Syntax.GetLocation(), invocation.Syntax.ToString(), remedy));
    }

    private static void OnBinary(OperationAnalysisContext context, INamedTypeSymbol tensor)
    {
        var binary = (IBinaryOperation)context.Operation;
        var method = binary.OperatorMethod;
        if (method is null || !Is(method.ContainingType, tensor)) return;
        if (method.Parameters.Any(p => IsNumber(p.Type)))
            context.ReportDiagnostic(Diagnostic.Create(NumberOperand, binary.Syntax.GetLocation(), binary.Syntax.ToString()));
        // Every + and a - with a non-tensor on the left go through add without an alpha.
        else if (binary.OperatorKind == BinaryOperatorKind.Add
                 || (binary.OperatorKind == BinaryOperatorKind.Subtract && !Is(method.Parameters[0].Type, tensor)))
            context.ReportDiagnostic(Diagnostic.Create(MadeInside, binary.Syntax.GetLocation(), binary.Syntax.ToString(), "call add with a held alpha"));
    }

    private static bool Has(IMethodSymbol method, string parameter) => method.Parameters.Any(p => p.Name == parameter);

    private static bool Is(ITypeSymbol? type, INamedTypeSymbol expected) =>
        SymbolEqualityComparer.Default.Equals(type?.OriginalDefinition, expected);

    private static bool IsNumber(ITypeSymbol type) => type.SpecialType is
        SpecialType.System_Int32 or SpecialType.System_Int64 or SpecialType.System_Single or SpecialType.System_Double
        or SpecialType.System_Byte or SpecialType.System_SByte or SpecialType.System_Int16 or SpecialType.System_Boolean;
}
