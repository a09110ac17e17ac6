#!/usr/bin/env bash
# Benchmarks corral against gunicorn + UvicornWorker and `uvicorn --workers`, side by side in
# one run, on bench/app.py. Installs what it needs (Debian packages; run as root), builds corral
# if build/corral is missing, then runs
#   bench/run.sh            bench/bench.py: throughput, latency, startup, memory, SIGTERM
#                           (bench/results/latest.md)
#   bench/run.sh lifecycle  bench/lifecycle.py: requests lost during reload, scaling, recycling
#                           and SIGTERM (bench/results/lifecycle.md)
#   bench/run.sh reload     bench/reload.py: corral --reload and uvicorn --reload side by side,
#                           edit to new response and idle wakeups (bench/results/reload.md)
#   bench/run.sh all        bench.py and lifecycle.py, one after the other
# Each prints markdown tables. Settings: BENCH_* environment variables, see bench/README.md.
set -euo pipefail

case ${1:-} in
  "") SCRIPTS=(bench.py) ;;
  lifecycle) SCRIPTS=(lifecycle.py) ;;
  reload) SCRIPTS=(reload.py) ;;
  all) SCRIPTS=(bench.py lifecycle.py) ;;
  *) printf 'usage: %s [lifecycle|reload|all]\n' "$0" >&2; exit 2 ;;
esac

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
PYTHON=${BENCH_PYTHON:-/usr/bin/python3}
CORRAL=${BENCH_CORRAL:-$ROOT/build/corral}
PIDS_FILE=$BENCH_DIR/results/.pids
DRIVER_PID=

say() { printf '[run.sh] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [[ -n $DRIVER_PID ]] && kill -0 "$DRIVER_PID" 2>/dev/null; then
    say "stopping the benchmark (pid $DRIVER_PID)"
    kill -TERM "$DRIVER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DRIVER_PID" 2>/dev/null || true
    wait "$DRIVER_PID" 2>/dev/null || true
  fi
  # bench.py kills every server it started, even on errors; this is for when it was killed
  # itself. It lists "pid PID STARTTIME" per server process and "group PGID STARTTIME" per
  # server (each runs in its own session); the start times guard against reused pids.
  if [[ -s $PIDS_FILE ]]; then
    local victims
    victims=$(cat /proc/[0-9]*/stat 2>/dev/null | awk '
      NR == FNR { if ($1 == "group") group[$2] = $3; else single[$2] = $3; next }
      {
        pid = $1; sub(/^.*\) /, ""); split($0, f, " ")  # f[3]: pgrp, f[20]: starttime
        if ((pid in single && f[20] == single[pid]) ||
            (f[3] in group && f[20] + 0 >= group[f[3]] + 0)) print pid
      }' "$PIDS_FILE" - | sort -u) || true
    if [[ -n $victims ]]; then
      say "killing leftover server processes: $(echo $victims)"
      kill -KILL $victims 2>/dev/null || true
    fi
    rm -f "$PIDS_FILE"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- packages -------------------------------------------------------------------------------
missing=()
for pkg in gunicorn wrk python3-uvicorn python3-fastapi; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing packages ${missing[*]}; run as root or install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
[[ -x $PYTHON ]] || die "no Python at $PYTHON (BENCH_PYTHON)"
command -v wrk >/dev/null || die "wrk is not on PATH"
"$PYTHON" -c 'import uvicorn, uvicorn.workers, gunicorn' 2>/dev/null \
  || die "$PYTHON cannot import uvicorn and gunicorn (python3-uvicorn, gunicorn)"

# --- corral ---------------------------------------------------------------------------------
if [[ ! -x $CORRAL ]]; then
  [[ $CORRAL == "$ROOT/build/corral" ]] || die "BENCH_CORRAL=$CORRAL is not an executable"
  command -v cmake >/dev/null || die "cmake is needed to build corral"
  say "building corral"
  cmake -S "$ROOT" -B "$ROOT/build" -DCORRAL_WERROR=ON >/dev/null \
    && cmake --build "$ROOT/build" -j2 --target corral >/dev/null \
    || die "building corral failed; run cmake --build build to see why"
  [[ -x $CORRAL ]] || die "the build did not produce $CORRAL"
fi

# --- benchmark ------------------------------------------------------------------------------
mkdir -p "$BENCH_DIR/results"
final=0
for script in "${SCRIPTS[@]}"; do
  rm -f "$PIDS_FILE"
  # In the background, so that the traps above run as soon as a signal comes.
  BENCH_PYTHON=$PYTHON BENCH_CORRAL=$CORRAL "$PYTHON" "$BENCH_DIR/$script" &
  DRIVER_PID=$!
  set +e
  wait "$DRIVER_PID"
  status=$?
  set -e
  DRIVER_PID=
  if ((status != 0 && final == 0)); then final=$status; fi
done
exit "$final"
