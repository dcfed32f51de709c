#!/usr/bin/env bash
# Builds and starts the distiller service in the foreground (inside the TorchSharp sandbox
# where the host needs it). Extra arguments are ASP.NET configuration.
#
#   deploy/run-distiller.sh [--port N] [--data-root DIR] [--state DIR] [--kernel URL]... [CONFIG...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port=5052
data_root="${DISTILL_DATA:-$repo/../shared/datasets}"
state="$repo/runs/distiller"
kernels=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift ;;
    --data-root) data_root="$2"; shift ;;
    --state) state="$2"; shift ;;
    --kernel) kernels+=("$2"); shift ;;
    *) extra+=("$1") ;;
  esac
  shift
done
[ ${#kernels[@]} -gt 0 ] || kernels=(http://127.0.0.1:5051)

cd "$repo"
deploy/sandbox/sandbox.sh --setup
dotnet build services/Distill.DistillerService -c Release -nologo -v quiet >/dev/null
data_root="$(cd "$data_root" && pwd)"
mkdir -p "$state"
args=(--urls "http://0.0.0.0:$port" --Distiller:DataRoot="$data_root" --Distiller:DataFolder="$(cd "$state" && pwd)")
for i in "${!kernels[@]}"; do args+=(--Distiller:KernelServices:$i="${kernels[$i]}"); done
export DISTILL_SANDBOX_BIND="$data_root"
echo "distiller on port $port; kernel services ${kernels[*]}; data root $data_root; state $state"
exec deploy/sandbox/sandbox.sh dotnet services/Distill.DistillerService/bin/Release/net10.0/Distill.DistillerService.dll "${args[@]}" "${extra[@]}"
