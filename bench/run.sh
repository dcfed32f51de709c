#!/usr/bin/env bash
# Runs one named benchmark case and prints, as its last line, space-separated key=value
# pairs: case=... test_accuracy=... steps=... seconds=... steps_per_second=... peak_rss_mb=...
# The step-* cases time two implementations in the same invocation and print ratio=;
# compose-e2e prints the run through the containers (deploy/containers/test-compose.sh,
# undisturbed) and ratio= its steps/s over the same run on bare processes.
# dashboard-live prints pages= steps= dashboard_cpu= (the dashboard process's CPU over the run,
# fraction of one core, while it watches a second run; cold_dashboard_cpu= for the first) events_missed= p95_update_ms= (distiller event to point drawn).
# fuzz-readers runs AFL++ on every file reader (tests/fuzz/fuzz.sh) and prints readers= execs=
# crashes= hangs=; fuzz-grpc sends mutated requests of every RPC to a kernel service and a
# distiller started here and prints requests= crashes= undocumented= memory_growth_mb=.
#
#   bench/run.sh --list
#   bench/run.sh CASE            data from $DISTILL_DATA (default: ../shared/datasets)
#
# A case whose dataset is absent prints why and exits 0 with skipped=true.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${DISTILL_DATA:-$repo/../shared/datasets}"
data="$(cd "$data" 2>/dev/null && pwd || echo "$data")"

# name | dataset | CLI arguments | accuracy the case must reach
cases=(
  "mnist-fc-1ipc|mnist|--ipc 1 --steps 300|0.85"
  "mnist-fc-10ipc|mnist|--ipc 10 --steps 1000|0.95"
  "cifar10-fc-1ipc|cifar10|--ipc 1 --steps 1000|0.39"
  "cifar10-fc-10ipc|cifar10|--ipc 10 --steps 1000|0.47"
  "mnist-fc-50ipc|mnist|--ipc 50 --steps 1000|"
  "cifar10-fc-50ipc|cifar10|--ipc 50 --steps 1000|"
  "cifar10-transfer-1ipc|transfer|--seeds 5 --zca|0.35"
  "cifar10-conv-1ipc|cifar10pool|--ipc 1 --zca --feature-pool 64 --pool-sample 16 --rf-width 64 --pool-targets 10000 --target-batch 2000 --lr 0.003 --steps 2000 --validate-every 100 --held-out-networks 8 --test-subset 0 --threads 2|0.50"
  "cifar10-conv-10ipc|cifar10pool|--ipc 10 --zca --feature-pool 128 --feature-buffer-mb 6000 --pool-sample 16 --rf-width 64 --pool-targets 10000 --target-batch 2000 --lr 0.003 --steps 800 --validate-every 50 --held-out-networks 8 --test-subset 2000 --threads 2 --mirror|0.62"
  "cifar10-conv-50ipc|cifar10pool|--ipc 50 --no-exact-baseline --zca --feature-pool 128 --feature-buffer-mb 6000 --pool-sample 16 --rf-width 64 --pool-targets 10000 --target-batch 2000 --lr 0.003 --steps 400 --validate-every 50 --held-out-networks 8 --test-subset 1000 --threads 2|"
  "mnist-conv-1ipc|mnistpool|--ipc 1 --architecture convnet3 --feature-pool 64 --pool-sample 16 --rf-width 64 --pool-targets 10000 --target-batch 2000 --lr 0.01 --steps 2000 --validate-every 100 --held-out-networks 8 --test-subset 0 --threads 2|"
  "mnist-conv-10ipc|mnistpool|--ipc 10 --architecture convnet3 --feature-pool 128 --pool-sample 16 --rf-width 64 --pool-targets 10000 --target-batch 2000 --lr 0.01 --steps 800 --validate-every 50 --held-out-networks 8 --test-subset 2000 --threads 2|"
  "mnist-conv-50ipc|mnistpool|--ipc 50 --architecture convnet3 --feature-pool 128 --pool-sample 16 --rf-width 64 --pool-targets 10000 --target-batch 2000 --lr 0.01 --steps 400 --validate-every 50 --held-out-networks 8 --test-subset 1000 --threads 2|"
  "cifar10-ls-conv-1ipc|cifar10own|--method ls --ipc 1 --zca --architecture convnet3 --kernel nngp --max-train 10000 --eval-every 0 --threads 2|"
  "step-fc-10|none|step-benchmark --support 10 --steps 200|"
  "step-fc-100|none|step-benchmark --support 100 --steps 200|"
  "step-fc-10-f32|none|step-benchmark --support 10 --steps 200 --minimal-kernel-dtype float32|"
  "step-fc-100-f32|none|step-benchmark --support 100 --steps 200 --minimal-kernel-dtype float32|"
  "step-conv-pool-10|none|pool-step-benchmark --support 10 --steps 20 --exact-steps 2|"
  "step-conv-pool-100|none|pool-step-benchmark --support 100 --steps 20 --exact-steps 1 --exact-targets 20|"
  "step-pytorch-10|pytorch|--support 10 --steps 40 --rounds 5|"
  "step-pytorch-100|pytorch|--support 100 --steps 40 --rounds 5|"
  "compose-e2e|compose|--ipc 1 --steps 300 --target-batch 5000|0.85"
  "load-kernel|load|--clients 4 --seconds 60 --support 10 --target-batch 2000|"
  "soak-distiller|soak|--minutes ${DISTILL_SOAK_MINUTES:-20} --concurrent 3 --steps 20 --target-batch 500|"
  "kernel-service-overhead|service|--support 10 --target-batch 5000 --steps 50 --rounds 3|"
  "e2e-mnist-1ipc|e2e|--ipc 1 --steps 300 --target-batch 5000|0.85"
  "scale-out|scale|--ipc 10 --steps 100 --target-batch 10000|"
  "scale-out-5k|scale|--ipc 10 --steps 200 --target-batch 5000|"
  "scale-out-pool|scale|--architecture convnet3 --image-shape 1x28x28 --feature-pool 16 --pool-sample 8 --pool-targets 2000 --ipc 10 --steps 60 --target-batch 1000 --validate-every 0 --test-subset 20 --eval-every 0|"
  "dashboard-live|dashboard|--pages 5 --ipc 1 --steps 300 --target-batch 1000 --eval-every 50|"
  "fuzz-readers|readers|all 60|"
  "fuzz-grpc|grpcfuzz|--requests 2000 --seconds 600 --seed 1|"
)

