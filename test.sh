#!/usr/bin/env bash
# The project's test command: installs what the tests need, builds, and runs every test
# project. Code that loads TorchSharp runs inside the Debian 13 sandbox when this host's
# libstdc++ is too old (see deploy/sandbox/sandbox.sh).
#
#   ./test.sh                 the default suite (no datasets needed)
#   ./test.sh --slow          also the opt-in suites that need ../shared/datasets
#   ./test.sh --postgres      also the run store on PostgreSQL: a throwaway local server
#                             (installed from apt when missing) unless DISTILL_TEST_POSTGRES
#                             already names one
#   ./test.sh --filter EXPR   pass a dotnet test filter
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

filter=""
postgres=""
while [ $# -gt 0 ]; do
  case "$1" in
    --slow) export DISTILL_SLOW_TESTS=1 ;;
    --postgres) postgres=1 ;;
    --filter) filter="$2"; shift ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# oneDNN's AVX-512 float32 convolutions gave NaN on an AMD EPYC machine (TorchRuntime.LimitOneDnnOnAmd).
if grep -q AuthenticAMD /proc/cpuinfo 2>/dev/null; then export DNNL_MAX_CPU_ISA="${DNNL_MAX_CPU_ISA:-AVX2}"; fi
export DISTILL_SANDBOX_BIND="${DISTILL_DATA:-}"
deploy/sandbox/sandbox.sh --setup
dotnet build Distill.Grpc.sln -c Release -nologo -v quiet

# A test that hangs fails after 15 minutes, named, with a dump of its process under TestResults/,
# instead of holding CI to its limit.
args=(test Distill.Grpc.sln -c Release --no-build -nologo --logger "console;verbosity=normal" --blame-hang-timeout 15m)
[ -n "$filter" ] && args+=(--filter "$filter")
log="$(mktemp)"
pgdir=""
cleanup() {
  rm -f "$log"
  [ -z "$pgdir" ] || { as_postgres "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
}
trap cleanup EXIT
# PostgreSQL refuses to run as root: as root, its tools run as the postgres user.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ -n "$postgres" ] && [ -z "${DISTILL_TEST_POSTGRES:-}" ]; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  pgdir="$(mktemp -d)"
  [ "$(id -u)" = 0 ] && chown postgres "$pgdir"
  port="${DISTILL_TEST_POSTGRES_PORT:-55432}"
  as_postgres "$pgbin/initdb" -D "$pgdir/data" -A trust -U distill >/dev/null
  as_postgres "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  export DISTILL_TEST_POSTGRES="Host=127.0.0.1;Port=$port;Username=distill;Database=postgres"
fi
status=0
deploy/sandbox/sandbox.sh dotnet "${args[@]}" 2>&1 | tee "$log" || status=$?

# One closing line over all test projects, in the plain form CI reads.
awk '/^ *(Passed|Failed|Skipped): +[0-9]+ *$/ { count[$1] += $2 }
     END { printf "%d passed, %d failed, %d skipped\n", count["Passed:"], count["Failed:"], count["Skipped:"] }' "$log"
exit "$status"
