#!/usr/bin/env bash
# The project's test command: installs what the tests need, builds, and runs every test
# project. Code that loads TorchSharp runs inside the Debian 13 sandbox when this host's
# libstdc++ is too old (see deploy/sandbox/sandbox.sh).
#
#   ./test.sh                 the default suite (no datasets needed)
#   ./test.sh --slow          also the opt-in suites that need ../shared/datasets
#   ./test.sh --filter EXPR   pass a dotnet test filter
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    --slow) export DISTILL_SLOW_TESTS=1 ;;
    --filter) filter="$2"; shift ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export DISTILL_SANDBOX_BIND="${DISTILL_DATA:-}"
deploy/sandbox/sandbox.sh --setup
dotnet build Distill.Grpc.sln -c Release -nologo -v quiet

args=(test Distill.Grpc.sln -c Release --no-build -nologo --logger "console;verbosity=normal")
[ -n "$filter" ] && args+=(--filter "$filter")
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
deploy/sandbox/sandbox.sh dotnet "${args[@]}" 2>&1 | tee "$log" || status=$?

# One closing line over all test projects, in the plain form CI reads.
awk '/^ *(Passed|Failed|Skipped): +[0-9]+ *$/ { count[$1] += $2 }
     END { printf "%d passed, %d failed, %d skipped\n", count["Passed:"], count["Failed:"], count["Skipped:"] }' "$log"
exit "$status"
