using System.Collections.Concurrent;
using System.Net;
using Distill.Adapters.Clients;
using Distill.Core.Errors;
using Distill.DistillerService.Configuration;
using Distill.Protos.Kernel.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;
using Polly.Retry;
using Polly;

namespace Distill.DistillerService.Kernels;

/// <summary>A dataset as kernel services register it: path under the data root, format and preprocessing.</summary>
public sealed record DatasetReference(string Path, DatasetFormat Format, Preprocessing Preprocessing)
{
    public string Key => $"{Path}|{Format}|{Preprocessing}";
}

/// <summary>Looks up a host name's addresses (DNS unless a test supplies its own).</summary>
public delegate Task<IPAddress[]> HostResolver(string host, CancellationToken cancellation);

/// <summary>
/// The configured kernel services: one channel each, datasets registered on demand with a
/// lease (again when a service answers DATASET_NOT_FOUND: it restarted or the lease ended)
/// and dropped when no holder needs them any more, and calls retried when retrying can
/// help: UNAVAILABLE, DEADLINE_EXCEEDED, and errors that carry a RetryInfo (after its
/// delay). A dns:/// entry is looked up again every ResolveIntervalSeconds, so replicas
/// added, removed or moved to new addresses are used without restarting the distiller.
/// </summary>
public sealed class KernelServicePool : IAsyncDisposable
{
    private readonly DistillerOptions _options;
    private readonly ILogger<KernelServicePool> _logger;
    private readonly ConcurrentDictionary<(string Address, string Dataset), Task<string>> _registrations = new();
    private readonly ConcurrentDictionary<string, Task<SemaphoreSlim>> _slots = new();
    private readonly Dictionary<string, int> _holds = [];
    private readonly Lock _holdLock = new();
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
            ShouldHandle = new PredicateBuilder().Handle<RpcException>(KernelErrors.IsRetryable),
            MaxRetryAttempts = _options.RetryAttempts - 1,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(200),
            UseJitter = false,
            // A server that says when to come back is taken at its word.
            DelayGenerator = args => ValueTask.FromResult(args.Outcome.Exception is RpcException e ? KernelErrors.RetryDelay(e) : null),
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

