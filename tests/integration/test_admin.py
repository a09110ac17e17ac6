"""Admin endpoints: /healthz, /ready and /metrics on corral's own event loop, answering while
every worker is blocked, and robust to bad requests."""

import json
import os
import re
import signal
import socket
import time

from conftest import (EVENT_DEADLINE, READY, InflightRequest, pid_alive, raw_exchange,
                      fd_targets, stop_worker_until_replaced, tcp_table, wait_until)

# The Kubernetes probe's default timeoutSeconds. The issue asks for under 50 ms; the project
# forbids tight wall-clock assertions on a shared machine, so the test asserts the probe's
# timeout and prints the measured latency.
PROBE_TIMEOUT = 1.0


def block_every_worker(c, seconds: int) -> list[InflightRequest]:
    """Sends /block requests one at a time until every worker has read one. A worker that read
    one is stuck in time.sleep and cannot read another, so each new request goes to a worker
    that is still free."""
    workers = set(c.worker_pids().values())
    holders: dict[int, InflightRequest] = {}
    while set(holders) != workers:
        request = InflightRequest(c.port, f"/block?s={seconds}")
        pid = c.wait_taken(request)
        assert pid not in holders, f"worker {pid} read a request while blocked"
        holders[pid] = request
    return list(holders.values())


