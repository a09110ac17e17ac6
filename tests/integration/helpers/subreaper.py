"""Runs a command as a child subreaper would (systemd, a container runtime): forwards SIGTERM,
SIGINT and SIGQUIT to it, and once it exits, waits a moment to collect any descendant it left
behind, which the kernel reparents here. Prints one line per such orphan on stderr, then exits
with the command's status.

usage: subreaper.py -- COMMAND [ARG...]
"""

import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
LINGER = 2.0  # how long to wait for orphans after the command has exited


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def main(argv):
    command = argv[argv.index("--") + 1:]
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1) != 0:
        sys.exit(f"subreaper: prctl: {os.strerror(ctypes.get_errno())}")
    child = os.fork()
    if child == 0:
        os.execvp(command[0], command)
    for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signo, lambda s, _frame: os.kill(child, s))
    _, status = os.waitpid(child, 0)
    deadline = time.monotonic() + LINGER
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            time.sleep(0.05)  # none yet; an orphan may still be on its way here
            continue
        if pid:
            print(f"subreaper: orphan pid {pid} ({comm(pid)}) was left behind", file=sys.stderr)
        else:
            time.sleep(0.05)
    sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main(sys.argv)
