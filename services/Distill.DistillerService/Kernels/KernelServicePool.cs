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

/// <summary>Looks up a host name's addresses (DNS unless a test supplies its own).</summary>
public delegate Task<IPAddress[]> HostResolver(string host, CancellationToken cancellation);

/// <summary>
/// The configured kernel services: one channel each, datasets registered on demand (and
/// again after a service restarts and forgets them), and calls retried with exponential
/// backoff before a caller moves the work elsewhere. A dns:/// entry is looked up again
/// every ResolveIntervalSeconds, so replicas added, removed or moved to new addresses are
/// used without restarting the distiller.
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

    private readonly string[] _configured;
    private readonly bool _lookedUp;
    private readonly HostResolver _resolve;
    // Every endpoint ever resolved, so a call in flight never sees its channel disposed.
    private readonly ConcurrentDictionary<string, KernelEndpoint> _known = new();
    private volatile IReadOnlyList<KernelEndpoint> _endpoints = [];
    private long _resolvedAt;
    private int _resolving;

    public KernelServicePool(IOptions<DistillerOptions> options, ILogger<KernelServicePool> logger, HostResolver? resolve = null)
    {
        _options = options.Value;
        _logger = logger;
        _configured = _options.KernelServices.Length == 0 ? [DistillerOptions.DefaultKernelService] : _options.KernelServices;
        _resolve = resolve ?? Dns.GetHostAddressesAsync;
        _lookedUp = _configured.Any(IsDnsName);
        // The first lookup before any run starts; a name that does not resolve yet (a
        // service still starting) leaves the list empty and runs wait, PAUSED, for it.
        RefreshAsync().GetAwaiter().GetResult();
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

    /// <summary>The services now; reading it starts a new lookup of dns:/// entries when one is due.</summary>
    public IReadOnlyList<KernelEndpoint> Endpoints
    {
        get
        {
            if (_lookedUp
                && System.Diagnostics.Stopwatch.GetElapsedTime(Interlocked.Read(ref _resolvedAt)) > TimeSpan.FromSeconds(_options.ResolveIntervalSeconds)
                && Interlocked.Exchange(ref _resolving, 1) == 0)
                _ = RefreshAsync();
            return _endpoints;
        }
    }

    private async Task RefreshAsync()
    {
        try
        {
            var addresses = new List<string>();
            foreach (var entry in _configured) addresses.AddRange(await ExpandAsync(entry));
            var endpoints = addresses.Distinct().Select(address => _known.GetOrAdd(address, NewEndpoint)).ToArray();
            if (!endpoints.Select(e => e.Address).SequenceEqual(_endpoints.Select(e => e.Address)))
                _logger.LogInformation("Kernel services: {Addresses}", string.Join(", ", endpoints.Select(e => e.Address)));
            _endpoints = endpoints;
        }
        catch (System.Net.Sockets.SocketException e)
        {
            _logger.LogWarning("Looking up the kernel services failed ({Error}); keeping {Count} known", e.Message, _endpoints.Count);
        }
        finally
        {
            Interlocked.Exchange(ref _resolvedAt, System.Diagnostics.Stopwatch.GetTimestamp());
            Volatile.Write(ref _resolving, 0);
        }
    }

    private static KernelEndpoint NewEndpoint(string address) => new(address, GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        MaxReceiveMessageSize = 256 << 20,
        MaxSendMessageSize = 256 << 20,
        // A shard's gradient is megabytes; the default 64 KiB window turns each response into
        // dozens of window-update round trips, which on loopback never grow the window.
        HttpHandler = new SocketsHttpHandler { InitialHttp2StreamWindowSize = 16 << 20 },
    }));

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

    private static bool IsDnsName(string address) => address.StartsWith("dns:///", StringComparison.Ordinal);

    private async Task<IEnumerable<string>> ExpandAsync(string address)
    {
        if (!IsDnsName(address))
            return [address];
        // One channel per address behind the name: shards go to distinct servers.
        var hostPort = address["dns:///".Length..];
        var separator = hostPort.LastIndexOf(':');
        if (separator < 0) throw new ArgumentException($"Distiller:KernelServices: '{address}' needs a port, as in dns:///name:5051");
        var host = hostPort[..separator];
        var port = hostPort[(separator + 1)..];
        var ips = await _resolve(host, CancellationToken.None);
        return ips.OrderBy(ip => ip.ToString(), StringComparer.Ordinal)
            .Select(ip => ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"http://[{ip}]:{port}" : $"http://{ip}:{port}");
    }

    public void Dispose()
    {
        foreach (var endpoint in _known.Values) endpoint.Channel.Dispose();
    }
}

public sealed record KernelEndpoint(string Address, GrpcChannel Channel)
{
    public KernelService.KernelServiceClient Client { get; } = new(Channel);
}