def parse_head(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = reply.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {reply[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    assert match, f"not an HTTP response: {lines[0]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(match.group(1)), headers, body


def test_health_and_ready_answer_while_every_worker_is_blocked(corral):
    c = corral.start("--timeout", "60s", "--graceful-timeout", "1s", workers=2)
    blocked = block_every_worker(c, 30)
    # Proof that the workers really are blocked: the app port does not answer.
    try:
        stuck = c.get("/", timeout=1.5)
    except OSError:
        stuck = None
    assert stuck is None, f"a worker answered although all should be blocked: {stuck}"

    for method, path in [("GET", "/healthz"), ("HEAD", "/healthz"), ("GET", "/ready"),
                         ("HEAD", "/ready"), ("GET", "/metrics")]:
        resp = c.admin(path, method, timeout=5)
        print(f"{method} {path} -> {resp.status} in {resp.elapsed * 1000:.1f} ms "
              f"(all workers blocked)")
        assert resp.elapsed < PROBE_TIMEOUT, (
            f"{method} {path} took {resp.elapsed:.3f} s with every worker blocked")
        if path == "/healthz":
            assert resp.status == 200, resp
        else:
            assert resp.status in (200, 503), resp
    assert all(not r.done for r in blocked), "the blocking requests ended early"


def test_healthz_and_ready_bodies_when_running(corral):
    c = corral.start(workers=2)
    health = c.admin("/healthz")
    print(health.status, health.headers, health.text)
    assert health.status == 200
    body = json.loads(health.text)
    assert body["state"] == "running", body
    assert body["workers"] == {"ready": 2, "total": 2} or (
        body["workers"]["ready"] == 2 and body["workers"]["total"] == 2), body
    assert "json" in health.headers.get("content-type", ""), health.headers

    ready = c.admin("/ready")
    print(ready.status, ready.text)
    assert ready.status == 200, ready

    for path in ("/healthz", "/ready"):
        head = c.admin(path, "HEAD")
        assert head.status == 200, head
        assert head.body == b""

    metrics = c.admin("/metrics")
    print(metrics.text)
    assert metrics.status == 200, metrics
    assert metrics.headers.get("content-type", "").startswith("text/plain"), metrics.headers
    samples = [line for line in metrics.text.splitlines() if line and not line.startswith("#")]
    assert samples, "no samples in /metrics"
    bad = [line for line in samples
           if not re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEIinfNa]+( \d+)?$",
                           line)]
    assert not bad, f"lines that are not Prometheus samples: {bad}"


def test_ready_is_503_while_workers_start(corral):
    c = corral.start(app="apps.slow_start:app", workers=1, env={"SLOW_START_SECONDS": "3"},
                     wait_ready=False)
    ready = c.admin("/ready")
    health = c.admin("/healthz")
    print(f"while starting: /ready {ready.status} {ready.text!r}; "
          f"/healthz {health.status} {health.text!r}")
    assert not c.ready_pids(), "the slow app became ready too early for this test"
    assert ready.status == 503, ready
    assert ready.text.strip(), "a 503 from /ready must give the reason in its body"
    assert health.status == 200, "a starting worker counts for /healthz"

    c.wait_ready(1)
    ms = int(c.find_log(READY)[0]["ms"])
    assert ms >= 2900, f"ready after {ms} ms although the lifespan startup sleeps 3 s"
    assert c.admin("/ready").status == 200


def test_bad_requests_get_4xx_and_do_not_disturb_supervision(corral):
    c = corral.start(workers=2)
    workers = c.worker_pids()
    mark = c.mark()
    admin = c.admin_port

    assert c.admin("/nope").status == 404
    assert c.admin("/healthz/extra").status == 404
    for method, path in [("POST", "/healthz"), ("PUT", "/ready"), ("DELETE", "/metrics"),
                         ("PATCH", "/healthz")]:
        resp = c.admin(path, method)
        assert resp.status == 405, f"{method} {path}: {resp.status}"

    # HEAD sends the head only: nothing follows it on the wire.
    reply, closed = raw_exchange(
        admin, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, rest = parse_head(reply)
    assert status == 200 and rest == b"", (status, rest)
    assert closed, "Connection: close was not honoured"

    # Garbage: 400, then the connection is closed.
    for garbage in [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
                    b"THIS IS NOT HTTP\r\n\r\n",
                    b"GET /healthz HTTP/9.9 extra\r\n\r\n"]:
        reply, closed = raw_exchange(admin, garbage)
        print(f"garbage {garbage[:20]!r} -> {reply[:60]!r} closed={closed}")
        assert reply.startswith(b"HTTP/1.1 400") or reply.startswith(b"HTTP/1.0 400"), reply
        assert closed, "the connection must be closed after a 400"

    # Over 8 KiB of headers, in one header or in many: 400 and closed.
    big_one = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: %s\r\n" % (i, b"b" * 90) for i in range(120)) + b"\r\n"
    for oversized in (big_one, many):
        reply, closed = raw_exchange(admin, oversized)
        print(f"{len(oversized)} bytes of head -> {reply[:60]!r} closed={closed}")
        assert reply.startswith(b"HTTP/1.1 400") or reply.startswith(b"HTTP/1.0 400"), reply
        assert closed, "the connection must be closed after a 400"

    # A half-sent request held open does not stop others from being answered.
    with socket.create_connection(("127.0.0.1", admin), timeout=5) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        resp = c.admin("/healthz", timeout=5)
        assert resp.status == 200 and resp.elapsed < PROBE_TIMEOUT, resp

    # Supervision is undisturbed: corral runs, same workers, nothing exited, serving works...
    assert c.running
    assert c.worker_pids() == workers
    assert not c.find_log(r"worker \d+ (exited|hung|spawned)", after=mark), c.tail()
    assert c.get("/").status == 200
    assert c.admin("/healthz").status == 200
    # ...and still reacts: a killed worker is replaced.
    os.kill(workers[1], signal.SIGKILL)
    c.wait_for_log(rf"worker 1 exited \(pid {workers[1]}\)", after=mark)
    c.wait_for_log(r"worker 1 spawned", after=mark)
    c.wait_ready(2)
    wait_until(lambda: not pid_alive(workers[1]), 5, "killed worker to be gone")
    assert c.admin("/ready").status == 200


def test_many_admin_connections_do_not_block_supervision(corral):
    """Idle connections beyond the session cap: /healthz keeps answering on a fresh connection
    while they are held (each new connection takes the place of the oldest idle one), and
    corral stays up."""
    c = corral.start(workers=1)
    admin = c.admin_port
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", admin), timeout=5))
        resp = c.admin("/healthz", timeout=5)
        print(f"{len(idle)} idle connections held; /healthz in {resp.elapsed * 1000:.1f} ms")
        assert resp.status == 200 and resp.elapsed < PROBE_TIMEOUT, resp
        assert c.running
    finally:
        for sock in idle:
            sock.close()
    assert c.get("/").status == 200


def test_min_ready_lowers_what_ready_needs(corral):
    c = corral.start("--timeout", "2s", "--graceful-timeout", "1s", "--min-ready", "1",
                     workers=2)
    ready, health = stop_worker_until_replaced(c, 1, 1)
    assert health["workers"]["ready"] == 1, health
    assert ready.status == 200, f"1 of 2 workers ready with --min-ready 1: {ready}"


def test_admin_bind_none_disables_the_admin_server(corral):
    c = corral.start(admin_bind="none", workers=1)
    assert not c.find_log(r"admin on"), "--admin-bind none must not open an admin port"
    corral_sockets = {target for target in fd_targets(c.pid).values()
                      if target.startswith("socket:")}
    listening = {f"socket:[{row['inode']}]" for row in tcp_table() if row["state"] == "0A"}
    held = corral_sockets & listening
    assert len(held) == 1, f"corral should listen on the app port only, holds {held}"
    assert c.get("/").status == 200
