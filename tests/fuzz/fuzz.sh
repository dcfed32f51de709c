#!/usr/bin/env bash
# AFL++ over the file readers, through SharpFuzz: builds tests/fuzz/Distill.Fuzz.Readers,
# instruments Distill.Core.dll in a copy of its output (.cache/fuzz/readers-app), and runs
# afl-fuzz on each reader for SECONDS from its seed corpus (tests/fuzz/corpus/READER).
# Prints one line per reader: reader=X execs=N crashes=M hangs=H. Crashing and hanging
# inputs are left in .cache/fuzz/READER/default/{crashes,hangs}; replay one with
#   dotnet .cache/fuzz/readers-app/Distill.Fuzz.Readers.dll run READER FILE
# and, once fixed, commit it under tests/fuzz/regressions/READER/.
#
#   tests/fuzz/fuzz.sh READER|all SECONDS
#
# Installs afl++ (apt) and the sharpfuzz tool (tests/fuzz/dotnet-tools.json) when missing.
# The readers load no TorchSharp, so this runs on the host, outside the sandbox.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ $# -eq 2 ] || { echo "usage: tests/fuzz/fuzz.sh READER|all SECONDS" >&2; exit 2; }
which="$1"; seconds="$2"
cache="$repo/.cache/fuzz"; app="$cache/readers-app"
mkdir -p "$cache"

if ! command -v afl-fuzz >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "fuzz.sh: afl-fuzz missing and not root: apt-get install -y afl++" >&2; exit 1; }
  echo "installing afl++ (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++ >/dev/null
fi
(cd "$repo/tests/fuzz" && dotnet tool restore >/dev/null)

dotnet build "$repo/tests/fuzz/Distill.Fuzz.Readers" -c Release -nologo -v quiet >"$cache/build.log" 2>&1 \
  || { cat "$cache/build.log" >&2; echo "fuzz.sh: building the fuzz targets failed" >&2; exit 1; }
# A copy to instrument, with this platform's native libraries only, libtorch's left out (1.3 GB):
# the readers never load it.
rm -rf "$app"; mkdir -p "$app"
tar -C "$repo/tests/fuzz/Distill.Fuzz.Readers/bin/Release/net10.0" --exclude='libtorch*' --exclude='libc10*' --exclude='libLibTorchSharp*' \
    --exclude='./runtimes/win-*' --exclude='./runtimes/osx*' --exclude='./runtimes/*arm*' --exclude='./runtimes/*musl*' -cf - . \
  | tar -C "$app" -xf -
# Only the engine's assembly carries AFL's edge counters: coverage of the readers, not of the runtime.
(cd "$repo/tests/fuzz" && dotnet sharpfuzz "$app/Distill.Core.dll")

readers=("$which")
[ "$which" = all ] && mapfile -t readers < <(dotnet "$app/Distill.Fuzz.Readers.dll" --list)

# dotnet is not an AFL-compiled binary (SKIP_BIN_CHECK); the host may run other work on its
# cores (NO_AFFINITY) and its core pattern or CPU governor are not ours to change.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
status=0
for reader in "${readers[@]}"; do
  [ -d "$repo/tests/fuzz/corpus/$reader" ] || { echo "fuzz.sh: no corpus for reader '$reader'" >&2; exit 2; }
  out="$cache/$reader"
  rm -rf "$out"
  # -t: a .NET input that runs past 5 s is a hang; -m none: the runtime reserves far more
  # address space than it uses.
  afl-fuzz -i "$repo/tests/fuzz/corpus/$reader" -o "$out" -V "$seconds" -t 5000 -m none \
    -- dotnet "$app/Distill.Fuzz.Readers.dll" "$reader" >"$out.log" 2>&1 \
    || { tail -n 30 "$out.log" >&2; echo "fuzz.sh: afl-fuzz failed on $reader (log: $out.log)" >&2; exit 1; }
  field() { sed -n "s/^$1 *: *//p" "$out/default/fuzzer_stats"; }
  crashes="$(field saved_crashes)"; hangs="$(field saved_hangs)"
  echo "reader=$reader execs=$(field execs_done) crashes=$crashes hangs=$hangs seconds=$seconds"
  [ "$crashes" = 0 ] && [ "$hangs" = 0 ] || status=1
done
exit "$status"
