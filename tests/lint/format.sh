#!/usr/bin/env bash
# Every C++ file as clang-format (.clang-format) would write it; prints the first differences.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' 2>/dev/null || find . -name '*.[ch]pp' -not -path './build*')
clang-format --dry-run -Werror "${files[@]}"
