#!/usr/bin/env bash
# Publishes the services on this host exactly as the Dockerfiles' SDK stage does
# (self-contained linux-x64), into deploy/containers/published/NAME, for builds with
# --build-arg PUBLISH=prebuilt (hosts that cannot pull the .NET SDK image).
#
#   deploy/containers/publish.sh [kernel-service] [distiller-service] [dashboard]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
out="deploy/containers/published"
[ $# -gt 0 ] || set -- kernel-service distiller-service
for name in "$@"; do
  case "$name" in
    kernel-service) project=services/Distill.KernelService ;;
    distiller-service) project=services/Distill.DistillerService ;;
    dashboard) project=dashboard/Distill.Dashboard/Distill.Dashboard.csproj ;;
    *) echo "publish: unknown image $name" >&2; exit 2 ;;
  esac
  rm -rf "$out/$name"
  echo "publish: $name" >&2
  dotnet publish "$project" -c Release -r linux-x64 --self-contained -nologo -v quiet \
    -p:TorchBackend="${TORCH_BACKEND:-cpu}" -o "$out/$name" >&2
done
