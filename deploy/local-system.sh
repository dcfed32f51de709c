# Sourced by run.sh and tests/browser/run-browser-tests.sh: the whole system as processes on
# this machine (one kernel service, the distiller on SQLite, the dashboard), each in its own
# session (setsid) with its process-group id in STATE/NAME.pid, logs in STATE/NAME.log.
# STATE/restart-distiller kills the distiller (SIGKILL) and starts it again on the same port
# and data: what a crash and a supervisor's restart look like.
#
#   system_start STATE DATA KERNEL_PORT DISTILLER_PORT DASHBOARD_PORT [DASHBOARD_ARGS...]
#   system_stop STATE
# Expects the services built (Release) and to run from the repository root.

system_start() {
  local state="$1" data="$2" kernel_port="$3" distiller_port="$4" dashboard_port="$5"; shift 5
  local repo; repo="$(pwd)"
  mkdir -p "$state"
  export DISTILL_SANDBOX_BIND="$data"
  setsid bash -c "exec deploy/sandbox/sandbox.sh dotnet services/Distill.KernelService/bin/Release/net10.0/Distill.KernelService.dll \
    --urls http://127.0.0.1:$kernel_port --KernelService:DataRoot=$data" >"$state/kernel.log" 2>&1 </dev/null &
  echo $! >"$state/kernel.pid"
  cat >"$state/start-distiller" <<EOS
#!/usr/bin/env bash
cd "$repo"
export DISTILL_SANDBOX_BIND="$data"
setsid bash -c "exec deploy/sandbox/sandbox.sh dotnet services/Distill.DistillerService/bin/Release/net10.0/Distill.DistillerService.dll \\
  --urls http://127.0.0.1:$distiller_port --Distiller:DataRoot=$data --Distiller:DataFolder=$state/distiller \\
  --Distiller:KernelServices:0=http://127.0.0.1:$kernel_port" >>"$state/distiller.log" 2>&1 </dev/null &
echo \$! >"$state/distiller.pid"
EOS
  cat >"$state/restart-distiller" <<EOS
#!/usr/bin/env bash
set -euo pipefail
pid=\$(cat "$state/distiller.pid")
kill -KILL -- "-\$pid" 2>/dev/null || true
while kill -0 -- "-\$pid" 2>/dev/null; do sleep 0.1; done
bash "$state/start-distiller"
for _ in \$(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$distiller_port) 2>/dev/null && exit 0; sleep 0.1; done
echo "the distiller did not come back; see $state/distiller.log" >&2; exit 1
EOS
  chmod +x "$state/start-distiller" "$state/restart-distiller"
  : >"$state/distiller.log"
  bash "$state/start-distiller"
  # The dashboard loads no TorchSharp: it runs on the host.
  setsid dotnet dashboard/Distill.Dashboard/bin/Release/net10.0/Distill.Dashboard.dll --urls "http://127.0.0.1:$dashboard_port" \
    --Dashboard:Distiller="http://127.0.0.1:$distiller_port" "$@" >"$state/dashboard.log" 2>&1 </dev/null &
  echo $! >"$state/dashboard.pid"

  local port name
  for pair in "$kernel_port:kernel" "$distiller_port:distiller" "$dashboard_port:dashboard"; do
    port="${pair%%:*}"; name="${pair#*:}"
    for _ in $(seq 480); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue 2
      sleep 0.25
    done
    echo "the $name did not start; the end of $state/$name.log:" >&2; tail -n 40 "$state/$name.log" >&2
    return 1
  done
}

# Stops every process group named by a pid file under STATE: TERM, then KILL after 10 s.
system_stop() {
  local pid file
  for file in "$1"/*.pid; do
    [ -e "$file" ] || continue
    pid="$(cat "$file")"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$file"
  done
}
