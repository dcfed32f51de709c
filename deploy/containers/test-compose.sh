#!/usr/bin/env bash
# The container end-to-end test: builds the kernel service, distiller and dashboard images with podman,
# brings docker-compose.yml up (two kernel replicas), distills MNIST to 10 images through the
# containers, kills the kernel containers mid-run (one, then the other: the run carries on,
# then pauses), starts them again, and checks that the run finishes at >= 85% test accuracy.
# Always tears everything down: containers, the project's network and volume, and the images
# it built with their intermediate stages (--keep-images keeps the three tagged ones; the
# imported base image always stays), so that repeated runs do not fill the disk.
#
#   deploy/containers/test-compose.sh [--keep-images]
#
# Installs podman, runc and podman-compose from apt when missing. podman runs with its own
# containers.conf (CONTAINERS_CONF): runtime runc (crun refuses hybrid cgroups) and no
# default ulimits (the default nofile/nproc limits cannot be set on such hosts).
# No registry is reachable here, so the images are built with
#   BASE_IMAGE=localhost/distill-test/debian13  (imported from the sandbox's Debian 13 userland)
#   PUBLISH=prebuilt                            (published on this host by publish.sh)
# which are build arguments of the same Dockerfiles users build with the defaults.
# Traffic: the compose project's own network, and the distiller's port on 127.0.0.1 only.
#
# Output: "compose-e2e accuracy=A steps_per_second=S seconds=T paused=yes" on success.
# Environment: DISTILL_DATA (folder with mnist/, default ../shared/datasets),
# DISTILL_E2E_PORT (host port for the distiller, default 15052), DISTILL_E2E_STEPS (300),
# DISTILL_E2E_FAULTS (1; 0 runs undisturbed, for bench/run.sh compose-e2e's steps/s).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
here="$repo/deploy/containers"
data="$(cd "${DISTILL_DATA:-$repo/../shared/datasets}" && pwd)"
port="${DISTILL_E2E_PORT:-15052}"
steps="${DISTILL_E2E_STEPS:-300}"
faults="${DISTILL_E2E_FAULTS:-1}"
project=distill-e2e
keep_images=0
case "${1:-}" in
  --keep-images) keep_images=1 ;;
  "") ;;
  *) echo "usage: deploy/containers/test-compose.sh [--keep-images]" >&2; exit 2 ;;
esac
base_image=localhost/distill-test/debian13:latest
work="$repo/.cache/compose-e2e"
mkdir -p "$work"
log() { echo "test-compose: $*" >&2; }

[ -e "$data/mnist/train-images-idx3-ubyte.gz" ] || [ -e "$data/mnist/train-images-idx3-ubyte" ] \
  || { log "MNIST not found under $data/mnist"; exit 1; }

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v podman-compose >/dev/null || missing+=(podman-compose)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from apt"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

mkdir -p "$here/config"
cat > "$here/config/containers.conf" <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$here/config/containers.conf"

compose=(podman-compose -p "$project" -f "$repo/docker-compose.yml")
export DISTILL_DATA="$data" DISTILL_PORT="$port" DISTILL_BIND=127.0.0.1 DISTILL_KERNEL_REPLICAS=2 \
  DISTILL_BASE_IMAGE="$base_image" DISTILL_PUBLISH=prebuilt DISTILL_IMAGE_PREFIX=localhost/distill-e2e \
  DISTILL_IMAGE_TAG=test DISTILL_KERNEL_DEVICE=cpu DISTILL_API_KEY=""
