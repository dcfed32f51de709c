using System.Diagnostics.Metrics;

namespace Distill.KernelService.Telemetry;

/// <summary>OpenTelemetry-compatible instruments: requests, kernel entries computed and latency, per method.</summary>
public sealed class KernelServiceMetrics
{
    public const string MeterName = "Distill.KernelService";

    private readonly Counter<long> _requests;
    private readonly Counter<long> _elements;
    private readonly Histogram<double> _latency;
    private readonly UpDownCounter<long> _inFlight;

    public KernelServiceMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _requests = meter.CreateCounter<long>("distill.kernel.requests", description: "Kernel service calls, by method and status");
        _elements = meter.CreateCounter<long>("distill.kernel.elements", description: "Kernel matrix entries computed, by method");
        _latency = meter.CreateHistogram<double>("distill.kernel.duration", unit: "s", description: "Call latency, by method");
        // The load an autoscaler needs: compute calls running now, beside the slots there are
        // (distill.kernel.in_flight / distill.kernel.slots is the utilisation, 1 when saturated).
        _inFlight = meter.CreateUpDownCounter<long>("distill.kernel.in_flight", description: "Compute calls running now");
        meter.CreateObservableGauge("distill.kernel.slots", () => Slots, description: "Compute calls this replica admits at once (KernelService:MaxConcurrentRequests)");
    }

    /// <summary>Compute calls admitted at once, set by the compute gate.</summary>
    public int Slots { get; set; }

    public void Started() => _inFlight.Add(1);

    public void Finished() => _inFlight.Add(-1);

    public void Completed(string method, string status, TimeSpan elapsed)
    {
        var methodTag = new KeyValuePair<string, object?>("method", method);
        _requests.Add(1, methodTag, new KeyValuePair<string, object?>("status", status));
        _latency.Record(elapsed.TotalSeconds, methodTag);
    }

    public void Computed(string method, long elements) =>
        _elements.Add(elements, new KeyValuePair<string, object?>("method", method));
}
