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

# Build: compiler and libraries. Run: Debian's interpreter with uvicorn. Tests: pytest, curl,
# util-linux (setpriv, unshare), procps. Benchmarks bring their own in bench/.
PACKAGES=(
  g++ cmake make libboost1.81-dev libspdlog-dev libcli11-dev catch2
  python3 python3-uvicorn python3-fastapi python3-pytest
  curl procps util-linux systemd
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

# build DIR [cmake args...]
build() {
  local dir="$1"
  shift
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORRAL_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

# The whole suite twice: an optimised build, then one under AddressSanitizer and UBSan (Debug,
# which compiles faster; the Python workers are not instrumented, corral is).
run_tests() {
  build "$BUILD"
  ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"
  build "$BUILD-asan" -DCMAKE_BUILD_TYPE=Debug -DCORRAL_SANITIZE=address,undefined
  ctest --test-dir "$BUILD-asan" --output-on-failure -j "$JOBS"
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
    run_tests
    ;;
  build)
    install_packages
    build "$BUILD"
    ;;
  *)
    echo "usage: $0 example|test|build" >&2
    exit 2
    ;;
esac
