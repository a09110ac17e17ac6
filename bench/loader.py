#!/usr/bin/python3
"""The lifecycle benchmark's load generator: paced HTTP/1.1 GETs that record every request.

    loader.py PORT PATH MODE CONNECTIONS RATE DURATION TIMEOUT START

MODE is `close` (every request on a new connection, with `Connection: close`) or `keep-alive`
(each client reuses its connection and opens a new one only after the server closed it or a
request on it failed). CONNECTIONS clients together offer RATE requests per second: each one
sends a request every CONNECTIONS / RATE seconds, the clients staggered evenly. A request that
takes longer than that delays the next one of its client (no burst to catch up), so a client
that keeps failing at once, e.g. on refused connections, still sends at most its share of RATE.
START is a time.monotonic() value (CLOCK_MONOTONIC, the same in every process) at which the
first request goes out, so that the caller knows the schedule without a handshake. The load
runs DURATION seconds, or until SIGINT; each request that does not answer within TIMEOUT
seconds counts as a timeout.

In keep-alive mode a client checks, before it reuses its connection, whether the server has
closed it while it was idle (as urllib3's pool and proxies' upstream keep-alive caches do), and
then opens a new one: that is not a failure, but it is recorded (`stale`). A request that fails
on a reused connection is one the server closed or reset after the client had sent it, or while
it was on the way: the keep-alive race.

At the end it prints one JSON object: {"records": [[start, latency, outcome, reused, status,
stale], ...]} with start in CLOCK_MONOTONIC seconds, latency in seconds (until the whole
response was read, or until the failure), outcome one of ok, refused, reset, timeout, closed,
error, reused 1 if the request went on a connection that had already carried one, status the
HTTP status (0 without a response), and stale 1 if the client found its idle connection closed
by the server and opened a new one for this request.
"""

import json
import select
import signal
import socket
import sys
import threading
import time

OK, REFUSED, RESET, TIMEOUT, CLOSED, ERROR = "ok", "refused", "reset", "timeout", "closed", "error"


class Client(threading.Thread):
    def __init__(self, port, request, keep_alive, first, interval, end, timeout, stop):
        super().__init__(daemon=True)
        self.addr = ("127.0.0.1", port)
        self.request = request
        self.keep_alive = keep_alive
        self.first, self.interval, self.end, self.timeout = first, interval, end, timeout
        self.stop = stop
        self.sock = None
        self.records = []

    def run(self):
        due = self.first
        while not self.stop.is_set():
            now = time.monotonic()
            if due >= self.end:
                break
            if due > now:
                if self.stop.wait(due - now):
                    break
            start = time.monotonic()
            stale = self.check_idle()
            reused = self.sock is not None
            outcome, status = self.one()
            self.records.append((start, time.monotonic() - start, outcome, int(reused), status,
                                 int(stale)))
            due = max(due + self.interval, time.monotonic())
        self.drop()

    def drop(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def check_idle(self):
        """Like urllib3's pool (is_connection_dropped) and a proxy's upstream keep-alive cache:
        before reusing a connection, see whether the server has closed it meanwhile; if so,
        drop it and use a new one. True if it was found closed."""
        if self.sock is None:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                return False
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            pass
        self.drop()  # closed (EOF), reset, or bytes nobody asked for: not reusable
        return True

    def one(self):
        """(outcome, status) of one request; the connection is kept only after a complete
        keep-alive response."""
        if self.sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.connect(self.addr)
            except ConnectionRefusedError:
                sock.close()
                return REFUSED, 0
            except socket.timeout:
                sock.close()
                return TIMEOUT, 0
            except ConnectionResetError:
                sock.close()
                return RESET, 0
            except OSError:
                sock.close()
                return ERROR, 0
            self.sock = sock
        try:
            outcome, status, keep = self.exchange(self.sock)
        except (ConnectionResetError, BrokenPipeError):
            outcome, status, keep = RESET, 0, False
        except socket.timeout:
            outcome, status, keep = TIMEOUT, 0, False
        except OSError:
            outcome, status, keep = ERROR, 0, False
        if not (keep and self.keep_alive):
            self.drop()
        return outcome, status

    def exchange(self, sock):
        """Sends the request and reads one whole response: (outcome, status, reusable)."""
        sock.sendall(self.request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return CLOSED, 0, False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            return ERROR, 0, False
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return CLOSED, 0, False
            body += chunk
        return OK, status, not close


def main():
    port, path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    connections, rate = int(sys.argv[4]), float(sys.argv[5])
    duration, timeout, start = float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
    if mode not in ("close", "keep-alive"):
        sys.exit(f"loader: MODE must be close or keep-alive, not {mode!r}")
    keep_alive = mode == "keep-alive"
    request = (f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
               f"{'' if keep_alive else 'Connection: close' + chr(13) + chr(10)}\r\n").encode()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    interval = connections / rate
    end = start + duration
    clients = [Client(port, request, keep_alive, start + i * interval / connections, interval,
                      end, timeout, stop) for i in range(connections)]
    for client in clients:
        client.start()
    for client in clients:
        while client.is_alive():
            client.join(0.1)
    records = sorted(r for c in clients for r in c.records)
    json.dump({"records": records}, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
