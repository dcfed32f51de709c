using System.Threading.Channels;

namespace Distill.DistillerService.Runs;

/// <summary>Runs waiting for a worker, in the order they were queued (by id; a worker checks the state it finds).</summary>
public sealed class RunQueue
{
    private readonly Channel<string> _channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleWriter = false });

    public void Enqueue(string runId) => _channel.Writer.TryWrite(runId);

    public ChannelReader<string> Reader => _channel.Reader;
}
