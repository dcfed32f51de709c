using System.Collections.Concurrent;
using System.Net;
using Distill.DistillerService.Configuration;
using Distill.Protos.Kernel.V1;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace Distill.DistillerService.Kernels;

/// <summary>A dataset as kernel services register it: path under the data root plus preprocessing.</summary>
public sealed record DatasetReference(string Path, string Format, Preprocessing Preprocessing)
{
    public string Key => $"{Path}|{Format}|{Preprocessing}";
}

/// <summary>
/// The configured kernel services: one channel each, datasets registered on demand (and
/// again after a service restarts and forgets them), and calls retried with exponential
/// backoff before a caller moves the work elsewhere.
/// </summary>
public sealed class KernelServicePool : IDisposable
{
    private static readonly HashSet<StatusCode> Transient =
        [StatusCode.Unavailable, StatusCode.DeadlineExceeded, StatusCode.ResourceExhausted, StatusCode.Aborted, StatusCode.Internal, StatusCode.Unknown];

    private readonly DistillerOptions _options;
    private readonly ILogger<KernelServicePool> _logger;
    private readonly ConcurrentDictionary<(string Address, string Dataset), Task<string>> _registrations = new();
    private readonly ConcurrentDictionary<string, Task<SemaphoreSlim>> _slots = new();
    private readonly ResiliencePipeline _retry;
    private readonly Metadata? _headers;

