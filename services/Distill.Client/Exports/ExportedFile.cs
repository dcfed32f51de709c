namespace Distill.Client;

/// <summary>An exported file held in memory; large sets are better streamed to a file.</summary>
public sealed record ExportedFile(string FileName, byte[] Content);
