#!/usr/bin/env bash
# Builds and starts one kernel service in the foreground (inside the TorchSharp sandbox
# where the host needs it). Any extra arguments are ASP.NET configuration, for example
# --Server:ApiKey=KEY --KernelService:Threads=1.
#
#   deploy/run-kernel-service.sh [--port N] [--data-root DIR] [CONFIG...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port=5051
data_root="${DISTILL_DATA:-$repo/../shared/datasets}"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift ;;
    --data-root) data_root="$2"; shift ;;
    *) extra+=("$1") ;;
  esac
  shift
done

cd "$repo"
deploy/sandbox/sandbox.sh --setup
dotnet build services/Distill.KernelService -c Release -nologo -v quiet >/dev/null
args=(--urls "http://0.0.0.0:$port")
if [ -d "$data_root" ]; then
  data_root="$(cd "$data_root" && pwd)"
  args+=(--KernelService:DataRoot="$data_root")
  export DISTILL_SANDBOX_BIND="$data_root"
fi
echo "kernel service on port $port${DISTILL_SANDBOX_BIND:+, data root $data_root}"
exec deploy/sandbox/sandbox.sh dotnet services/Distill.KernelService/bin/Release/net10.0/Distill.KernelService.dll "${args[@]}" "${extra[@]}"
