#!/usr/bin/env bash
# Runs the Node.js distiller client check: tests/node/run-check.sh ADDRESS DATASET [GOOGLE_PROTOS_DIR]
# e.g. tests/node/run-check.sh 127.0.0.1:5052 tiny
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "run-check.sh: node (20 or later) is not installed" >&2; exit 1; }
[ -d node_modules/@grpc/grpc-js ] && [ -d node_modules/@grpc/proto-loader ] || npm ci --no-audit --no-fund
exec node distiller_client_check.mjs "$@"
