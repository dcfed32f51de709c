using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Distill.Analyzers.Tests;

public class TemporaryScalarAnalyzerTests
{
    [Fact]
    public async Task TemporaryScalars_AreReported_HeldOnesAreNot()
    {
        var found = await AnalyzeAsync("""
            using TorchSharp;
            using static TorchSharp.torch;

            static class Code
            {
                private static readonly Scalar One = 1, Two = 2.0;

                static Tensor Held(Tensor a, Tensor b, double x)
                {
                    using Scalar scale = x;
                    var sum = a.mul(scale).add(b, One).add_(Two, One);
                    return sum.sub(b).mul(b).div_(Two).clamp_min(Two);
                }

                static Scalar Returned(double x) => x;

                static void Temporary(Tensor a, Tensor b, Tensor? c, double x, long n)
                {
                    a.mul(x);
                    a.add(b);
                    c?.add_(b);
                    a.add_(One);
                    _ = a + b;
                    _ = a * 2.0;
                    _ = 1.0 - a;
                    a.clamp_min(0);
                    arange(n, dtype: ScalarType.Int64);
                    a.addcdiv(b, b);
                    linalg.vector_norm(a, dims: [1L]);
                    optim.SGD(new[] { new TorchSharp.Modules.Parameter(a) }, 0.1);
                    a.addcdiv(b, b, One).norm(1);
                }
            }
            """);

        Assert.Equal(
        [
            ("DIST001", 19), ("DIST002", 20), ("DIST002", 21), ("DIST002", 22), ("DIST002", 23),
            ("DIST003", 24), ("DIST003", 25), ("DIST001", 26), ("DIST001", 27), ("DIST002", 28), ("DIST002", 29),
            ("DIST002", 30),
        ], found);
    }

    [Fact]
    public async Task CodeWithoutTorchSharp_IsNotAnalyzed()
    {
        var found = await AnalyzeAsync("""
            static class Code
            {
                static double Twice(double x) => x + x;
            }
            """, withTorchSharp: false);

        Assert.Empty(found);
    }

    private static async Task<(string Id, int Line)[]> AnalyzeAsync(string source, bool withTorchSharp = true)
    {
        var platform = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(path => withTorchSharp || !Path.GetFileName(path).StartsWith("TorchSharp", StringComparison.Ordinal));
        var compilation = CSharpCompilation.Create("Analyzed",
            [CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest))],
            platform.Select(path => MetadataReference.CreateFromFile(path)),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));

        var diagnostics = await compilation
            .WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new TemporaryScalarAnalyzer()))
            .GetAnalyzerDiagnosticsAsync();
        // Lines counted from 1, as an editor shows them.
        return diagnostics
            .Select(d => (d.Id, d.Location.GetLineSpan().StartLinePosition.Line + 1))
            .OrderBy(d => d.Item2).ThenBy(d => d.Id)
            .ToArray();
    }
}