    public KernelServicePool(IOptions<DistillerOptions> options, ILogger<KernelServicePool> logger)
    {
        _options = options.Value;
        _logger = logger;
        var addresses = _options.KernelServices.Length == 0 ? [DistillerOptions.DefaultKernelService] : _options.KernelServices;
        Endpoints = addresses.SelectMany(Expand).Select(address => new KernelEndpoint(address, GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 256 << 20,
            MaxSendMessageSize = 256 << 20,
            // A shard's gradient is megabytes; the default 64 KiB window turns each response into
            // dozens of window-update round trips, which on loopback never grow the window.
            HttpHandler = new SocketsHttpHandler { InitialHttp2StreamWindowSize = 16 << 20 },
        }))).ToArray();
        _headers = string.IsNullOrEmpty(_options.KernelServiceApiKey) ? null : new Metadata { { "authorization", $"Bearer {_options.KernelServiceApiKey}" } };
        // One attempt means no retry strategy at all: Polly refuses a retry count of zero.
        _retry = _options.RetryAttempts <= 1 ? ResiliencePipeline.Empty : new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<RpcException>(IsTransient),
            MaxRetryAttempts = _options.RetryAttempts - 1,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(200),
            UseJitter = false,
            OnRetry = args =>
            {
                _logger.LogWarning("Kernel call failed ({Error}); retry {Attempt}", args.Outcome.Exception?.Message, args.AttemptNumber + 1);
                return ValueTask.CompletedTask;
            },
        }).Build();
    }

    public IReadOnlyList<KernelEndpoint> Endpoints { get; }

    /// <summary>A failure worth retrying, on the same service or another one.</summary>
    public static bool IsTransient(RpcException e) => Transient.Contains(e.StatusCode);

    /// <summary>
    /// Calls <paramref name="call"/> on one endpoint with the dataset's id there, retrying
    /// transient failures; a NOT_FOUND for the dataset (a restarted service) re-registers it once.
    /// The call first waits for one of the service's compute slots (its
    /// max_concurrent_requests), so that runs sharing saturated services queue here and
    /// take turns in arrival order instead of being refused and backing off.
    /// </summary>
    public async Task<T> CallAsync<T>(KernelEndpoint endpoint, DatasetReference dataset,
        Func<KernelService.KernelServiceClient, string, CallOptions, Task<T>> call, CancellationToken cancellation)
    {
        return await _retry.ExecuteAsync(async token =>
        {
            var id = await DatasetIdAsync(endpoint, dataset).WaitAsync(token);
            try
            {
                return await InSlotAsync(endpoint, () => call(endpoint.Client, id, Options(token)), token);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound && e.Status.Detail.Contains("dataset", StringComparison.Ordinal))
            {
                _registrations.TryRemove((endpoint.Address, dataset.Key), out _);
                id = await DatasetIdAsync(endpoint, dataset).WaitAsync(token);
                return await InSlotAsync(endpoint, () => call(endpoint.Client, id, Options(token)), token);
            }
        }, cancellation);
    }

    /// <summary>
    /// A call made while holding one of the service's compute slots. Registration takes one
    /// too (the service counts it), so no caller holds a slot while it waits for another.
    /// </summary>
    private async Task<T> InSlotAsync<T>(KernelEndpoint endpoint, Func<Task<T>> call, CancellationToken token)
    {
        var slots = await Cached(_slots, endpoint.Address, () => SlotsAsync(endpoint)).WaitAsync(token);
        await slots.WaitAsync(token);
        try
        {
            return await call();
        }
        finally
        {
            slots.Release();
        }
    }

    /// <summary>The deadline counts from the call itself, not from the wait for a slot.</summary>
    private CallOptions Options(CancellationToken token) => new(_headers, DateTime.UtcNow.AddSeconds(_options.CallTimeoutSeconds), token);

    /// <summary>True when the endpoint answers GetServerInfo now.</summary>
    public async Task<bool> IsReachableAsync(KernelEndpoint endpoint, CancellationToken cancellation)
    {
        try
        {
            await endpoint.Client.GetServerInfoAsync(new GetServerInfoRequest(), _headers, DateTime.UtcNow.AddSeconds(5), cancellation);
            return true;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    private Task<string> DatasetIdAsync(KernelEndpoint endpoint, DatasetReference dataset) =>
        Cached(_registrations, (endpoint.Address, dataset.Key), () => Register(endpoint, dataset));

    /// <summary>The cached task for a key, started again when the last attempt failed.</summary>
    private static Task<T> Cached<TKey, T>(ConcurrentDictionary<TKey, Task<T>> cache, TKey key, Func<Task<T>> start) where TKey : notnull
    {
        var task = cache.GetOrAdd(key, _ => start());
        if (!task.IsFaulted && !task.IsCanceled) return task;
        cache.TryRemove(new KeyValuePair<TKey, Task<T>>(key, task));
        return cache.GetOrAdd(key, _ => start());
    }

    private async Task<SemaphoreSlim> SlotsAsync(KernelEndpoint endpoint)
    {
        var info = await endpoint.Client.GetServerInfoAsync(new GetServerInfoRequest(), _headers, DateTime.UtcNow.AddSeconds(30));
        return new SemaphoreSlim(Math.Max(1, info.MaxConcurrentRequests));
    }

    /// <summary>Shared by every run that needs the dataset there, so no single run's cancellation stops it.</summary>
    private async Task<string> Register(KernelEndpoint endpoint, DatasetReference dataset)
    {
        var info = await InSlotAsync(endpoint, () => endpoint.Client.RegisterDatasetAsync(new RegisterDatasetRequest
        {
            Path = dataset.Path, Format = dataset.Format, Preprocessing = dataset.Preprocessing,
        }, Options(CancellationToken.None)).ResponseAsync, CancellationToken.None);
        _logger.LogInformation("Registered {Dataset} on {Address} as {Id}", dataset.Path, endpoint.Address, info.DatasetId);
        return info.DatasetId;
    }

    private static IEnumerable<string> Expand(string address)
    {
        if (!address.StartsWith("dns:///", StringComparison.Ordinal))
            return [address];
        // One channel per address behind the name: shards go to distinct servers.
        var hostPort = address["dns:///".Length..];
        var separator = hostPort.LastIndexOf(':');
        var host = hostPort[..separator];
        var port = hostPort[(separator + 1)..];
        return Dns.GetHostAddresses(host).Select(ip => ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"http://[{ip}]:{port}" : $"http://{ip}:{port}");
    }

    public void Dispose()
    {
        foreach (var endpoint in Endpoints) endpoint.Channel.Dispose();
    }
}

public sealed record KernelEndpoint(string Address, GrpcChannel Channel)
{
    public KernelService.KernelServiceClient Client { get; } = new(Channel);
}
