using Distill.Client;

namespace Distill.Dashboard.Services;

/// <summary>What the run page's curves are drawn against.</summary>
public enum CurveAxis
{
    /// <summary>The training step.</summary>
    Step,
    /// <summary>Seconds since the run's first event.</summary>
    Time,
}

/// <summary>
/// A run's curves (loss, smoothed loss, steps/s, test accuracy) kept whole, so that they can be
/// redrawn against another x axis or smoothing, and extended point by point while the run trains.
/// </summary>
public sealed class Curves
{
    private DateTimeOffset? origin;
    private readonly List<(long Step, double Seconds, double Loss, double Speed)> steps = [];
    private readonly List<(long Step, double Seconds, double Accuracy)> evaluations = [];
    private double? ema;
    private double smoothing;

    public CurveAxis Axis { get; set; }

    /// <summary>The exponential moving average's weight of the past, 0 (none) to 0.99.</summary>
    public double Smoothing
    {
        get => smoothing;
        set
        {
            smoothing = Math.Clamp(value, 0, 0.99);
            var smoothed = Smooth(steps.Select(s => s.Loss).ToArray(), smoothing);
            ema = smoothed.Length > 0 ? smoothed[^1] : null;
        }
    }

    public int StepCount => steps.Count;

    /// <summary>Every event passes here first: the first one sets the time origin.</summary>
    public void Note(RunEventRecord e) => origin ??= e.Time;

    public (object X, double Loss, double Smoothed, double Speed) AddStep(StepEvent s)
    {
        Note(s);
        var seconds = Seconds(s.Time);
        steps.Add((s.Step, seconds, s.Loss, s.StepsPerSecond));
        ema = ema is { } previous ? smoothing * previous + (1 - smoothing) * s.Loss : s.Loss;
        return (X(s.Step, seconds), s.Loss, ema.Value, s.StepsPerSecond);
    }

    public (object X, double Accuracy) AddEvaluation(EvaluationEvent v)
    {
        Note(v);
        var seconds = Seconds(v.Time);
        evaluations.Add((v.Step, seconds, v.TestAccuracy));
        return (X(v.Step, seconds), v.TestAccuracy);
    }

    /// <summary>The whole loss curve as drawn now: x, raw loss, smoothed loss, steps/s.</summary>
    public (List<object> X, List<object> Loss, List<object> Smoothed, List<object> Speed) LossSeries()
    {
        var smoothed = Smooth(steps.Select(s => s.Loss).ToArray(), smoothing);
        return (steps.Select(s => X(s.Step, s.Seconds)).ToList(), steps.Select(s => (object)s.Loss).ToList(),
            smoothed.Select(v => (object)v).ToList(), steps.Select(s => (object)s.Speed).ToList());
    }

    public (List<object> X, List<object> Accuracy) AccuracySeries() =>
        (evaluations.Select(v => X(v.Step, v.Seconds)).ToList(), evaluations.Select(v => (object)v.Accuracy).ToList());

    /// <summary>Exponential moving average: s0 = x0, s_i = w s_(i-1) + (1 - w) x_i.</summary>
    public static double[] Smooth(IReadOnlyList<double> values, double weight)
    {
        var result = new double[values.Count];
        for (int i = 0; i < values.Count; i++)
            result[i] = i == 0 ? values[0] : weight * result[i - 1] + (1 - weight) * values[i];
        return result;
    }

    public string AxisTitle => Axis == CurveAxis.Step ? "step" : "seconds since the run's first event";

    private double Seconds(DateTimeOffset time) => origin is { } o ? Math.Max(0, (time - o).TotalSeconds) : 0;

    private object X(long step, double seconds) => Axis == CurveAxis.Step ? (object)step : Math.Round(seconds, 3);
}
