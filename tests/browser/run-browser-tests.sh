#!/usr/bin/env bash
# Browser end-to-end tests of the dashboard: installs Debian's Chromium if missing, builds,
# starts a kernel service, the distiller (SQLite, a throwaway data folder) and the dashboard (with
# an access key) on free ports, runs the [Trait("Category","Browser")] tests with Playwright on
# that Chromium (they may crash and restart the distiller through $work/restart-distiller), leaves screenshots of every page (1280x800) in .cache/screenshots, and tears everything down.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
data="${DISTILL_DATA:-$repo/../shared/datasets}"
[ -d "$data/mnist" ] || { echo "run-browser-tests: no MNIST under $data/mnist" >&2; exit 1; }
data="$(cd "$data" && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

work="$repo/.cache/browser-tests"
rm -rf "$work" "$repo/.cache/screenshots"
mkdir -p "$work" "$repo/.cache/screenshots"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
kernel_port=$(free_port); distiller_port=$(free_port); dashboard_port=$(free_port)

deploy/sandbox/sandbox.sh --setup
dotnet build services/Distill.KernelService -c Release -nologo -v quiet
dotnet build services/Distill.DistillerService -c Release -nologo -v quiet
dotnet build tests/Distill.Dashboard.Tests -c Release -nologo -v quiet

# Each service in its own session (setsid) with its process-group id in NAME.pid, so that the
# trap can end the whole group and the tests can kill and restart the distiller.
export DISTILL_SANDBOX_BIND="$data"
access_key="browser-test-$RANDOM$RANDOM"
cat >"$work/start-distiller" <<EOS
#!/usr/bin/env bash
cd "$repo"
setsid bash -c "exec deploy/sandbox/sandbox.sh dotnet services/Distill.DistillerService/bin/Release/net10.0/Distill.DistillerService.dll \\
  --urls http://127.0.0.1:$distiller_port --Distiller:DataRoot=$data --Distiller:DataFolder=$work/distiller \\
  --Distiller:KernelServices:0=http://127.0.0.1:$kernel_port" >>"$work/distiller.log" 2>&1 </dev/null &
echo \$! >"$work/distiller.pid"
EOS
# What a test calls to crash the distiller (SIGKILL) and start it again on the same port and data.
cat >"$work/restart-distiller" <<EOS
#!/usr/bin/env bash
set -euo pipefail
pid=\$(cat "$work/distiller.pid")
kill -KILL -- "-\$pid" 2>/dev/null || true
while kill -0 -- "-\$pid" 2>/dev/null; do sleep 0.1; done
bash "$work/start-distiller"
for _ in \$(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$distiller_port) 2>/dev/null && exit 0; sleep 0.1; done
echo "distiller did not come back" >&2; exit 1
EOS
chmod +x "$work/start-distiller" "$work/restart-distiller"

stop_group() {  # pid file
  local pid; pid=$(cat "$1" 2>/dev/null) || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
cleanup() { for f in "$work"/*.pid; do stop_group "$f"; done; }
trap cleanup EXIT INT TERM

setsid bash -c "exec deploy/sandbox/sandbox.sh dotnet services/Distill.KernelService/bin/Release/net10.0/Distill.KernelService.dll \
  --urls http://127.0.0.1:$kernel_port --KernelService:DataRoot=$data" >"$work/kernel.log" 2>&1 </dev/null &
echo $! >"$work/kernel.pid"
bash "$work/start-distiller"
# The dashboard loads no TorchSharp: it runs on the host. An access key makes the tests sign in.
setsid dotnet dashboard/Distill.Dashboard/bin/Release/net10.0/Distill.Dashboard.dll --urls "http://127.0.0.1:$dashboard_port" \
  --Dashboard:Distiller="http://127.0.0.1:$distiller_port" --Dashboard:AccessKey="$access_key" >"$work/dashboard.log" 2>&1 </dev/null &
echo $! >"$work/dashboard.pid"

wait_for() {  # port name
  for _ in $(seq 240); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.5
  done
  echo "run-browser-tests: $2 did not start; its log:" >&2; tail -n 40 "$work/$2.log" >&2; return 1
}
wait_for "$kernel_port" kernel; wait_for "$distiller_port" distiller; wait_for "$dashboard_port" dashboard

status=0
DISTILL_BROWSER_TESTS=1 DISTILL_DASHBOARD_URL="http://127.0.0.1:$dashboard_port" DISTILL_SCREENSHOTS="$repo/.cache/screenshots" \
  DISTILL_DASHBOARD_ACCESS_KEY="$access_key" DISTILL_RESTART_DISTILLER="$work/restart-distiller" \
  dotnet test tests/Distill.Dashboard.Tests -c Release --no-build -nologo --filter "Category=Browser" \
  --logger "console;verbosity=normal" || status=$?
echo "Screenshots: $repo/.cache/screenshots"; ls "$repo/.cache/screenshots" || true
[ "$status" = 0 ] || { echo "--- dashboard log"; tail -n 60 "$work/dashboard.log"; echo "--- distiller log"; tail -n 30 "$work/distiller.log"; }
exit "$status"
