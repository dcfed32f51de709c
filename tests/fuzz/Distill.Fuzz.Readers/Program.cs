using Distill.Fuzz.Readers;
using SharpFuzz;

// Distill.Fuzz.Readers READER            AFL++ target (under afl-fuzz, Distill.Core.dll instrumented)
// Distill.Fuzz.Readers run READER FILE   one input, outside AFL: prints how it ended (triage)
// Distill.Fuzz.Readers seed CORPUS_ROOT  writes the seed corpus, one folder per reader
// Distill.Fuzz.Readers --list            the readers' names
switch (args)
{
    case ["--list"]:
        foreach (var target in ReaderTargets.All) Console.WriteLine(target.Name);
        return 0;
    case ["seed", var corpusRoot]:
        SeedCorpus.Write(corpusRoot);
        return 0;
    case ["run", var name, var file] when ReaderTargets.Find(name) is { } target:
    {
        using var scratch = new ScratchFolder();
        var error = target.Run(File.ReadAllBytes(file), scratch);
        Console.WriteLine(error is null ? "read" : $"documented {error.GetType().Name}: {error.Message}");
        return 0;
    }
    case [var name] when ReaderTargets.Find(name) is { } target:
    {
        using var scratch = new ScratchFolder();
        // Out of process: a stack overflow or a native crash in the image decoder is
        // reported as a crash of that input instead of ending the fuzzing run.
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var input = new MemoryStream();
            stream.CopyTo(input);
            target.Run(input.ToArray(), scratch);
        });
        return 0;
    }
    default:
        Console.Error.WriteLine($"usage: Distill.Fuzz.Readers <{string.Join("|", ReaderTargets.All.Select(t => t.Name))}> | run READER FILE | seed CORPUS_ROOT | --list");
        return 2;
}
