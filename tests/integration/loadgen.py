"""A small HTTP/1.1 load generator for loopback, for the zero-downtime tests.

Threads send GET requests over raw sockets and record every request's outcome, so that a test
can assert that no request was lost while corral reloads, scales, recycles or drains workers.
It is bounded in count and in time and stops by itself; stop() ends it earlier.

Two modes:
- "close": every request on a new connection, with `Connection: close`;
- "keepalive": each thread reuses one connection for request after request (HTTP/1.1
  keep-alive), opening a new one when the server closed the last (for instance with a
  `connection: close` response header while a worker shuts down) or, as a client's connection
  pool does, after `per_connection` requests (0: never). per_connection may be a list, one
  value per thread (cycled): a mix of connections that live on and connections renewed often,
  so that the keep-alive load both spreads over every worker, including one that started after
  the load did, and has connections open on a worker when it shuts down.

Outcomes (Result.outcome):
- "ok"          a 2xx response, complete;
- "status"      a complete response that is not 2xx (Result.status has the code);
- "refused"     connect() was refused (ECONNREFUSED);
- "connect_timeout"  connect() did not complete in time (a dropped SYN is retransmitted after
                1 s, 3 s...: the listener's SYN gate does that on purpose after a drain begins);
- "reset"       the connection was reset (ECONNRESET / EPIPE) before the response was complete;
- "closed"      the server closed the connection before the response was complete (EOF);
- "timeout"     no complete response within the request timeout;
- "error"       anything else (Result.detail says what);
- "idle_close"  keep-alive only: a request on a REUSED connection that was closed or reset
                before ANY byte of its response arrived. This is the race every HTTP server has
                when it closes an idle keep-alive connection just as the client sends on it
                (HTTP clients retry such requests on a new connection, since the server never
                saw them). It is counted apart from the failures and not retried here.
"""

from __future__ import annotations

import collections
import errno
import re
import socket
import threading
import time
from dataclasses import dataclass

FAILURES = ("refused", "connect_timeout", "reset", "closed", "timeout", "error")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})")


@dataclass
class Result:
    started: float  # time.monotonic() just before the request's connect (or send, if reused)
    finished: float
    outcome: str  # see the module's docstring
    reused: bool  # sent on a connection that had already carried a complete response
    status: int | None = None
    body: bytes = b""
    detail: str = ""
    local_port: int | None = None  # the client's port: which connection it was

    @property
    def pid(self) -> int | None:
        """The worker pid in the body of apps.basic's `/` ("ok <pid>"), if there is one."""
        match = re.search(rb"(\d+)\s*$", self.body)
        return int(match.group(1)) if match else None


class _Failure(Exception):
    def __init__(self, outcome: str, detail: str, got_bytes: bool):
        super().__init__(detail)
        self.outcome, self.detail, self.got_bytes = outcome, detail, got_bytes