images=(kernel-service distiller-service dashboard)
# Every image this script builds, the build's intermediate stages included, carries this label.
build_label=io.distill.test-compose=1
# remove_images [--dangling]: this script's images (or only those no tag names any more).
remove_images() {
  local all=-a
  [ "${1:-}" = --dangling ] && all=
  podman image prune -f $all --filter "label=$build_label" >/dev/null 2>&1 || true
}
# The project's containers, network and volume; also run before starting, since a run that was
# killed (its machine stopped, say) never reached its teardown and left the names taken.
remove_containers() {
  "${compose[@]}" down -v >/dev/null 2>&1 || true
  podman rm -f $(podman ps -aq --filter "label=io.podman.compose.project=$project") >/dev/null 2>&1 || true
  podman rm -f "$project-dashboard" >/dev/null 2>&1 || true
  podman network rm -f "${project}_default" >/dev/null 2>&1 || true
  podman volume rm -f "${project}_distiller-state" >/dev/null 2>&1 || true
}
submit_pid=""
teardown() {
  local rc=$?
  [ -z "$submit_pid" ] || kill "$submit_pid" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    log "failed (rc=$rc); container logs follow"
    for c in $(podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}' 2>/dev/null); do
      echo "---- $c" >&2; podman logs --tail 30 "$c" >&2 2>&1 || true
    done
  fi
  log "tearing down"
  remove_containers
  if [ "$keep_images" = 1 ]; then remove_images --dangling; else remove_images; fi
  exit "$rc"
}
trap teardown EXIT

# 1. The base: Debian 13 from the sandbox userland (the same one TorchSharp runs in on the host).
if ! podman image exists "$base_image"; then
  deploy/sandbox/sandbox.sh --setup
  rootfs="${DISTILL_SANDBOX_ROOTFS:-$repo/.sandbox/rootfs}"
  log "importing $rootfs as $base_image"
  tar -C "$rootfs" --exclude=./proc --exclude=./sys --exclude=./dev -c . | podman import - "$base_image" >/dev/null
fi

