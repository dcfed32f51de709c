namespace Distill.DistillerService.Runs;

/// <summary>The run store's database cannot be used as it is; the distiller does not start.</summary>
public sealed class RunStoreUnavailableException(string file, string problem, Exception? inner = null)
    : Exception($"run store {file} cannot be used: {problem}", inner)
{
    public string File { get; } = file;
}
