using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Distill.KernelService.Telemetry;
using Microsoft.Extensions.DependencyInjection;

namespace Distill.KernelService.Tests;

/// <summary>
/// Reads one server's metrics as an OpenTelemetry exporter would: the "elements computed"
/// counter, and each call's end (recorded when its handler has returned). Only that server's:
/// a listener hears every meter of the process, and other test classes run servers at the
/// same time (the fuzzer's cancelled ComputeGram once ended a deadline test's wait).
/// </summary>
internal sealed class ServerMetricsListener : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Action<string, long>? _onElements;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Channel<string>> _ended = new();
    private long _elements;

    /// <param name="onElements">Hears the method and size of each count, on the thread that computed it.</param>
    public ServerMetricsListener(LoopbackKernelServer server, Action<string, long>? onElements = null)
    {
        _onElements = onElements;
        // A meter made by a host's IMeterFactory has that factory as its scope.
        var meters = server.App.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == meters && instrument.Meter.Name == KernelServiceMetrics.MeterName
                && instrument.Name is "distill.kernel.elements" or "distill.kernel.requests")
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            string? method = null, status = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "method") method = tag.Value as string;
                if (tag.Key == "status") status = tag.Value as string;
            }
            if (instrument.Name == "distill.kernel.elements")
            {
                Interlocked.Add(ref _elements, value);
                if (method is not null) _onElements?.Invoke(method, value);
                return;
            }
            if (method is not null) Ended(method).Writer.TryWrite(status ?? "");
        });
        _listener.Start();
    }

    public long Elements => Interlocked.Read(ref _elements);

    /// <summary>
    /// The status of the next call of <paramref name="method"/> to end since this listener
    /// started: the first call's at the first read, the second's at the second.
    /// </summary>
    public async Task<string> CallEnded(string method) =>
        await Ended(method).Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60));

    private Channel<string> Ended(string method) => _ended.GetOrAdd(method, _ => Channel.CreateUnbounded<string>());

    public void Dispose() => _listener.Dispose();
}
