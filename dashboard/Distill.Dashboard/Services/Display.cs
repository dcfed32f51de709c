using Distill.Client;
using MudBlazor;

namespace Distill.Dashboard.Services;

/// <summary>How runs and their numbers read on the pages.</summary>
public static class Display
{
    public static string Method(DistillationMethod method) => method switch
    {
        DistillationMethod.Kip => "KIP",
        DistillationMethod.LabelSolve => "Label solve",
        _ => method.ToString(),
    };

    public static string Kernel(KernelSpecification? kernel)
    {
        kernel ??= new KernelSpecification();
        var kind = kernel.Kind.ToString().ToUpperInvariant();
        return kernel.Architecture switch
        {
            KernelSpecification.FullyConnected => $"{kind} FC" + (kernel.Depth is { } d ? $"-{d}" : ""),
            KernelSpecification.Convolutional => $"{kind} {kernel.Network}",
            KernelSpecification.RandomFeatures => $"{kind} {kernel.Network} ({kernel.Networks?.ToString() ?? "8"} random networks)",
            var other => $"{kind} {other}",
        };
    }

    /// <summary>The method, and for feature-pool KIP its pool.</summary>
    public static string Method(RunSpecification spec) =>
        spec.FeaturePool is { } pool ? $"{Method(spec.Method)} (feature pool of {pool.PoolSize?.ToString() ?? "32"})" : Method(spec.Method);

    public static Color StateColor(RunStatus state) => state switch
    {
        RunStatus.Queued => Color.Default,
        RunStatus.Running => Color.Info,
        RunStatus.Paused => Color.Warning,
        RunStatus.Succeeded => Color.Success,
        RunStatus.Failed => Color.Error,
        RunStatus.Cancelled => Color.Dark,
        _ => Color.Default,
    };

    public static string Percent(double? value) => value is { } v ? v.ToString("P1", System.Globalization.CultureInfo.InvariantCulture) : "–";

    public static double Progress(RunInfo run) => run.TotalSteps <= 0 ? (run.State == RunStatus.Succeeded ? 100 : 0) : Math.Clamp(100.0 * run.Step / run.TotalSteps, 0, 100);

    /// <summary>Time left at the current pace; null when the run is not moving.</summary>
    public static TimeSpan? Eta(RunInfo run) =>
        run.State == RunStatus.Running && run.StepsPerSecond > 0 && run.TotalSteps > run.Step
            ? TimeSpan.FromSeconds((run.TotalSteps - run.Step) / run.StepsPerSecond)
            : null;

    public static string Duration(TimeSpan? span) => span switch
    {
        null => "–",
        { TotalSeconds: < 60 } s => $"{s.TotalSeconds:0}s",
        { TotalMinutes: < 60 } s => $"{(int)s.TotalMinutes}m {s.Seconds:00}s",
        var s => $"{(int)s.Value.TotalHours}h {s.Value.Minutes:00}m",
    };

    public static string Time(DateTimeOffset time) =>
        time.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Month, day and minute: enough to tell runs apart in a table.</summary>
    public static string ShortTime(DateTimeOffset time) =>
        time.ToLocalTime().ToString("MM-dd HH:mm", System.Globalization.CultureInfo.InvariantCulture);

    public static string Millis(TimeSpan? span) => span is { } s ? $"{s.TotalMilliseconds:0.0} ms" : "–";

    /// <summary>A phase under way, such as "Evaluation at step 400: 2,000 of 10,000 test images, 1m 05s".</summary>
    public static string Phase(PhaseEvent p) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{char.ToUpperInvariant(p.What[0])}{p.What[1..]}: {p.Done:N0} of {p.Total:N0} {p.Unit}, {Duration(p.Elapsed)}");

    /// <summary>A short line for the event log.</summary>
    public static string Describe(RunEventRecord e) => e switch
    {
        StateChangedEvent s => $"{s.State}" + (string.IsNullOrEmpty(s.Message) ? "" : $": {s.Message}"),
        EvaluationEvent v => $"evaluation at step {v.Step}: test accuracy {Percent(v.TestAccuracy)}, MSE {v.TestMse:0.0000}",
        CheckpointEvent c => $"checkpoint and snapshot at step {c.Step}",
        StepEvent s => $"step {s.Step}/{s.TotalSteps}: loss {s.Loss:0.####e+0}, {s.StepsPerSecond:0.0} steps/s",
        PhaseEvent p => Phase(p),
        _ => "event of a newer kind",
    };
}
