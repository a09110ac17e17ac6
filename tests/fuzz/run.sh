#!/usr/bin/env bash
# Fuzzes every target of a -DCORRAL_FUZZ=ON build for a bounded time, one per core, starting
# from the seed corpus in tests/fuzz/corpus/NAME (new inputs go to BUILD/fuzz/corpus/NAME, kept
# between runs). A crash fails the run; its input is saved as BUILD/fuzz/crash-NAME-*, and
# libFuzzer prints it (base64) in BUILD/fuzz/NAME.log, shown below.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]   (default 30 s per target)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build="$(cd "${1:?usage: run.sh BUILD_DIR [SECONDS]}" && pwd)"
seconds="${2:-30}"
out="$build/fuzz"
mkdir -p "$out"
fuzz_one() {
  local name="$1" build="$2" seconds="$3" out="$4"
  mkdir -p "$out/corpus/$name"
  if "$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$out/crash-$name-" "$out/corpus/$name" "tests/fuzz/corpus/$name" \
      >"$out/$name.log" 2>&1; then
    echo "fuzz $name: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$out/$name.log")"
  else
    echo "fuzz $name: FAILED" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written|Base64" "$out/$name.log" >&2 || true
    return 1
  fi
}
export -f fuzz_one
names=$(ls tests/fuzz/fuzz_*.cpp | sed 's#.*/fuzz_\(.*\)\.cpp#\1#')
printf '%s\n' $names |
  xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} bash -c 'fuzz_one "$@"' _ {} "$build" "$seconds" "$out"
