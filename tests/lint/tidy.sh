#!/usr/bin/env bash
# clang-tidy (.clang-tidy) over corral's own sources, with the compile commands of BUILD_DIR;
# any finding fails. Runs one clang-tidy per core.
#   tests/lint/tidy.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build="${1:?usage: tidy.sh BUILD_DIR}"
[[ -f "$build/compile_commands.json" ]] || { echo "tidy: no $build/compile_commands.json" >&2; exit 2; }
mapfile -t files < <(ls admin/*.cpp config/*.cpp config/host/*.cpp process/*.cpp reload/*.cpp \
  runtime/*.cpp signals/*.cpp supervisor/*.cpp util/*.cpp)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc 2>/dev/null || echo 2)" -n 4 clang-tidy -p "$build" --quiet >"$log" 2>&1 || true
if grep -q "warning:\|error:" "$log"; then
  grep -A3 "warning:\|error:" "$log" >&2
  echo "tidy: $(grep -c "warning:\|error:" "$log") findings" >&2
  exit 1
fi
echo "tidy: ${#files[@]} files clean"
