namespace Distill.Fuzz.Readers;

/// <summary>
/// One file reader under fuzzing: <see cref="Read"/> lays the input out as the file(s) the
/// reader expects and reads them; <see cref="Documented"/> lists the exceptions the reader
/// promises for bad input. Any other exception, a hang or a process crash is a finding.
/// </summary>
public sealed record ReaderTarget(string Name, Action<byte[], ScratchFolder> Read, IReadOnlyList<Type> Documented)
{
    public bool IsDocumented(Exception error) => Documented.Any(type => type.IsInstanceOfType(error));

    /// <summary>Runs one input; returns the documented exception it ended in, or null when it was read.</summary>
    public Exception? Run(byte[] input, ScratchFolder scratch)
    {
        scratch.Clear();
        try
        {
            Read(input, scratch);
            return null;
        }
        catch (Exception error) when (IsDocumented(error))
        {
            return error;
        }
    }
}