# 2. Publish on the host (what the SDK stage does inside the image), then build the images,
# over any left by an earlier run. A build writes each image twice over (podman's temporary folder, then its store): refuse
# plainly, naming the folder, rather than fail half-way with ENOSPC.
remove_images
need_gib=6
for dir in "$(podman info --format '{{.Store.GraphRoot}}')" "${TMPDIR:-/var/tmp}"; do
  mkdir -p "$dir"
  free_gib=$(df -P -BG "$dir" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
  [ "$free_gib" -ge "$need_gib" ] \
    || { log "building the images needs ${need_gib} GiB free in $dir; it has ${free_gib} GiB (podman image prune frees untagged images)"; exit 1; }
done
t0=$(date +%s)
"$here/publish.sh" "${images[@]}"
for image in "${images[@]}"; do
  log "building $DISTILL_IMAGE_PREFIX/$image:$DISTILL_IMAGE_TAG"
  # docker format: keeps the Dockerfile's HEALTHCHECK (OCI images have no health checks).
  podman build -q --format docker --label "$build_label" -f "deploy/docker/$image.Dockerfile" \
    --build-arg BASE_IMAGE="$base_image" --build-arg PUBLISH=prebuilt \
    -t "$DISTILL_IMAGE_PREFIX/$image:$DISTILL_IMAGE_TAG" . >/dev/null
  podman image inspect --format "{{.Size}}" "$DISTILL_IMAGE_PREFIX/$image:$DISTILL_IMAGE_TAG" \
    | awk -v n="$image" '{ printf "image %s: %.0f MB\n", n, $1 / 1e6 }' >&2
done
log "images built in $(( $(date +%s) - t0 ))s"

# 3. Up, with two kernel replicas; wait until both kernels and the distiller are healthy.
remove_containers
"${compose[@]}" up -d --no-build >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; exit 1; }
kernels=($(podman ps --filter "label=io.podman.compose.project=$project" --filter "label=com.docker.compose.service=kernel" --format '{{.Names}}' | sort))
[ ${#kernels[@]} -eq 2 ] || { log "expected 2 kernel containers, got ${#kernels[@]}: ${kernels[*]}"; exit 1; }
distiller=$(podman ps --filter "label=io.podman.compose.project=$project" --filter "label=com.docker.compose.service=distiller" --format '{{.Names}}')
wait_healthy() {
  local c
  for _ in $(seq 1 90); do
    local all=1
    for c in "$@"; do podman healthcheck run "$c" >/dev/null 2>&1 || all=0; done
    [ "$all" = 1 ] && return 0
    sleep 1
  done
  log "not healthy: $*"; return 1
}
wait_healthy "${kernels[@]}" "$distiller"
log "up: ${kernels[*]} $distiller (healthy)"

# 3b. The dashboard image beside them, on the project's network: its pages and scripts are served.
dashboard_port="${DISTILL_E2E_DASHBOARD_PORT:-15050}"
podman run -d --name "$project-dashboard" --network "${project}_default" -p "127.0.0.1:$dashboard_port:8080" \
  -e Dashboard__Distiller=http://distiller:5052 "$DISTILL_IMAGE_PREFIX/dashboard:$DISTILL_IMAGE_TAG" >/dev/null
for path in / /_framework/blazor.web.js; do
  for attempt in $(seq 1 60); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$dashboard_port$path")" = 200 ] && break
    [ "$attempt" = 60 ] && { podman logs --tail 30 "$project-dashboard" >&2; log "dashboard: $path did not answer 200"; exit 1; }
    sleep 1
  done
done
log "dashboard image serves its pages"

# 4. Distill MNIST to 10 images through the containers.
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build tools/Distill.Cli -c Release -nologo -v quiet >/dev/null
export DISTILL_SANDBOX_BIND="$data"
submit_log="$work/submit.log"
deploy/sandbox/sandbox.sh dotnet tools/Distill.Cli/bin/Release/net10.0/distill.dll submit \
  --distiller "http://127.0.0.1:$port" --dataset mnist --ipc 1 --steps "$steps" --target-batch 5000 \
  >"$submit_log" 2>&1 &
submit_pid=$!

wait_for() {  # wait_for PATTERN SECONDS
  for _ in $(seq 1 "$2"); do
    grep -qE "$1" "$submit_log" && return 0
    kill -0 "$submit_pid" 2>/dev/null || { grep -qE "$1" "$submit_log" && return 0; cat "$submit_log" >&2; log "submit ended before /$1/"; return 1; }
    sleep 1
  done
  cat "$submit_log" >&2; log "timed out waiting for /$1/"; return 1
}
steps_seen() { grep -oE '^step [0-9]+/' "$submit_log" | tail -1 | grep -oE '[0-9]+' || echo 0; }

# 5. Mid-run: kill one kernel container (the run carries on over the other), then the other
# (no kernel service left: the run pauses), then start both again (it resumes and finishes).
paused=no
if [ "$faults" = 1 ]; then
wait_for "^step [0-9]+/$steps" 600
first=$(steps_seen)
log "killing ${kernels[0]} at step ~$first"
seen=$(grep -c '^step ' "$submit_log")
podman kill "${kernels[0]}" >/dev/null
# The run carries on over the other replica: a new progress line (every steps/10) arrives.
for _ in $(seq 1 300); do
  [ "$(grep -c '^step ' "$submit_log")" -gt "$seen" ] && break
  grep -q '^result ' "$submit_log" && break
  sleep 1
done
[ "$(grep -c '^step ' "$submit_log")" -gt "$seen" ] || { cat "$submit_log" >&2; log "no progress after killing ${kernels[0]}"; exit 1; }
log "the run carried on over ${kernels[1]} (step ~$(steps_seen))"
log "killing ${kernels[1]}"
podman kill "${kernels[1]}" >/dev/null
wait_for "state Paused" 300
log "run paused; starting the kernel containers again"
podman start "${kernels[@]}" >/dev/null
paused=yes
fi
wait_for "^result " 1200
wait "$submit_pid" || true
submit_pid=""
cat "$submit_log" >&2

result=$(grep '^result ' "$submit_log")
state=$(sed -E 's/.* state=([A-Za-z]+).*/\1/' <<<"$result")
accuracy=$(sed -E 's/.* test_accuracy=([0-9.]+).*/\1/' <<<"$result")
seconds=$(sed -E 's/.* seconds=([0-9.]+).*/\1/' <<<"$result")
sps=$(sed -E 's/.* steps_per_second=([0-9.]+).*/\1/' <<<"$result")
[ "$state" = Succeeded ] || { log "run ended $state"; exit 1; }
awk -v a="$accuracy" 'BEGIN { exit !(a >= 0.85) }' || { log "accuracy $accuracy < 0.85"; exit 1; }
echo "compose-e2e accuracy=$accuracy steps_per_second=$sps seconds=$seconds paused=$paused"
