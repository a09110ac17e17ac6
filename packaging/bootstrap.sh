#!/usr/bin/env bash
# Sets up a Debian bookworm machine for corral and runs it. Needs root for apt-get (as a
# container or CI does); installs only what is missing, so a second run starts at once.
#
#   packaging/bootstrap.sh example   install, build, run the example app (2 workers)
#   packaging/bootstrap.sh test      install, build, run the whole test suite (ctest), then
#                                    again under ASan+UBSan
#   packaging/bootstrap.sh build     install and build only
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# A fresh machine has no locale but C and C.UTF-8, while a login often brings the client's
# (LANG=en_US.UTF-8 over ssh): apt's perl and bash would warn about it at every step. Nothing
# here needs a locale of its own, and C.UTF-8 is always there.
if [[ -n "$(locale 2>&1 >/dev/null)" ]]; then
  export LC_ALL=C.UTF-8
fi
BUILD="${CORRAL_BUILD_DIR:-$ROOT/build}"
JOBS="$(nproc 2>/dev/null || echo 2)"

# Shipping (packaging/cmake/packaging.cmake, tests/integration/test_packaging.py): help2man for
# corral(1), wheel and pip for the wheel, venv and debootstrap to install it and the .deb fresh.
# Build: compiler and libraries. Run: Debian's interpreter with uvicorn. Tests: pytest, curl,
# util-linux (setpriv, unshare), procps, iproute2 (`ip`, to bring up a new network namespace's
# loopback), git (test_reload: a branch checkout); for packaging/kubernetes/: PyYAML, libseccomp's Python
# binding and Node.js (npm: see install_npm_packages). Benchmarks bring their own in bench/.
PACKAGES=(
  g++ cmake make libboost1.81-dev libspdlog-dev libcli11-dev libtomlplusplus-dev catch2
  python3 python3-uvicorn python3-fastapi python3-pytest
  curl procps util-linux iproute2 git systemd
  python3-yaml python3-seccomp nodejs clang-format clang-tidy clang-14 libclang-rt-14-dev
  help2man python3-wheel python3-pip python3-venv debootstrap
  python3-prometheus-client  # tests/integration/test_metrics.py: the exposition parser
)

install_packages() {
  local missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "bootstrap: missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
    exit 2
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The npm packages that validate packaging/kubernetes/ offline (tests/integration/
# test_kubernetes.py), at the versions of tests/integration/kubernetes_schema/package-lock.json,
# into $BUILD/npm; again only when that lock file changed. Debian's nodejs comes without npm,
# which is its own package there (but part of other builds of nodejs): installed if missing.
NPM_DIR="$BUILD/npm"
install_npm_packages() {
  local lock="$ROOT/tests/integration/kubernetes_schema/package-lock.json"
  cmp -s "$lock" "$NPM_DIR/installed.lock" && return 0
  if ! command -v npm >/dev/null; then
    echo "bootstrap: installing npm" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  mkdir -p "$NPM_DIR"
  cp "$ROOT/tests/integration/kubernetes_schema/package.json" "$lock" "$NPM_DIR/"
  (cd "$NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$NPM_DIR/installed.lock"
}

# build DIR [cmake args...]
build() {
  local dir="$1"
  shift
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORRAL_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

# Two builds: an optimised one (g++) runs the unit tests, the integration tests with Debian's
# uvicorn, the lint and the soak; then one under AddressSanitizer and UBSan (clang, Debug, which
# compiles faster) runs the unit tests, the integration tests with a current uvicorn (Debian's
# when none is found: tests/CMakeLists.txt) and the fuzzers' corpora, and fuzzes for 15 s per
# target. The Python workers are not instrumented; corral is.
#
# The first build's tests mostly wait (for workers to boot, for timers, for signals) while
# clang-tidy and the second build need the CPUs: they run side by side, and the side's output
# follows the tests'. Every test's deadline is generous enough for a busy machine.
run_tests() {
  build "$BUILD"
  export CORRAL_NPM_DIR="$NPM_DIR"  # for the ASan build's run too
  local side_log="$BUILD/side.log" side_status=0 status=0
  (
    "$ROOT/tests/lint/tidy.sh" "$BUILD"
    build "$BUILD-sanitize" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
      -DCORRAL_SANITIZE=address,undefined -DCORRAL_FUZZ=ON
  ) >"$side_log" 2>&1 &
  local side=$!
  ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" -LE '^integration-current$' || status=$?
  wait "$side" || side_status=$?
  cat "$side_log"
  [[ $status -eq 0 && $side_status -eq 0 ]] || exit 1
  ctest --test-dir "$BUILD-sanitize" --output-on-failure -j "$JOBS"
  "$ROOT/tests/fuzz/run.sh" "$BUILD-sanitize" "${CORRAL_FUZZ_SECONDS:-15}"
}

case "${1:-}" in
  example)
    install_packages
    build "$BUILD"
    cd "$ROOT"
    exec "$BUILD/corral" --workers 2 --bind 127.0.0.1:8000 --admin-bind 127.0.0.1:8081 \
      --python /usr/bin/python3 examples.app:app
    ;;
  test)
    install_packages
    install_npm_packages
    run_tests
    ;;
  build)
    install_packages
    install_npm_packages
    build "$BUILD"
    ;;
  *)
    echo "usage: $0 example|test|build" >&2
    exit 2
    ;;
esac