if [ "${1:-}" = "--list" ] || [ $# -eq 0 ]; then
  for c in "${cases[@]}"; do IFS='|' read -r name dataset _ target <<<"$c"; echo "$name  (dataset: $dataset${target:+, target accuracy $target})"; done
  [ $# -eq 0 ] && exit 2 || exit 0
fi

name="$1"; spec=""
for c in "${cases[@]}"; do [ "${c%%|*}" = "$name" ] && spec="$c"; done
[ -n "$spec" ] || { echo "bench/run.sh: unknown case '$name' (see --list)" >&2; exit 2; }
IFS='|' read -r _ dataset arguments target <<<"$spec"

case "$dataset" in
  mnist|mnistpool)
    dir="$data/mnist"
    [ -e "$dir/train-images-idx3-ubyte.gz" ] || [ -e "$dir/train-images-idx3-ubyte" ] \
      || { echo "MNIST not found under $dir; skipping"; echo "case=$name skipped=true"; exit 0; } ;;
  cifar10|transfer|cifar10pool|cifar10own)
    dir="$repo/.cache/datasets/cifar10-jpeg"
    if [ ! -d "$dir/train" ]; then
      [ -f "$data/cifar10-jpeg.tar.gz" ] || { echo "cifar10-jpeg.tar.gz not found under $data; skipping"; echo "case=$name skipped=true"; exit 0; }
      echo "unpacking CIFAR-10 (once) into $repo/.cache/datasets"
      mkdir -p "$repo/.cache/datasets"
      tar xzf "$data/cifar10-jpeg.tar.gz" -C "$repo/.cache/datasets"
    fi ;;
esac

