using Distill.Fuzz.Readers;

namespace Distill.Core.Tests.Fuzzing;

/// <summary>
/// Every committed fuzz input, the seeds (tests/fuzz/corpus) and the inputs that once crashed a
/// reader (tests/fuzz/regressions), through the same targets AFL++ runs: each is read or ends
/// in an exception its reader documents. Anything else fails the test with the exception.
/// </summary>
public sealed class ReaderCorpusReplayTests : IDisposable
{
    private static readonly string FuzzFolder = Path.Combine(AppContext.BaseDirectory, "fuzz");

    private readonly ScratchFolder _scratch = new();

    public static TheoryData<string, string> Inputs()
    {
        var inputs = new TheoryData<string, string>();
        foreach (var target in ReaderTargets.All)
            foreach (var kind in new[] { "corpus", "regressions" })
            {
                var folder = Path.Combine(FuzzFolder, kind, target.Name);
                if (!Directory.Exists(folder)) continue;
                foreach (var file in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
                    inputs.Add(target.Name, Path.GetRelativePath(FuzzFolder, file));
            }
        return inputs;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Input_IsReadOrRefusedWithADocumentedError(string reader, string input)
    {
        var target = ReaderTargets.Find(reader)!;
        // An undocumented exception propagates out of Run and fails the test as it is.
        target.Run(File.ReadAllBytes(Path.Combine(FuzzFolder, input)), _scratch);
    }

    [Fact]
    public void EveryReader_HasASeedCorpus()
    {
        foreach (var target in ReaderTargets.All)
            Assert.True(Directory.EnumerateFiles(Path.Combine(FuzzFolder, "corpus", target.Name)).Any(), $"no seeds for {target.Name}");
    }

    /// <summary>Seeds are valid files: each must be read, not refused, or the fuzzer starts from the error paths only.</summary>
    [Fact]
    public void EverySeed_IsRead()
    {
        foreach (var target in ReaderTargets.All)
            foreach (var file in Directory.EnumerateFiles(Path.Combine(FuzzFolder, "corpus", target.Name)))
                Assert.True(target.Run(File.ReadAllBytes(file), _scratch) is null, $"{target.Name} refused its seed {Path.GetFileName(file)}");
    }

    public void Dispose() => _scratch.Dispose();
}
