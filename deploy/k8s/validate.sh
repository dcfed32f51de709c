#!/usr/bin/env bash
# Renders every kustomization of deploy/k8s (overlays cpu and gpu, examples/gpu-postgres)
# with `kubectl kustomize` and validates each rendered object against the Kubernetes schemas
# (npm's kubernetes-models). Offline after the first run: the tools are kept in .cache.
#
#   deploy/k8s/validate.sh            render + validate; prints a count, fails on any error
#
# kubectl: the one on PATH when it has `kustomize`, else Debian's kubernetes-client unpacked
# into .cache/kubectl (apt-get download; nothing is installed system-wide). Node.js and npm
# come from apt when missing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="$repo/.cache"
here="$repo/deploy/k8s"
mkdir -p "$cache"

kubectl_bin=""
if [ -n "${KUBECTL:-}" ]; then
  kubectl_bin="$KUBECTL"
elif [ -x "$cache/kubectl/usr/bin/kubectl" ]; then
  kubectl_bin="$cache/kubectl/usr/bin/kubectl"
elif command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  kubectl_bin="$(command -v kubectl)"
else
  echo "validate: fetching Debian's kubernetes-client into .cache/kubectl" >&2
  tmp="$(mktemp -d)"
  (cd "$tmp" && chmod 777 . && apt-get download -qq kubernetes-client >&2) || {
    apt-get update -qq >&2
    (cd "$tmp" && apt-get download -qq kubernetes-client >&2)
  }
  rm -rf "$cache/kubectl" && mkdir -p "$cache/kubectl"
  dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$cache/kubectl"
  rm -rf "$tmp"
  kubectl_bin="$cache/kubectl/usr/bin/kubectl"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "validate: installing nodejs and npm from apt" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
modules="$cache/k8s-validate"
if [ ! -d "$modules/node_modules/kubernetes-models" ] || [ ! -d "$modules/node_modules/js-yaml" ]; then
  echo "validate: installing kubernetes-models into .cache/k8s-validate" >&2
  mkdir -p "$modules"
  [ -f "$modules/package.json" ] || echo '{"private":true}' > "$modules/package.json"
  # 4.x: the last line that runs on Debian 12's Node.js 18 (5.x needs Node 22).
  (cd "$modules" && npm install --no-audit --no-fund --silent kubernetes-models@4.5.1 js-yaml@4.1.0 >&2)
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$kubectl_bin" version --client 2>/dev/null | head -1 >&2 || true
files=()
for k in overlays/cpu overlays/gpu examples/gpu-postgres; do
  f="$out/${k//\//_}.yaml"
  # Newer kustomize warns (on stderr) about the v2-compatible fields these files use.
  if ! "$kubectl_bin" kustomize "$here/$k" > "$f" 2> "$out/err"; then
    cat "$out/err" >&2
    echo "validate: kubectl kustomize $k failed" >&2
    exit 1
  fi
  echo "rendered $k: $(grep -c '^kind:' "$f") objects" >&2
  files+=("$(basename "$f")")
done
cd "$out"
K8S_VALIDATE_MODULES="$modules/node_modules" node "$here/validate.mjs" "${files[@]}"
