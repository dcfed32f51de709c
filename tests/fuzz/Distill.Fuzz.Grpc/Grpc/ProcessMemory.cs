namespace Distill.Fuzz.Grpc;

/// <summary>Resident memory of server processes on this host (Linux /proc), to compare before and after fuzzing.</summary>
public static class ProcessMemory
{
    public static long ResidentBytes(IEnumerable<int> pids) => pids.Sum(pid =>
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]) * 1024;
    });
}
