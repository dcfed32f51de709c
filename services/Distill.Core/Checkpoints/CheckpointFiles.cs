using Distill.Core.Distillation;

namespace Distill.Core.Checkpoints;

/// <summary>
/// A run's two latest checkpoints: checkpoint.safetensors and, one checkpoint older,
/// checkpoint.previous.safetensors. Each carries a checksum (see SafetensorsFile), so a
/// resume can tell a damaged file and fall back to the one before it instead of failing
/// the run or continuing from wrong numbers.
/// </summary>
public static class CheckpointFiles
{
    public const string Latest = "checkpoint.safetensors";
    public const string Previous = "checkpoint.previous.safetensors";

    /// <summary>
    /// Saves <paramref name="state"/> as the latest checkpoint. The latest so far becomes the
    /// previous only once the new file is whole on disk: a crash or a full disk at any
    /// point leaves at least one good checkpoint and never a partial one under either name.
    /// </summary>
    public static void Save(KipState state, string folder) =>
        state.Save(Path.Combine(folder, Latest), keepPreviousAs: Path.Combine(folder, Previous));

    /// <summary>
    /// The newest checkpoint in <paramref name="folder"/> that reads and verifies, or null when
    /// there is none at all. Each one that does not is passed to <paramref name="rejected"/>
    /// (file name, reason); when none is usable that is an <see cref="InvalidDataException"/>.
    /// </summary>
    public static KipState? LoadNewestGood(string folder, Action<string, string>? rejected = null) =>
        LoadNewestGood(folder, KipState.Load, rejected);

    /// <summary>As above, for checkpoints of any kind that <paramref name="load"/> reads (and refuses when damaged or of another kind).</summary>
    public static T? LoadNewestGood<T>(string folder, Func<string, T> load, Action<string, string>? rejected = null) where T : class
    {
        var problems = new List<string>();
        foreach (var name in new[] { Latest, Previous })
        {
            var path = Path.Combine(folder, name);
            if (!File.Exists(path)) continue;
            try
            {
                return load(path);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // A damaged file can fail anywhere in parsing; whatever the error, the file is not usable.
                var reason = e.Message.Replace(path, name, StringComparison.Ordinal);
                problems.Add($"{name}: {reason}");
                rejected?.Invoke(name, reason);
            }
        }
        return problems.Count == 0 ? null : throw new InvalidDataException($"no usable checkpoint ({string.Join("; ", problems)})");
    }
}
