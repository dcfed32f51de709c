#!/usr/bin/env bash
# Starts the whole system on this machine and prints the dashboard's address:
#   one kernel service, the distiller (SQLite under runs/system) and the web dashboard,
#   then starts a first MNIST run so that the dashboard is alive within a minute.
# Ctrl-C stops everything; no process is left behind.
#
#   ./run.sh                  the system and a demo run
#   ./run.sh --no-demo-run    the system only
#   ./run.sh --cli [ARGS...]  no services: distill MNIST in-process with 'distill kip'
#                             (10 images, one per class; ARGS go to 'distill kip', e.g. --steps 1000)
# Data from $DISTILL_DATA (default: ../shared/datasets). Ports: $DISTILL_KERNEL_PORT (5051),
# $DISTILL_DISTILLER_PORT (5052), $DISTILL_DASHBOARD_PORT (5050).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${DISTILL_DATA:-$repo/../shared/datasets}"
[ -d "$data/mnist" ] || { echo "run.sh: no MNIST under $data/mnist; set DISTILL_DATA to a folder holding mnist/" >&2; exit 1; }
data="$(cd "$data" && pwd)"
cd "$repo"
deploy/sandbox/sandbox.sh --setup
export DISTILL_SANDBOX_BIND="$data"

if [ "${1:-}" = "--cli" ]; then
  shift
  out="${DISTILL_OUT:-$repo/runs/mnist-10}"
  dotnet build tools/Distill.Cli -c Release -nologo -v quiet >/dev/null
  deploy/sandbox/sandbox.sh dotnet tools/Distill.Cli/bin/Release/net10.0/distill.dll kip \
    --data "$data/mnist" --ipc 1 --steps 300 --out "$out" "$@"
  echo
  echo "Outputs in $out:"
  echo "  distilled.safetensors  images (preprocessed and pixel space), labels, settings"
  echo "  distilled.png          the distilled images, one row per class"
  echo "  summary.json           final test accuracy, timings, evaluation history"
  echo "  checkpoint.safetensors resume with: ./run.sh --cli --resume"
  exit 0
fi

demo=1
for arg in "$@"; do
  case "$arg" in
    --no-demo-run) demo=0 ;;
    *) echo "run.sh: unknown option $arg (see the top of run.sh)" >&2; exit 2 ;;
  esac
done

kernel_port="${DISTILL_KERNEL_PORT:-5051}"
distiller_port="${DISTILL_DISTILLER_PORT:-5052}"
dashboard_port="${DISTILL_DASHBOARD_PORT:-5050}"
state="$repo/runs/system"
mkdir -p "$state"

echo "Building (first time: a few minutes)..."
dotnet build services/Distill.KernelService -c Release -nologo -v quiet >/dev/null
dotnet build services/Distill.DistillerService -c Release -nologo -v quiet >/dev/null
dotnet build dashboard/Distill.Dashboard -c Release -nologo -v quiet >/dev/null

source deploy/local-system.sh
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping..."
  system_stop "$state"
  exit 0
}
trap stop INT TERM EXIT
system_start "$state" "$data" "$kernel_port" "$distiller_port" "$dashboard_port" || exit 1

if [ "$demo" = 1 ]; then
  # StartRun through the distiller's REST mapping (HTTP/2 without TLS); the request id makes a rerun idempotent.
  if curl -sS --fail --http2-prior-knowledge -X POST "http://127.0.0.1:$distiller_port/v1/runs" -H 'content-type: application/json' \
      -d "{\"spec\":{\"dataset\":\"mnist\",\"supportPerClass\":1,\"steps\":500},\"requestId\":\"run-sh-demo-$(date +%Y%m%d%H%M)\"}" >/dev/null; then
    echo "Started a demo run: 500 KIP steps on MNIST, one image per class."
  else
    echo "run.sh: could not start the demo run (see $state/distiller.log)" >&2
  fi
fi

echo
echo "Dashboard:  http://127.0.0.1:$dashboard_port"
echo "Distiller:  http://127.0.0.1:$distiller_port (gRPC)   Kernel service: http://127.0.0.1:$kernel_port"
echo "Logs and data in $state. Press Ctrl-C to stop everything."
# Until Ctrl-C, or until a service ends by itself (then everything stops).
all_alive() { for f in "$state"/*.pid; do kill -0 -- "-$(cat "$f")" 2>/dev/null || return 1; done; }
while all_alive; do sleep 2; done
echo "run.sh: a service stopped; see the logs in $state" >&2
