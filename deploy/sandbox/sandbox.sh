#!/usr/bin/env bash
# Runs a command where TorchSharp's native library can load.
#
# TorchSharp 0.107 needs libstdc++ with GLIBCXX_3.4.32 (GCC 13+). On a host that has it
# the command runs directly; otherwise (Debian 12) it runs inside a Debian 13 userland
# through bubblewrap, with the host's .NET, NuGet cache and the repository's parent
# folder mounted at their own paths, so build outputs and ../shared resolve unchanged.
#
#   deploy/sandbox/sandbox.sh [--setup] COMMAND [ARGS...]
#   --setup   only make sure the sandbox exists (installs apt packages, debootstraps)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
rootfs="${DISTILL_SANDBOX_ROOTFS:-$repo/.sandbox/rootfs}"

host_has_new_libstdcxx() {
  local lib
  for lib in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /usr/lib/libstdc++.so.6; do
    [ -e "$lib" ] && grep -qa GLIBCXX_3.4.32 "$lib" && return 0
  done
  return 1
}

ensure_rootfs() {
  if ! command -v bwrap >/dev/null || ! command -v debootstrap >/dev/null; then
    echo "sandbox: installing bubblewrap and debootstrap" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap debootstrap >&2
  fi
  if [ ! -x "$rootfs/usr/bin/env" ]; then
    echo "sandbox: creating a Debian 13 userland in $rootfs (about a minute, once)" >&2
    rm -rf "$rootfs.tmp"
    mkdir -p "$(dirname "$rootfs")"
    debootstrap --variant=minbase \
      --include=libicu76,libssl3t64,ca-certificates,zlib1g,libgomp1 \
      trixie "$rootfs.tmp" http://deb.debian.org/debian >&2
    mv "$rootfs.tmp" "$rootfs"
  fi
}

setup_only=0
if [ "${1:-}" = "--setup" ]; then setup_only=1; shift; fi

if host_has_new_libstdcxx && [ -z "${DISTILL_FORCE_SANDBOX:-}" ]; then
  [ "$setup_only" = 1 ] && exit 0
  exec "$@"
fi

ensure_rootfs
[ "$setup_only" = 1 ] && exit 0

dotnet_root="$(dirname "$(readlink -f "$(command -v dotnet)")")"
nuget="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
mkdir -p "$nuget"
parent="$(dirname "$repo")"

binds=(--bind "$rootfs" / --ro-bind "$dotnet_root" "$dotnet_root"
       --bind "$nuget" "$nuget" --bind "$parent" "$parent"
       --ro-bind /etc/resolv.conf /etc/resolv.conf
       --proc /proc --dev /dev --bind /tmp /tmp)
# Extra data folders (benchmarks) live outside the repository's parent.
for extra in ${DISTILL_SANDBOX_BIND:-}; do
  [ -e "$extra" ] && binds+=(--bind "$extra" "$extra")
done

# bwrap passes no signal on, and when it dies --die-with-parent kills the command outright:
# a stopped `distill kip` would lose the steps since its last checkpoint. So bwrap runs in a
# session of its own (a terminal's Ctrl+C reaches only this script), INT, TERM and HUP reach
# the command as TERM (a background command starts with INT ignored), and this script exits
# with the command's status once it has finished.
setsid bwrap "${binds[@]}" --die-with-parent \
  --setenv HOME "$HOME" --setenv PATH "$dotnet_root:/usr/local/bin:/usr/bin:/bin" \
  --setenv DOTNET_ROOT "$dotnet_root" --setenv DOTNET_CLI_TELEMETRY_OPTOUT 1 \
  --setenv DOTNET_NOLOGO 1 --setenv NUGET_PACKAGES "$nuget" \
  --chdir "$PWD" "$@" <&0 &
sandbox=$!
trap "pkill -TERM -P $sandbox || true" INT TERM HUP
# wait returns early, with the signal's status, when a signal is trapped: wait on until bwrap
# has exited, then once more for its own status (bash keeps an exited child's).
while kill -0 "$sandbox" 2>/dev/null; do
  wait "$sandbox" || true
done
status=0
wait "$sandbox" || status=$?
exit "$status"
