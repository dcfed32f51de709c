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

source deploy/local-system.sh
access_key="browser-test-$RANDOM$RANDOM"
trap 'system_stop "$work"' EXIT INT TERM
# An access key makes the tests sign in.
system_start "$work" "$data" "$kernel_port" "$distiller_port" "$dashboard_port" --Dashboard:AccessKey="$access_key"

status=0
DISTILL_BROWSER_TESTS=1 DISTILL_DASHBOARD_URL="http://127.0.0.1:$dashboard_port" DISTILL_SCREENSHOTS="$repo/.cache/screenshots" \
  DISTILL_DASHBOARD_ACCESS_KEY="$access_key" DISTILL_RESTART_DISTILLER="$work/restart-distiller" \
  dotnet test tests/Distill.Dashboard.Tests -c Release --no-build -nologo --filter "Category=Browser" \
  --logger "console;verbosity=normal" || status=$?
echo "Screenshots: $repo/.cache/screenshots"; ls "$repo/.cache/screenshots" || true
[ "$status" = 0 ] || { echo "--- dashboard log"; tail -n 60 "$work/dashboard.log"; echo "--- distiller log"; tail -n 30 "$work/distiller.log"; }
exit "$status"
