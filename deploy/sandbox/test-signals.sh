#!/usr/bin/env bash
# The sandbox hands a stop on to the command inside it: INT, TERM or HUP sent to the wrapper's
# process group (a terminal's Ctrl+C, a supervisor) reach the command as TERM, the command can
# finish its work (distill kip writes a checkpoint), and the wrapper exits with its status.
# A SIGKILL of the wrapper leaves nothing running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# Through bwrap even on a host whose libstdc++ would let commands run directly.
export DISTILL_FORCE_SANDBOX=1

dir="$(mktemp -d)"
trap '[ -z "${wrapper:-}" ] || kill -KILL "$wrapper" 2>/dev/null || true; rm -rf "$dir"' EXIT
mkfifo "$dir/ready" "$dir/idle"
# Held open for reading and writing, so that a command which never starts fails the read's
# timeout instead of blocking the open.
exec 3<>"$dir/ready"
# Tells the fifo its pid and waits in a read that nothing answers (no child process that a
# KILL could orphan); on TERM it writes a marker and exits 7.
command='trap "echo saved > $0/saved; exit 7" TERM; echo $$ > $0/ready; read -r _ <> $0/idle'

# Job control: each wrapper gets a process group of its own, and INT is not ignored in it,
# as for a command started from a terminal.
set -m
start() {
  rm -f "$dir/saved"
  deploy/sandbox/sandbox.sh bash -c "$command" "$dir" &
  wrapper=$!
  read -r -t 120 inner <&3 || { echo "sandbox: the command did not start within 120 s" >&2; exit 1; }
}

# stopped PID SECONDS: whether the process has exited within that time.
stopped() {
  for _ in $(seq 1 $(($2 * 10))); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

tested=()
for signal in INT TERM HUP; do
  # A signal ignored when this script started (nohup, a background job) stays ignored in the
  # wrapper too, and cannot reach the command; there is nothing to test.
  if trap -p "$signal" | grep -q "^trap -- '' "; then
    echo "sandbox signals: $signal is ignored where this test started; not tested"
    continue
  fi
  start
  kill "-$signal" -- "-$wrapper"
  stopped "$wrapper" 60 || { echo "sandbox: $signal did not stop the command within 60 s" >&2; exit 1; }
  status=0
  wait "$wrapper" || status=$?
  if [ "$status" != 7 ] || [ ! -e "$dir/saved" ]; then
    echo "sandbox: after $signal the command exited with $status and saved $([ -e "$dir/saved" ] && echo something || echo nothing)" >&2
    exit 1
  fi
  tested+=("$signal")
done

start
disown "$wrapper"  # no job notice for the kill
kill -KILL "$wrapper"
stopped "$inner" 10 || { echo "sandbox: the command (pid $inner) outlived a killed wrapper" >&2; exit 1; }
echo "sandbox signals: passed on to the command: ${tested[*]}; KILL leaves nothing running"