class LoadGenerator:
    """Threads sending requests to 127.0.0.1:port until stopped, max_requests were sent, or
    max_seconds have passed. `pause` is each thread's rest between two requests, so that the
    load leaves the (small, shared) machine some room to boot new workers."""

    def __init__(self, port: int, mode: str = "close", threads: int = 4, path: str = "/",
                 max_requests: int = 20000, max_seconds: float = 30.0, pause: float = 0.002,
                 timeout: float = 10.0, connect_timeout: float = 10.0, host: str = "127.0.0.1",
                 per_connection: int | list[int] = 25):
        assert mode in ("close", "keepalive"), mode
        self.port, self.mode, self.path, self.host = port, mode, path, host
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.pause, self.timeout, self.connect_timeout = pause, timeout, connect_timeout
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._sent = 0
        self._stop = threading.Event()
        self._stop_at: float | None = None
        limits = per_connection if isinstance(per_connection, list) else [per_connection]
        self._threads = [threading.Thread(target=self._run, args=(limits[i % len(limits)],),
                                          daemon=True, name=f"load-{i}")
                         for i in range(threads)]
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    # ---- control -----------------------------------------------------------------------------

    def start(self) -> "LoadGenerator":
        self.started_at = time.monotonic()
        self._stop_at = self.started_at + self.max_seconds
        for thread in self._threads:
            thread.start()
        return self

    def stop_at(self, when: float) -> None:
        """No request starts at or after monotonic time `when` (requests already under way
        finish)."""
        with self._lock:
            self._stop_at = min(self._stop_at, when) if self._stop_at else when

    def stop(self, timeout: float = 30.0) -> "LoadGenerator":
        """Stops starting requests, waits for those under way; returns self."""
        self._stop.set()
        return self.join(timeout)

    def join(self, timeout: float = 30.0) -> "LoadGenerator":
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"load generator threads {alive} still running after {timeout} s"
        self.stopped_at = time.monotonic()
        return self

    @property
    def done(self) -> bool:
        return not any(t.is_alive() for t in self._threads)

    def count(self, outcome: str | None = None, since: float | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.results
                       if (outcome is None or r.outcome == outcome)
                       and (since is None or r.started >= since))

    def served_by(self, pid: int) -> int:
        """2xx responses whose body ends with pid (apps.basic's `/`: "ok <pid>")."""
        with self._lock:
            return sum(1 for r in self.results if r.outcome == "ok" and r.pid == pid)

    def wait_for(self, n: int, outcome: str = "ok", since: float | None = None,
                 timeout: float = 20.0) -> bool:
        """Waits until n requests (started at or after `since`) had `outcome`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(outcome, since) >= n:
                return True
            if self.done:
                break
            time.sleep(0.01)
        return self.count(outcome, since) >= n

    # ---- results -----------------------------------------------------------------------------

    def snapshot(self) -> list[Result]:
        """The results so far (a copy: the threads may still be adding to them)."""
        with self._lock:
            return list(self.results)

    def summary(self, results: list[Result] | None = None) -> dict:
        results = self.snapshot() if results is None else results
        counts = collections.Counter(r.outcome for r in results)
        statuses = collections.Counter(r.status for r in results if r.outcome == "status")
        return {
            "mode": self.mode,
            "total": len(results),
            "ok": counts["ok"],
            "non_2xx": sum(statuses.values()),
            "non_2xx_by_status": dict(statuses),
            "failed": sum(counts[k] for k in FAILURES),
            "failed_by_kind": {k: counts[k] for k in FAILURES if counts[k]},
            "idle_close": counts["idle_close"],
            "reused": sum(1 for r in results if r.reused),
            "pids": len({r.pid for r in results if r.outcome == "ok" and r.pid}),
        }

    def failures(self, results: list[Result] | None = None) -> list[Result]:
        """Every request that did not end with a 2xx, except the keep-alive idle-close race."""
        results = self.snapshot() if results is None else results
        return [r for r in results if r.outcome not in ("ok", "idle_close")]

    def describe(self, results: list[Result] | None = None, limit: int = 10) -> str:
        """The summary and the first failures, with times relative to start()."""
        results = self.snapshot() if results is None else results
        lines = [f"{self.summary(results)}"]
        for r in self.failures(results)[:limit]:
            started, finished = r.started - self.started_at, r.finished - self.started_at
            lines.append(f"  +{started:.3f}s..+{finished:.3f}s {r.outcome} status={r.status} "
                         f"reused={r.reused} {r.detail}")
        idle = [r for r in results if r.outcome == "idle_close"]
        for r in idle[:limit]:
            lines.append(f"  +{r.started - self.started_at:.3f}s idle_close {r.detail}")
        return "\n".join(lines)

    # ---- the threads -------------------------------------------------------------------------

    def _take_turn(self) -> float | None:
        """Claims the next request; returns its start time, or None when the load is over."""
        now = time.monotonic()
        with self._lock:
            if self._stop.is_set() or now >= self._stop_at or self._sent >= self.max_requests:
                return None
            self._sent += 1
        return now

    def _record(self, result: Result) -> None:
        with self._lock:
            self.results.append(result)

    def _run(self, per_connection: int) -> None:
        sock: socket.socket | None = None
        port: int | None = None
        reused = False
        carried = 0  # complete responses on the current connection
        request = (f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   f"{'Connection: close' if self.mode == 'close' else 'Connection: keep-alive'}"
                   f"\r\n\r\n").encode()
        try:
            while True:
                started = self._take_turn()
                if started is None:
                    return
                try:
                    if sock is None:
                        reused, carried, port = False, 0, None
                        sock = self._connect()
                        port = sock.getsockname()[1]
                    status, body, keep = self._exchange(sock, request)
                    outcome = "ok" if 200 <= status < 300 else "status"
                    self._record(Result(started, time.monotonic(), outcome, reused, status, body,
                                        local_port=port))
                    carried += 1
                    if self.mode == "close" or not keep or 0 < per_connection <= carried:
                        sock.close()
                        sock = None
                    else:
                        reused = True
                except _Failure as failure:
                    outcome = failure.outcome
                    if (reused and not failure.got_bytes
                            and outcome in ("closed", "reset")):
                        outcome = "idle_close"
                    self._record(Result(started, time.monotonic(), outcome, reused,
                                        detail=failure.detail, local_port=port))
                    if sock is not None:
                        sock.close()
                        sock = None
                if self.pause:
                    time.sleep(self.pause)
        finally:
            if sock is not None:
                sock.close()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect((self.host, self.port))
        except ConnectionRefusedError as exc:
            sock.close()
            raise _Failure("refused", f"connect: {exc}", False) from None
        except socket.timeout:
            sock.close()
            raise _Failure("connect_timeout", f"connect: no answer in {self.connect_timeout} s",
                           False) from None
        except OSError as exc:
            sock.close()
            raise _Failure("error", f"connect: {exc!r}", False) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        return sock

    def _exchange(self, sock: socket.socket, request: bytes) -> tuple[int, bytes, bool]:
        """Sends the request and reads one response; returns (status, body, keep-alive)."""
        data = b""
        try:
            sock.sendall(request)
            deadline = time.monotonic() + self.timeout
            head_end = -1
            while head_end < 0:
                data += self._recv(sock, deadline, data)
                head_end = data.find(b"\r\n\r\n")
            head = data[:head_end].decode("latin-1")
            match = _STATUS_LINE.match(data)
            if not match:
                raise _Failure("error", f"not an HTTP response: {data[:80]!r}", True)
            headers = {}
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = data[head_end + 4:]
            while len(body) < length:
                body += self._recv(sock, deadline, data + body)
            keep = headers.get("connection", "").lower() != "close"
            return int(match.group(1)), body[:length], keep
        except _Failure:
            raise
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _Failure("reset", f"{type(exc).__name__} after {len(data)} response bytes",
                           bool(data)) from None
        except OSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                raise _Failure("reset", f"{exc!r} after {len(data)} bytes", bool(data)) from None
            raise _Failure("error", f"{exc!r} after {len(data)} bytes", bool(data)) from None

    @staticmethod
    def _recv(sock: socket.socket, deadline: float, so_far: bytes) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Failure("timeout", f"no complete response; got {len(so_far)} bytes",
                           bool(so_far))
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise _Failure("timeout", f"no complete response; got {len(so_far)} bytes",
                           bool(so_far)) from None
        if not chunk:
            raise _Failure("closed", f"closed by the server after {len(so_far)} response bytes",
                           bool(so_far))
        return chunk
