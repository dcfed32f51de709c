# The kernel service image. Build from the repository root:
#   docker build -f deploy/docker/kernel-service.Dockerfile -t distill/kernel-service .
# CUDA (an NVIDIA GPU host; libtorch for CUDA 12.8 makes the image several GB):
#   docker build -f deploy/docker/kernel-service.Dockerfile --build-arg TORCH_BACKEND=cuda \
#     -t distill/kernel-service-cuda .
#
# Build arguments:
#   BASE_IMAGE      runtime base (default: the official .NET runtime-deps image, Ubuntu 24.04,
#                   whose libstdc++ has the GLIBCXX_3.4.32 that TorchSharp 0.107 needs)
#   SDK_IMAGE       the image that publishes (default: the official .NET SDK image)
#   TORCH_BACKEND   cpu (TorchSharp-cpu) or cuda (TorchSharp-cuda-linux): one code path
#   PUBLISH         sdk (publish in SDK_IMAGE) or prebuilt (copy deploy/containers/published/
#                   kernel-service, published on the build host the same way: see
#                   deploy/containers/publish.sh; for hosts that cannot pull SDK_IMAGE)
ARG BASE_IMAGE=mcr.microsoft.com/dotnet/runtime-deps:10.0
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG PUBLISH=sdk

FROM ${SDK_IMAGE} AS publish-sdk
ARG TORCH_BACKEND=cpu
WORKDIR /src
COPY . .
RUN dotnet publish services/Distill.KernelService -c Release -r linux-x64 --self-contained \
      -p:TorchBackend=${TORCH_BACKEND} -o /app

FROM ${BASE_IMAGE} AS publish-prebuilt
COPY deploy/containers/published/kernel-service /app

FROM publish-${PUBLISH} AS publish

FROM ${BASE_IMAGE}
# TorchSharp's libtorch needs OpenMP; install it only where the base lacks it.
RUN if ! ls /usr/lib/x86_64-linux-gnu/libgomp.so.1 >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*; fi
WORKDIR /app
COPY --from=publish /app /app
ENV Server__Port=5051 KernelService__DataRoot=/data HOME=/tmp \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_gcServer=0
EXPOSE 5051
# The official images' non-root "app" user, by number so that any base works.
USER 1654:1654
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 \
  CMD ["/app/Distill.KernelService", "--health-probe"]
ENTRYPOINT ["/app/Distill.KernelService"]