cd "$repo"
mkdir -p "$repo/.cache/bench"
# build PROJECT: a Release build whose output is shown when it fails.
build() {
  local out="$repo/.cache/bench/build.log"
  dotnet build "$1" -c Release -nologo -v quiet >"$out" 2>&1 \
    || { cat "$out" >&2; echo "bench/run.sh: building $1 failed" >&2; exit 1; }
}
# The fuzz cases need no command line.
case "$dataset" in readers|grpcfuzz) ;; *) build tools/Distill.Cli ;; esac
cli=(deploy/sandbox/sandbox.sh dotnet tools/Distill.Cli/bin/Release/net10.0/distill.dll)
export DISTILL_SANDBOX_BIND="$data"
log="$repo/.cache/bench/$name.log"
mkdir -p "$(dirname "$log")"

pids=()
# Each service runs in its own session, so that stopping it stops the sandbox and the
# dotnet process inside it together.
trap 'for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
# port_listens PORT: whether something accepts connections on 127.0.0.1:PORT.
port_listens() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# start_service PROJECT PORT ARGS...: a service in the background, waited for until it listens.
# The port must be free before the start, so the listener found afterwards is the service
# started here (while it is alive), not something left behind by an earlier run.
start_service() {
  local project="$1" port="$2"; shift 2
  if port_listens "$port"; then
    echo "bench/run.sh: port $port is already in use (a service left from an earlier run?); set DISTILL_BENCH_PORT to another base port" >&2
    exit 1
  fi
  setsid env ${DISTILL_BENCH_ENV:-} deploy/sandbox/sandbox.sh dotnet "services/$project/bin/Release/net10.0/$project.dll" --urls "http://127.0.0.1:$port" "$@" \
    >>"$repo/.cache/bench/$name.services.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "bench/run.sh: $project exited at start (log: .cache/bench/$name.services.log)" >&2; exit 1; }
    if port_listens "$port"; then
      kill -0 "${pids[-1]}" 2>/dev/null || { echo "bench/run.sh: $project exited at start (log: .cache/bench/$name.services.log)" >&2; exit 1; }
      return 0
    fi
    sleep 0.2
  done
  echo "bench/run.sh: $project did not start on port $port (log: .cache/bench/$name.services.log)" >&2; exit 1
}
# submit DISTILLER_PORT: one run through the distiller's gRPC API, its result line into the log.
submit() {
  # shellcheck disable=SC2086
  "${cli[@]}" submit --distiller "http://127.0.0.1:$1" --dataset mnist $arguments | tee -a "$log"
}

if [ "$dataset" = service ] || [ "$dataset" = load ] || [ "$dataset" = soak ] || [ "$dataset" = e2e ] || [ "$dataset" = scale ] || [ "$dataset" = compose ] || [ "$dataset" = dashboard ]; then
  dir="$data/mnist"
  [ -e "$dir/train-images-idx3-ubyte.gz" ] || { echo "MNIST not found under $dir; skipping"; echo "case=$name skipped=true"; exit 0; }
  build services/Distill.KernelService
  build services/Distill.DistillerService
  : >"$log"; : >"$repo/.cache/bench/$name.services.log"
  base="${DISTILL_BENCH_PORT:-5071}"
fi

if [ "$dataset" = grpcfuzz ]; then
  # Both services on a data root of their own holding the tiny IDX dataset the fuzzer's runs use.
  build services/Distill.KernelService
  build services/Distill.DistillerService
  build tests/fuzz/Distill.Fuzz.Grpc
  : >"$log"; : >"$repo/.cache/bench/$name.services.log"
  base="${DISTILL_BENCH_PORT:-5071}"
  fuzz_data="$repo/.cache/bench/$name.data"
  rm -rf "$fuzz_data" "$repo/.cache/bench/$name.state"
  fuzzer=(dotnet tests/fuzz/Distill.Fuzz.Grpc/bin/Release/net10.0/Distill.Fuzz.Grpc.dll)
  "${fuzzer[@]}" write-data "$fuzz_data"
  start_service Distill.KernelService "$base" --KernelService:DataRoot="$fuzz_data"
  start_service Distill.DistillerService "$((base + 1))" --Distiller:DataRoot="$fuzz_data" \
    --Distiller:DataFolder="$repo/.cache/bench/$name.state" --Distiller:KernelServices:0="http://127.0.0.1:$base"
  # The dotnet processes inside the sandboxes, whose resident memory the fuzzer compares.
  server_pids="$(for p in "${pids[@]}"; do pgrep -s "$p" -x dotnet | head -n 1; done | paste -sd, -)"
  # shellcheck disable=SC2086
  "${fuzzer[@]}" --kernel "http://127.0.0.1:$base" --distiller "http://127.0.0.1:$((base + 1))" --pids "$server_pids" $arguments \
    | tee "$log" || true
