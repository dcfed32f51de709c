# The dashboard image (HTTP/1.1 on 8080; Dashboard__Distiller names the distiller, e.g.
# http://distiller:5052). Build from the repository root:
#   docker build -f deploy/docker/dashboard.Dockerfile -t distill/dashboard .
# Build arguments as in kernel-service.Dockerfile (BASE_IMAGE, SDK_IMAGE, PUBLISH).
ARG BASE_IMAGE=mcr.microsoft.com/dotnet/runtime-deps:10.0
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG PUBLISH=sdk

FROM ${SDK_IMAGE} AS publish-sdk
WORKDIR /src
COPY . .
RUN dotnet publish dashboard/Distill.Dashboard/Distill.Dashboard.csproj -c Release -r linux-x64 --self-contained -o /app

FROM ${BASE_IMAGE} AS publish-prebuilt
COPY deploy/containers/published/dashboard /app

FROM publish-${PUBLISH} AS publish

FROM ${BASE_IMAGE}
WORKDIR /app
COPY --from=publish /app /app
ENV ASPNETCORE_HTTP_PORTS=8080 Dashboard__Distiller=http://distiller:5052 HOME=/tmp \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
EXPOSE 8080
USER 1654:1654
ENTRYPOINT ["/app/Distill.Dashboard"]
