# The kernel service image. The .NET 10 images are based on Ubuntu 24.04, whose
# libstdc++ has the GLIBCXX_3.4.32 that TorchSharp 0.107 needs, so no sandbox here.
# Build from the repository root: docker build -f deploy/docker/kernel-service.Dockerfile .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish services/Distill.KernelService -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app .
ENV Server__Port=5051 KernelService__DataRoot=/data
EXPOSE 5051
ENTRYPOINT ["dotnet", "Distill.KernelService.dll"]