    /// <summary>
    /// Calls <paramref name="call"/> on one endpoint with the dataset's name there, retrying
    /// what <see cref="KernelErrors.IsRetryable"/> allows; a DATASET_NOT_FOUND (a restarted
    /// service, an expired lease) registers the dataset again once. The call first waits for
    /// one of the service's compute slots (its max_concurrent_requests), so that runs sharing
    /// saturated services queue here and take turns in arrival order instead of being refused.
    /// Callers hold the dataset (<see cref="Hold"/>) while they call.
    /// </summary>
    public async Task<T> CallAsync<T>(KernelEndpoint endpoint, DatasetReference dataset,
        Func<KernelEndpoint, string, CallOptions, Task<T>> call, CancellationToken cancellation)
    {
        return await _retry.ExecuteAsync(async token =>
        {
            var registration = DatasetNameAsync(endpoint, dataset);
            var name = await registration.WaitAsync(token);
            try
            {
                return await InSlotAsync(endpoint, () => call(endpoint, name, Options(token)), token);
            }
            catch (RpcException e) when (KernelErrors.Reason(e) == ErrorReasons.DatasetNotFound)
            {
                _logger.LogInformation("{Address} no longer holds {Dataset}; registering it again", endpoint.Address, dataset.Path);
                _registrations.TryRemove(new KeyValuePair<(string, string), Task<string>>((endpoint.Address, dataset.Key), registration));
                name = await DatasetNameAsync(endpoint, dataset).WaitAsync(token);
                return await InSlotAsync(endpoint, () => call(endpoint, name, Options(token)), token);
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
        endpoint.Enter();
        try
        {
            return await call();
        }
        finally
        {
            endpoint.Exit();
            slots.Release();
        }
    }

    /// <summary>The deadline counts from the call itself, not from the wait for a slot.</summary>
    private CallOptions Options(CancellationToken token) => new(_headers, DateTime.UtcNow.AddSeconds(_options.CallTimeoutSeconds), token);

    /// <summary>The service's own description, with a short deadline.</summary>
    public async Task<ServerInfo> ServerInfoAsync(KernelEndpoint endpoint, TimeSpan timeout, CancellationToken cancellation) =>
        await endpoint.Client.GetServerInfoAsync(new GetServerInfoRequest(), _headers, DateTime.UtcNow.Add(timeout), cancellation);

    /// <summary>True when the endpoint answers GetServerInfo now.</summary>
    public async Task<bool> IsReachableAsync(KernelEndpoint endpoint, CancellationToken cancellation)
    {
        try
        {
            await ServerInfoAsync(endpoint, TimeSpan.FromSeconds(5), cancellation);
            return true;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    /// <summary>
    /// Marks the dataset as needed until the hold is released. When the last hold on a
    /// dataset is released, it is dropped on every service where it was registered.
    /// </summary>
    public DatasetHold Hold(DatasetReference dataset)
    {
        lock (_holdLock) _holds[dataset.Key] = _holds.GetValueOrDefault(dataset.Key) + 1;
        return new DatasetHold(this, dataset);
    }

    internal async Task ReleaseAsync(DatasetReference dataset)
    {
        List<(string Address, Task<string> Registration)> dropped;
        lock (_holdLock)
        {
            var count = _holds.GetValueOrDefault(dataset.Key) - 1;
            if (count > 0)
            {
                _holds[dataset.Key] = count;
                return;
            }
            _holds.Remove(dataset.Key);
            dropped = [];
            foreach (var (key, registration) in _registrations)
                if (key.Dataset == dataset.Key && _registrations.TryRemove(key, out _)) dropped.Add((key.Address, registration));
        }
        await DropAsync(dropped);
    }

    private async Task DropAsync(IEnumerable<(string Address, Task<string> Registration)> registrations)
    {
        await Task.WhenAll(registrations.Select(async r =>
        {
            try
            {
                var name = await r.Registration;
                await _known[r.Address].Client.DropDatasetAsync(new DropDatasetRequest { Name = name }, _headers, DateTime.UtcNow.AddSeconds(5));
                _logger.LogInformation("Dropped {Name} on {Address}", name, r.Address);
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
                // Never registered, or the service is away: its lease ends it.
            }
        }));
    }

    /// <summary>Drops a feature pool (best effort: a service that is away lets its lease end it).</summary>
    public async Task DropFeaturePoolAsync(KernelEndpoint endpoint, string name)
    {
        try
        {
            await endpoint.Client.DropFeaturePoolAsync(new DropFeaturePoolRequest { Name = name }, _headers, DateTime.UtcNow.AddSeconds(5));
            _logger.LogInformation("Dropped {Name} on {Address}", name, endpoint.Address);
        }
        catch (RpcException)
        {
        }
    }

    private Task<string> DatasetNameAsync(KernelEndpoint endpoint, DatasetReference dataset) =>
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
        var info = await ServerInfoAsync(endpoint, TimeSpan.FromSeconds(30), CancellationToken.None);
        endpoint.MaxConcurrent = Math.Max(1, info.MaxConcurrentRequests);
        return new SemaphoreSlim(endpoint.MaxConcurrent);
    }

    /// <summary>Shared by every run that needs the dataset there, so no single run's cancellation stops it.</summary>
    private async Task<string> Register(KernelEndpoint endpoint, DatasetReference dataset)
    {
        var registered = await InSlotAsync(endpoint, () => endpoint.Client.RegisterDatasetAsync(new RegisterDatasetRequest
        {
            Path = dataset.Path, Format = dataset.Format, Preprocessing = dataset.Preprocessing,
            LeaseTtl = Duration.FromTimeSpan(TimeSpan.FromSeconds(_options.DatasetLeaseSeconds)),
        }, Options(CancellationToken.None)).ResponseAsync, CancellationToken.None);
        _logger.LogInformation("Registered {Dataset} on {Address} as {Name}", dataset.Path, endpoint.Address, registered.Name);
        return registered.Name;
    }

    private static bool IsDnsName(string address) => address.StartsWith("dns:///", StringComparison.Ordinal);

    private async Task<IEnumerable<string>> ExpandAsync(string address)
    {
        if (!IsDnsName(address))
            return [address];
        // One channel per address behind the name: shards go to distinct servers.
        var hostPort = address["dns:///".Length..];
        var separator = hostPort.LastIndexOf(':');
        if (separator < 0) throw new InvalidFieldException("Distiller:KernelServices", $"'{address}' needs a port, as in dns:///name:5051");
        var host = hostPort[..separator];
        var port = hostPort[(separator + 1)..];
        var ips = await _resolve(host, CancellationToken.None);
        return ips.OrderBy(ip => ip.ToString(), StringComparer.Ordinal)
            .Select(ip => ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"http://[{ip}]:{port}" : $"http://{ip}:{port}");
    }

    /// <summary>Drops what is still registered (graceful shutdown), then closes the channels.</summary>
    public async ValueTask DisposeAsync()
    {
        List<(string, Task<string>)> remaining;
        lock (_holdLock)
        {
            remaining = _registrations.Select(r => (r.Key.Address, r.Value)).ToList();
            _registrations.Clear();
            _holds.Clear();
        }
        await DropAsync(remaining);
        foreach (var endpoint in _known.Values) endpoint.Channel.Dispose();
    }
}

/// <summary>A run's (or an evaluation's) claim on a dataset registered on kernel services.</summary>
public sealed class DatasetHold(KernelServicePool pool, DatasetReference dataset) : IAsyncDisposable
{
    private int _released;

    public ValueTask DisposeAsync() =>
        Interlocked.Exchange(ref _released, 1) == 0 ? new ValueTask(pool.ReleaseAsync(dataset)) : ValueTask.CompletedTask;
}
