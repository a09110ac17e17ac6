"""Execs a command with some signals ignored and some blocked, as a careless parent would leave
them (nohup ignores SIGHUP, `trap '' TERM` ignores SIGTERM, a program that sigwait()s blocks
signals and may forget to unblock them before it spawns children).

usage: sigexec.py [--ignore SIG,SIG...] [--block SIG,SIG...] [--zombie] -- COMMAND [ARG...]

--zombie first forks a child that exits at once and waits until it is a zombie, so COMMAND
inherits a child that has already exited and whose SIGCHLD has already come and gone.
"""

import os
import signal
import sys
import time


def signals(text):
    return [getattr(signal, name if name.startswith("SIG") else "SIG" + name)
            for name in text.split(",") if name]


def main(argv):
    ignore, block, zombie = [], [], False
    while argv and argv[0] != "--":
        option = argv.pop(0)
        if option == "--ignore":
            ignore = signals(argv.pop(0))
        elif option == "--block":
            block = signals(argv.pop(0))
        elif option == "--zombie":
            zombie = True
        else:
            sys.exit(f"sigexec: unknown option {option}")
    command = argv[1:]
    if zombie:
        child = os.fork()
        if child == 0:
            os._exit(0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.005)
    for signo in ignore:
        signal.signal(signo, signal.SIG_IGN)
    # Python itself ignores SIGPIPE and SIGXFSZ; give COMMAND the defaults for those.
    for signo in (signal.SIGPIPE, signal.SIGXFSZ):
        if signo not in ignore:
            signal.signal(signo, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, block)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
