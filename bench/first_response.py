#!/usr/bin/env python3
"""Time from launch to the first HTTP 200, and until every worker serves, for a bare uvicorn
and for corral (issue 15). Launches alternate between the servers, so that the machine's
changing load falls on all of them alike; the medians are printed with each server's ratio to
bare uvicorn. It only prints numbers: nothing passes or fails.

    /usr/bin/python3 bench/first_response.py                       # 10 launches of each
    /usr/bin/python3 bench/first_response.py --launches 15 --app-dir bench
    /usr/bin/python3 bench/first_response.py --corral before=/tmp/corral-main \\
        --corral after=build/corral --corral spawn=build/corral:--start-method=spawn

A corral is NAME=BINARY[:EXTRA,ARGS] (comma-separated extra arguments). "All serve" is when the
server's output holds one "Application startup complete." per worker (uvicorn logs it once per
worker, whoever started it).
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

READY_LINE = b"Application startup complete."
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers_200(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
            return head.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def launch_once(argv: list[str], port: int, workers: int, interval: float,
                timeout: float) -> tuple[float, float]:
    """Seconds from the launch to the first 200, and to the last worker's startup line."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    os.set_blocking(proc.stdout.fileno(), False)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    output = b""
    first = all_ready = None
    try:
        while first is None or all_ready is None:
            now = time.monotonic()
            if now - start > timeout or proc.poll() is not None:
                raise RuntimeError(f"{argv[0]}: no 200 and {workers} ready workers after "
                                   f"{now - start:.1f} s:\n{output.decode(errors='replace')}")
            for _ in sel.select(timeout=0):
                chunk = proc.stdout.read() or b""
                output += chunk
            if all_ready is None and output.count(READY_LINE) >= workers:
                all_ready = time.monotonic() - start
            if first is None:
                if answers_200(port):
                    first = time.monotonic() - start
                    continue
            time.sleep(interval)
        return first, all_ready
    finally:
        sel.close()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="corral's --workers")
    parser.add_argument("--app-dir", default=str(ROOT / "examples"))
    parser.add_argument("--app", default="app:app")
    parser.add_argument("--python", default="/usr/bin/python3")
    parser.add_argument("--corral", action="append", default=[],
                        help="NAME=BINARY[:EXTRA,ARGS]; default corral=build/corral")
    parser.add_argument("--interval", type=float, default=0.005, help="poll period, seconds")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    servers: list[tuple[str, int, object]] = [
        ("uvicorn", 1, lambda port: [args.python, "-m", "uvicorn", "--app-dir", args.app_dir,
                                     "--port", str(port), "--no-access-log", args.app])]
    for spec in args.corral or [f"corral={ROOT / 'build' / 'corral'}"]:
        name, _, rest = spec.partition("=")
        binary, _, extra = rest.partition(":")
        extra_args = [a for a in extra.split(",") if a]
        servers.append((name, args.workers, lambda port, b=binary, e=extra_args: [
            b, "--python", args.python, "--workers", str(args.workers), "--bind",
            f"127.0.0.1:{port}", "--admin-bind", f"127.0.0.1:{free_port()}", "--no-access-log",
            "--app-dir", args.app_dir, *e, args.app]))

    # One unmeasured launch each warms the page cache.
    for name, workers, argv in servers:
        port = free_port()
        launch_once(argv(port), port, workers, args.interval, args.timeout)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in servers}
    for i in range(args.launches):
        rotated = servers[i % len(servers):] + servers[:i % len(servers)]
        for name, workers, argv in rotated:
            port = free_port()
            first, ready = launch_once(argv(port), port, workers, args.interval, args.timeout)
            times[name].append((first, ready))
            print(f"launch {i + 1:2} {name:>10}: first 200 {first * 1e3:6.0f} ms, "
                  f"all {workers} serving {ready * 1e3:6.0f} ms", flush=True)

    base = statistics.median(t[0] for t in times["uvicorn"])
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{args.launches} launches each, app {args.app} in {args.app_dir}")
    print(f"{'server':>10} | first 200 (median) | ratio to uvicorn | all serving (median)")
    for name, _, _ in servers:
        first = statistics.median(t[0] for t in times[name])
        ready = statistics.median(t[1] for t in times[name])
        print(f"{name:>10} | {first * 1e3:15.0f} ms | {first / base:15.3f}x | "
              f"{ready * 1e3:16.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