elif [ "$dataset" = readers ]; then
  # shellcheck disable=SC2086
  tests/fuzz/fuzz.sh $arguments | tee "$log" || true
  awk '/^reader=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); sum[kv[1]] += kv[2] } n++ }
       END { printf "result readers=%d execs=%d crashes=%d hangs=%d\n", n, sum["execs"], sum["crashes"], sum["hangs"] }' "$log" >>"$log"
elif [ "$dataset" = service ]; then
  start_service Distill.KernelService "$base" --KernelService:DataRoot="$data"
  # shellcheck disable=SC2086
  "${cli[@]}" kernel-benchmark --data "$dir" --address "http://127.0.0.1:$base" --remote-path mnist $arguments | tee "$log"
elif [ "$dataset" = load ]; then
  # Twice as many callers as the service computes at once (MaxConcurrentRequests=2): the
  # rest must be refused at once with RetryInfo, never queued without bound or crashed.
  start_service Distill.KernelService "$base" --KernelService:DataRoot="$data" --KernelService:MaxConcurrentRequests=2
  service_pid="$(pgrep -s "${pids[-1]}" -f Distill.KernelService.dll | tail -n 1)"
  rss_mb() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$service_pid/status"; }
  "${cli[@]}" load-kernel --address "http://127.0.0.1:$base" --remote-path mnist --clients 4 --seconds 5 >/dev/null  # warm-up
  rss0="$(rss_mb)"
  # shellcheck disable=SC2086
  "${cli[@]}" load-kernel --address "http://127.0.0.1:$base" --remote-path mnist $arguments | tee "$log"
  rss1="$(rss_mb)"
  kill -0 "$service_pid" 2>/dev/null && alive=true || alive=false
  sed -i "s/^result .*/& service_alive=$alive rss_start_mb=$rss0 rss_end_mb=$rss1 memory_growth_mb=$((rss1 - rss0))/" "$log"
elif [ "$dataset" = soak ]; then
  # Hundreds of short runs through one distiller; what it holds is sampled after a warm-up
  # and at the end: resident memory (libtorch's native tensors included), open file
  # descriptors, threads, the database's size, and the kernel service's resident memory.
  state="$repo/.cache/bench/$name.state"
  rm -rf "$state"
  start_service Distill.KernelService "$base" --KernelService:DataRoot="$data"
  kernel_pid="$(pgrep -s "${pids[-1]}" -f Distill.KernelService.dll | tail -n 1)"
  start_service Distill.DistillerService "$((base + 1))" --Distiller:DataRoot="$data" \
    --Distiller:DataFolder="$state" --Distiller:KernelServices:0="http://127.0.0.1:$base"
  distiller_pid="$(pgrep -s "${pids[-1]}" -f Distill.DistillerService.dll | tail -n 1)"
  rss_mb() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
  held() {  # PREFIX
    local db; db=$(cat "$state"/distiller.db* | wc -c)
    echo "$1_distiller_rss_mb=$(rss_mb "$distiller_pid") $1_distiller_fds=$(ls "/proc/$distiller_pid/fd" | wc -l) $1_distiller_threads=$(ls "/proc/$distiller_pid/task" | wc -l) $1_database_kb=$((db / 1024)) $1_kernel_rss_mb=$(rss_mb "$kernel_pid")"
  }
  "${cli[@]}" soak --distiller "http://127.0.0.1:$((base + 1))" --minutes 0.5 --concurrent 3 --steps 20 --target-batch 500 >/dev/null  # warm-up
  start="$(held start)"
  # shellcheck disable=SC2086
  "${cli[@]}" soak --distiller "http://127.0.0.1:$((base + 1))" $arguments | tee "$log"
  sed -i "s/^result .*/& $start $(held end)/" "$log"
