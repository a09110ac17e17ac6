#!/usr/bin/env bash
# The state machine (supervisor/) makes no system call and includes no system interface: time,
# processes and sockets reach it through Clock, ProcessSpawner and Supervisor::Hooks. (Asio is
# kept out at compile time by supervisor/purity.hpp.) Prints each offending line and fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
status=0
# System headers other than <sys/types.h> (pid_t), and calls into the global namespace (::kill).
if grep -nE '^#include <(sys/[^t]|sys/t[^y]|unistd|fcntl|poll|signal\.h|linux/|boost/)' \
    supervisor/*.hpp supervisor/*.cpp; then
  echo "purity: supervisor/ includes a system interface (above); move that code behind a seam" >&2
  status=1
fi
if grep -nE '(^|[^A-Za-z0-9_>:])::[a-z_]+\(' supervisor/*.hpp supervisor/*.cpp; then
  echo "purity: supervisor/ calls the system (above); go through ProcessSpawner, Clock or Hooks" >&2
  status=1
fi
exit "$status"
