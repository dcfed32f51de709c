using Distill.DistillerService.Configuration;
using Distill.Protos.Distiller.V1;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace Distill.DistillerService.Kernels;

/// <summary>Each kernel service as this distiller sees it now: asked in parallel, with a short deadline.</summary>
public sealed class KernelServiceStatuses(KernelServicePool pool, IOptions<DistillerOptions> options, TimeProvider time)
{
    public async Task<ListKernelServicesResponse> ListAsync(CancellationToken cancellation)
    {
        var timeout = TimeSpan.FromSeconds(options.Value.StatusTimeoutSeconds);
        var statuses = await Task.WhenAll(pool.Endpoints.Select(async endpoint =>
        {
            var status = new KernelServiceStatus { Address = endpoint.Address };
            try
            {
                var info = await pool.ServerInfoAsync(endpoint, timeout, cancellation);
                status.Reachable = true;
                status.Version = info.Version;
                status.Device = info.Device;
                status.Threads = info.Threads;
                status.MaxConcurrentRequests = info.MaxConcurrentRequests;
                status.CallsInFlight = Math.Max(endpoint.CallsInFlight, info.CallsInFlight);
            }
            catch (RpcException e) when (!cancellation.IsCancellationRequested)
            {
                status.Error = $"{e.StatusCode}: {e.Status.Detail}";
                status.CallsInFlight = endpoint.CallsInFlight;
                status.MaxConcurrentRequests = endpoint.MaxConcurrent;
            }
            var now = time.GetUtcNow();
            var (compute, transport, runs) = endpoint.Recent(now);
            status.RecentComputeTime = Duration.FromTimeSpan(compute);
            status.RecentTransportTime = Duration.FromTimeSpan(transport);
            status.Runs.AddRange(runs);
            status.CheckTime = Timestamp.FromDateTimeOffset(now);
            return status;
        }));
        return new ListKernelServicesResponse { KernelServices = { statuses } };
    }
}