elif [ "$dataset" = e2e ]; then
  rm -rf "$repo/.cache/bench/$name.state"
  start_service Distill.KernelService "$base" --KernelService:DataRoot="$data"
  start_service Distill.DistillerService "$((base + 1))" --Distiller:DataRoot="$data" \
    --Distiller:DataFolder="$repo/.cache/bench/$name.state" --Distiller:KernelServices:0="http://127.0.0.1:$base"
  submit "$((base + 1))"
elif [ "$dataset" = compose ]; then
  # The same run twice: through the containers (two kernel replicas, compose), then on bare
  # processes shaped alike (two kernel services, one distiller) on this host.
  steps="$(sed -E 's/.*--steps ([0-9]+).*/\1/' <<<"$arguments")"
  DISTILL_E2E_FAULTS=0 DISTILL_E2E_STEPS="$steps" DISTILL_DATA="$data" deploy/containers/test-compose.sh 2>&1 | tee "$repo/.cache/bench/$name.containers.log"
  containers="$(grep '^compose-e2e ' "$repo/.cache/bench/$name.containers.log" || true)"
  [ -n "$containers" ] || { echo "bench/run.sh: the container run failed (log: .cache/bench/$name.containers.log)" >&2; exit 1; }
  rm -rf "$repo/.cache/bench/$name.state"
  start_service Distill.KernelService "$base" --KernelService:DataRoot="$data" --KernelService:MaxConcurrentRequests=2
  start_service Distill.KernelService "$((base + 1))" --KernelService:DataRoot="$data" --KernelService:MaxConcurrentRequests=2
  start_service Distill.DistillerService "$((base + 2))" --Distiller:DataRoot="$data" \
    --Distiller:DataFolder="$repo/.cache/bench/$name.state" --Distiller:KernelServices:0="http://127.0.0.1:$base" \
    --Distiller:KernelServices:1="http://127.0.0.1:$((base + 1))"
  "${cli[@]}" submit --distiller "http://127.0.0.1:$((base + 2))" --dataset mnist $arguments | sed 's/^result /bare_result /' | tee -a "$log"
  bare_sps="$(grep '^bare_result ' "$log" | sed -E 's/.* steps_per_second=([0-9.]+).*/\1/')"
  c_acc="$(sed -E 's/.* accuracy=([0-9.]+).*/\1/' <<<"$containers")"
  c_sps="$(sed -E 's/.* steps_per_second=([0-9.]+).*/\1/' <<<"$containers")"
  c_sec="$(sed -E 's/.* seconds=([0-9.]+).*/\1/' <<<"$containers")"
  ratio="$(awk -v a="$c_sps" -v b="$bare_sps" 'BEGIN { printf "%.3f", a / b }')"
  echo "result state=Succeeded test_accuracy=$c_acc steps=$steps seconds=$c_sec steps_per_second=$c_sps bare_steps_per_second=$bare_sps ratio=$ratio" >>"$log"
