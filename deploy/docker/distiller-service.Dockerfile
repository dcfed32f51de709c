# The distiller service image (see kernel-service.Dockerfile for the base image choice).
# Build from the repository root: docker build -f deploy/docker/distiller-service.Dockerfile .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish services/Distill.DistillerService -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app .
ENV Server__Port=5052 Distiller__DataRoot=/data Distiller__DataFolder=/state
EXPOSE 5052
VOLUME /state
ENTRYPOINT ["dotnet", "Distill.DistillerService.dll"]
