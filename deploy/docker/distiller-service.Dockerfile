# The distiller service image. Build from the repository root:
#   docker build -f deploy/docker/distiller-service.Dockerfile -t distill/distiller-service .
# Build arguments as in kernel-service.Dockerfile (BASE_IMAGE, SDK_IMAGE, PUBLISH); the
# distiller's own tensor work is small and stays on the CPU build.
ARG BASE_IMAGE=mcr.microsoft.com/dotnet/runtime-deps:10.0
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG PUBLISH=sdk

FROM ${SDK_IMAGE} AS publish-sdk
WORKDIR /src
COPY . .
RUN dotnet publish services/Distill.DistillerService -c Release -r linux-x64 --self-contained -o /app

FROM ${BASE_IMAGE} AS publish-prebuilt
COPY deploy/containers/published/distiller-service /app

FROM publish-${PUBLISH} AS publish

FROM ${BASE_IMAGE}
RUN if ! ls /usr/lib/x86_64-linux-gnu/libgomp.so.1 >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*; fi
WORKDIR /app
COPY --from=publish /app /app
# A fresh named volume takes this folder's owner: the non-root user can write run state.
RUN mkdir -p /state && chown 1654:1654 /state
ENV Server__Port=5052 Distiller__DataRoot=/data Distiller__DataFolder=/state HOME=/tmp \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
EXPOSE 5052
USER 1654:1654
# Run state (distiller.db, checkpoints, outputs); mount a volume here.
VOLUME /state
HEALTHCHECK --interval=10s --timeout=6s --start-period=20s --retries=3 \
  CMD ["/app/Distill.DistillerService", "--health-probe"]
ENTRYPOINT ["/app/Distill.DistillerService"]
