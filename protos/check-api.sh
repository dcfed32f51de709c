#!/usr/bin/env bash
# Lints the API and checks it for breaking changes with buf (npm's @bufbuild/buf):
# against the recorded baseline (protos/api-baseline.binpb, the API as released) and,
# on a branch other than main, against main's protos.
#
#   protos/check-api.sh                  lint + breaking checks
#   protos/check-api.sh --write-baseline record the current API as the baseline (an
#                                        intentional, reviewed API release only)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

buf="$repo/.cache/tools/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  mkdir -p .cache/tools
  npm install --prefix .cache/tools --no-audit --no-fund --loglevel=error @bufbuild/buf@1.75.0 >/dev/null
fi

# google/api/annotations.proto and http.proto come from the NuGet package the build uses.
nuget="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
google="$(ls -d "$nuget"/google.api.commonprotos/*/content/protos 2>/dev/null | sort -V | tail -n 1)"
[ -n "$google" ] || { echo "check-api: Google.Api.CommonProtos not restored; run dotnet restore first" >&2; exit 1; }

# workspace DIR SOURCE: a buf module of SOURCE's distill/ tree with Google's annotations beside it.
workspace() {
  mkdir -p "$1/google/api"
  cp "$google/google/api/annotations.proto" "$google/google/api/http.proto" "$1/google/api/"
  cp -r "$2/distill" "$2/buf.yaml" "$1/"
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
workspace "$tmp/current" protos

(cd "$tmp/current" && "$buf" lint)
echo "buf lint: ok"

if [ "${1:-}" = "--write-baseline" ]; then
  (cd "$tmp/current" && "$buf" build --exclude-source-info -o "$repo/protos/api-baseline.binpb")
  echo "baseline written: protos/api-baseline.binpb"
  exit 0
fi

(cd "$tmp/current" && "$buf" breaking --against "$repo/protos/api-baseline.binpb")
echo "buf breaking against the baseline: ok"

branch="$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo main)"
if [ "$branch" != main ] && git rev-parse --verify -q main >/dev/null; then
  mkdir -p "$tmp/main-src"
  git archive main protos | tar -x -C "$tmp/main-src"
  workspace "$tmp/main" "$tmp/main-src/protos"
  (cd "$tmp/main" && "$buf" build -o "$tmp/main.binpb")
  (cd "$tmp/current" && "$buf" breaking --against "$tmp/main.binpb")
  echo "buf breaking against main: ok"
fi
