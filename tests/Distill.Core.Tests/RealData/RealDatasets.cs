namespace Distill.Core.Tests.RealData;

/// <summary>
/// Where the real datasets are for the opt-in slow suite (./test.sh --slow): $DISTILL_DATA,
/// else ../shared/datasets beside the repository. Tests skip, saying why, without them.
/// </summary>
internal static class RealDatasets
{
    public static string Require(string name)
    {
        Skip.IfNot(Environment.GetEnvironmentVariable("DISTILL_SLOW_TESTS") == "1", "slow suite not requested (./test.sh --slow)");
        var root = Environment.GetEnvironmentVariable("DISTILL_DATA") is { Length: > 0 } configured ? configured : DefaultRoot();
        var path = Path.Combine(root ?? "", name);
        Skip.IfNot(root is not null && (Directory.Exists(path) || File.Exists(path)), $"dataset '{name}' not found under {root ?? "(no data folder)"}");
        return path;
    }

    private static string? DefaultRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Distill.Grpc.sln")))
                return Path.Combine(dir.Parent!.FullName, "shared", "datasets");
        return null;
    }
}
