#!/usr/bin/env bash
# Distills MNIST to 10 images (one per class) with the command line and prints where the
# outputs are. Data from $DISTILL_DATA (default: ../shared/datasets); extra arguments are
# passed to 'distill kip' (for example --steps 1000 or --ipc 10).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${DISTILL_DATA:-$repo/../shared/datasets}"
[ -d "$data/mnist" ] || { echo "run.sh: no MNIST under $data/mnist; set DISTILL_DATA to a folder holding mnist/" >&2; exit 1; }
data="$(cd "$data" && pwd)"
out="${DISTILL_OUT:-$repo/runs/mnist-10}"

cd "$repo"
deploy/sandbox/sandbox.sh --setup
dotnet build tools/Distill.Cli -c Release -nologo -v quiet >/dev/null
export DISTILL_SANDBOX_BIND="$data"
deploy/sandbox/sandbox.sh dotnet tools/Distill.Cli/bin/Release/net10.0/distill.dll kip \
  --data "$data/mnist" --ipc 1 --steps 300 --out "$out" "$@"
echo
echo "Outputs in $out:"
echo "  distilled.safetensors  images (preprocessed and pixel space), labels, settings"
echo "  distilled.png          the distilled images, one row per class"
echo "  summary.json           final test accuracy, timings, evaluation history"
echo "  checkpoint.safetensors resume with: ./run.sh --resume"