elif [ "$dataset" = scale ]; then
  # Two kernel services of one thread each against one such service, on the same run. Each
  # side has its own distiller, warmed by a short run (the first steps of a fresh process
  # compile code); then measured runs alternate between the sides so that machine noise
  # hits both alike, and each side's median counts.
  one_thread=(--KernelService:DataRoot="$data" --KernelService:Threads=1 --KernelService:MaxConcurrentRequests=1)
  start_service Distill.KernelService "$base" "${one_thread[@]}"
  start_service Distill.KernelService "$((base + 1))" "${one_thread[@]}"
  for services in 1 2; do
    rm -rf "$repo/.cache/bench/$name.state$services"
    kernels=(--Distiller:KernelServices:0="http://127.0.0.1:$base")
    [ "$services" = 2 ] && kernels+=(--Distiller:KernelServices:1="http://127.0.0.1:$((base + 1))")
    start_service Distill.DistillerService "$((base + 1 + services))" --Distiller:DataRoot="$data" \
      --Distiller:DataFolder="$repo/.cache/bench/$name.state$services" "${kernels[@]}"
    # The warm-up keeps every argument of the case but the number of steps.
    warm_arguments="$(sed -E 's/--steps [0-9]+/--steps 30/' <<<"$arguments")"
    # shellcheck disable=SC2086
    "${cli[@]}" submit --distiller "http://127.0.0.1:$((base + 1 + services))" --dataset mnist $warm_arguments >/dev/null
  done
  rounds="${DISTILL_SCALE_ROUNDS:-3}"
  for round in $(seq 1 "$rounds"); do
    for services in 1 2; do
      echo "round $round/$rounds, $services kernel service(s):"
      submit "$((base + 1 + services))"
    done
  done
  # Results alternate one service, two services; the median of each side.
  median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  rates="$(grep '^result ' "$log" | sed 's/.*steps_per_second=\([0-9.]*\).*/\1/')"
  one="$(awk 'NR % 2 == 1' <<<"$rates" | median)"
  two="$(awk 'NR % 2 == 0' <<<"$rates" | median)"
  speedup="$(awk -v a="$one" -v b="$two" 'BEGIN { printf "%.3f", b / a }')"
  echo "result services=2 rounds=$rounds one_service_steps_per_second=$one two_services_steps_per_second=$two speedup=$speedup steps_per_second=$two" >>"$log"
elif [ "$dataset" = dashboard ]; then
  # Browser pages (Playwright on the system Chromium, headless) on the run-detail page of one
  # live run, for its whole length: tests/Distill.Dashboard.Tests/DashboardBenchmark.cs.
  [ -x "${DISTILL_CHROMIUM:-/usr/bin/chromium}" ] || { echo "bench/run.sh: no Chromium at ${DISTILL_CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)" >&2; exit 1; }
  build tests/Distill.Dashboard.Tests
  option() { sed -E "s/.*--$1 ([0-9]+).*/\1/" <<<"$arguments"; }
  rm -rf "$repo/.cache/bench/$name.state"
  start_service Distill.KernelService "$base" --KernelService:DataRoot="$data"
  start_service Distill.DistillerService "$((base + 1))" --Distiller:DataRoot="$data" \
    --Distiller:DataFolder="$repo/.cache/bench/$name.state" --Distiller:KernelServices:0="http://127.0.0.1:$base"
  # The dashboard loads no TorchSharp: it runs on the host, its pid is the process measured.
  dashboard_port="$((base + 2))"
  port_listens "$dashboard_port" && { echo "bench/run.sh: port $dashboard_port is already in use; set DISTILL_BENCH_PORT" >&2; exit 1; }
  setsid dotnet dashboard/Distill.Dashboard/bin/Release/net10.0/Distill.Dashboard.dll --urls "http://127.0.0.1:$dashboard_port" \
    --Dashboard:Distiller="http://127.0.0.1:$((base + 1))" >>"$repo/.cache/bench/$name.services.log" 2>&1 </dev/null &
  pids+=($!)
  dashboard_pid="$(pgrep -s "${pids[-1]}" -x dotnet | head -n 1 || true)"
  [ -n "$dashboard_pid" ] || dashboard_pid="${pids[-1]}"
  for _ in $(seq 1 150); do port_listens "$dashboard_port" && break; sleep 0.2; done
  port_listens "$dashboard_port" || { echo "bench/run.sh: the dashboard did not start (log: .cache/bench/$name.services.log)" >&2; exit 1; }
  DISTILL_BENCHMARK=1 DISTILL_DASHBOARD_URL="http://127.0.0.1:$dashboard_port" DISTILL_DISTILLER_URL="http://127.0.0.1:$((base + 1))" \
    DISTILL_DASHBOARD_PID="$dashboard_pid" DISTILL_BENCH_RESULT="$log" DISTILL_BENCH_PAGES="$(option pages)" \
    DISTILL_BENCH_IPC="$(option ipc)" DISTILL_BENCH_STEPS="$(option steps)" DISTILL_BENCH_TARGET_BATCH="$(option target-batch)" \
    DISTILL_BENCH_EVAL_EVERY="$(option eval-every)" \
    dotnet test tests/Distill.Dashboard.Tests -c Release --no-build -nologo --filter "Category=Benchmark" \
    --logger "console;verbosity=normal" 2>&1 | tee "$repo/.cache/bench/$name.test.log"
