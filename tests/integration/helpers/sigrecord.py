"""Records the signals it receives, for tests of `corral run`.

usage: sigrecord.py FILE [--fork]

Writes "ready" to FILE once its handlers are installed, then the name of each signal it gets,
one per line. SIGTERM is recorded and then ends it with exit code 0. With --fork it first
forks a child (in the same process group) that does the same into FILE.child, so a test can tell
a signal sent to this process from one sent to its whole group.
"""

import os
import signal
import sys
import time

RECORDED = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
            signal.SIGUSR2]


def record(path):
    def handler(signo, _frame):
        with open(path, "a") as f:
            f.write(signal.Signals(signo).name + "\n")
        if signo == signal.SIGTERM:
            os._exit(0)

    for signo in RECORDED:
        signal.signal(signo, handler)
    with open(path, "a") as f:
        f.write("ready\n")
    while True:
        time.sleep(60)


def main(argv):
    path = argv[0]
    if "--fork" in argv[1:] and os.fork() == 0:
        record(path + ".child")
    record(path)


if __name__ == "__main__":
    main(sys.argv[1:])