elif [ "$dataset" = pytorch ]; then
  # bench/pytorch_kip_step.py (Debian's python3-torch with OpenBLAS) and the engine's step
  # (distill step-benchmark, which also runs the minimal TorchSharp loop) in alternating
  # rounds of the same invocation; each side's median of its per-round medians counts.
  # OPENBLAS_* variables set in the environment are left as they are.
  python="${DISTILL_PYTHON:-/usr/bin/python3}"
  missing=()
  "$python" -c 'import torch' 2>/dev/null || missing+=(python3-torch)
  dpkg -s libopenblas0-pthread >/dev/null 2>&1 || missing+=(libopenblas0-pthread)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt)"
    [ "$(id -u)" = 0 ] || { echo "bench/run.sh: ${missing[*]} missing and not root: apt-get install -y ${missing[*]}" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  support="$(sed -E 's/.*--support ([0-9]+).*/\1/' <<<"$arguments")"
  steps="$(sed -E 's/.*--steps ([0-9]+).*/\1/' <<<"$arguments")"
  rounds="$(sed -E 's/.*--rounds ([0-9]+).*/\1/' <<<"$arguments")"
  : >"$log"
  for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds: PyTorch"
    "$python" bench/pytorch_kip_step.py --support "$support" --steps "$steps" --threads 2 | sed 's/^result /pytorch_result /' | tee -a "$log"
    echo "round $round/$rounds: engine (and minimal TorchSharp loop)"
    "${cli[@]}" step-benchmark --support "$support" --steps "$steps" --threads 2 | grep '^result ' | sed 's/^result /engine_result /' | tee -a "$log"
  done
  median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  field() { grep "^$1_result " "$log" | sed -E "s/.* $2=([^ ]*).*/\1/"; }
  pytorch_ms="$(field pytorch median_ms | median)"
  engine_ms="$(field engine engine_ms | median)"
  minimal_ms="$(field engine minimal_ms | median)"
  blas="$(field pytorch blas | sort -u | paste -sd, -)"
  version="$(field pytorch pytorch | sort -u | paste -sd, -)"
  ratio="$(awk -v a="$engine_ms" -v b="$pytorch_ms" 'BEGIN { printf "%.3f", a / b }')"
  echo "result support=$support pytorch_ms=$pytorch_ms engine_ms=$engine_ms ratio=$ratio minimal_ms=$minimal_ms rounds=$rounds steps=$steps threads=2 pytorch=$version blas=$blas" >>"$log"
elif [ "$dataset" = transfer ]; then
  # The ten CIFAR-10 images of the cifar10-conv-1ipc case (its output is reused when present,
  # otherwise that case runs first), then ConvNet-3 networks trained on them: the kernel
  # protocol with the case's options (test_accuracy=), the same on ten random real images,
  # class-balanced (baseline=), and the standard protocol (standard=). DISTILL_TRANSFER_ARGS
  # adds options to every transfer (a scaled-down run, e.g. "--seeds 2 --max-test 2000"); the
  # result line names them as scaled= (spaces as commas).
  source_out="$repo/.cache/bench/cifar10-conv-1ipc"
  distilled="$source_out/distilled.safetensors"
  if [ ! -f "$distilled" ]; then
    echo "distilling first: bench/run.sh cifar10-conv-1ipc"
    "$0" cifar10-conv-1ipc
  fi
  # shellcheck disable=SC2206
  extra=(${DISTILL_TRANSFER_ARGS:-})
  started=$SECONDS
  # transfer KEY ARGS...: one transfer command, its log in $log.KEY; prints "mean std".
  transfer() {
    local key="$1"; shift
    # shellcheck disable=SC2086
    "${cli[@]}" transfer --data "$dir" "$@" $arguments "${extra[@]}" >"$log.$key" 2>&1 \
      || { cat "$log.$key" >&2; echo "bench/run.sh: the $key transfer failed (log: $log.$key)" >&2; exit 1; }
    grep -E '^(seed|result) ' "$log.$key" >&2
    grep '^result ' "$log.$key" | tail -n 1 | sed -E 's/.* test_accuracy=([0-9.]+) std=([0-9.]+).*/\1 \2/'
  }
  # The kernel protocol at width 256, the best held-out accuracy of the trials in docs/benchmarks.md.
  kernel_protocol=(--protocol kernel --width 256 --eval-every 10 --patience 20)
  out="$(transfer kernel --distilled "$distilled" "${kernel_protocol[@]}")"; read -r kernel kernel_std <<<"$out"
  out="$(transfer baseline --random-subset 10 "${kernel_protocol[@]}")"; read -r baseline baseline_std <<<"$out"
  out="$(transfer standard --distilled "$distilled" --protocol standard)"; read -r standard standard_std <<<"$out"
  scaled="$(tr ' ' ',' <<<"${DISTILL_TRANSFER_ARGS:-}")"
  echo "result test_accuracy=$kernel std=$kernel_std baseline=$baseline baseline_std=$baseline_std standard=$standard standard_std=$standard_std seconds=$((SECONDS - started))${scaled:+ scaled=$scaled}" | tee "$log"
elif [ "$dataset" = cifar10pool ] || [ "$dataset" = mnistpool ] || [ "$dataset" = cifar10own ]; then
  # The case's arguments are the whole kip command. For cifar10pool and mnistpool cases, KIP
  # on a fixed pool of random ConvNet3 networks (distill kip --feature-pool): the result
  # line's test_accuracy is the exact ConvNet3 NNGP's KRR accuracy of the distilled images
  # (on the fixed test subset it names), baseline= the same for the initial random real
  # images (NaN with --no-exact-baseline; baseline_held_out= still scores them), held_out_accuracy=
  # under the held-out networks, chosen_step= the step kept.
  # DISTILL_BENCH_STEPS shortens a trial run (the log says so); DISTILL_BENCH_RESUME=1
  # continues an interrupted one from its checkpoint instead of starting afresh.
  out="$repo/.cache/bench/$name"
  if [ "${DISTILL_BENCH_RESUME:-0}" = 1 ]; then arguments="$arguments --resume"; echo "resuming from $out"; else rm -rf "$out"; fi
  [ -n "${DISTILL_BENCH_STEPS:-}" ] && { arguments="$(sed -E "s/--steps [0-9]+/--steps $DISTILL_BENCH_STEPS/" <<<"$arguments")"; echo "shortened: --steps $DISTILL_BENCH_STEPS"; }
  # shellcheck disable=SC2086
  "${cli[@]}" kip --data "$dir" $arguments --out "$out" | tee "$log"
elif [ "$dataset" = none ]; then
  # shellcheck disable=SC2086
  "${cli[@]}" $arguments | tee "$log"
else
  out="$repo/.cache/bench/$name"
  rm -rf "$out"
  # shellcheck disable=SC2086
  "${cli[@]}" kip --data "$dir" $arguments --kernel ntk --depth 1 --target-batch 5000 \
    --eval-every 100 --checkpoint-every 100 --out "$out" | tee "$log"
fi

result="$(grep '^result ' "$log" | tail -n 1 | sed 's/^result //')"
[ -n "$result" ] || { echo "bench/run.sh: the run printed no result line (log: $log)" >&2; exit 1; }
line="case=$name $result"
if [ -n "$target" ]; then
  accuracy="$(sed -n 's/.*test_accuracy=\([0-9.]*\).*/\1/p' <<<"$result")"
  pass="$(awk -v a="$accuracy" -v t="$target" 'BEGIN { print (a >= t) ? "true" : "false" }')"
  line="$line target=$target pass=$pass"
fi
echo "$line"
