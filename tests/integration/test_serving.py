"""Serving: N workers share corral's listening socket and all of them answer."""

import http.client
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (EVENT_DEADLINE, LISTENING, InflightRequest, fd_targets, http_get,
                      http_request, pid_alive, tcp_table)


def test_two_workers_serve_and_both_answer(corral):
    c = corral.start(workers=2)
    workers = c.worker_pids()
    assert sorted(workers) == [0, 1], f"expected slots 0 and 1 in the log, got {workers}"
    assert len(set(workers.values())) == 2
    assert all(pid_alive(pid) for pid in workers.values())

    root = c.get("/")
    assert root.status == 200, root

    # Each request on a fresh connection; whichever worker accepts it answers. A few at a time so
    # that one worker busy with a request leaves the next accept to the other. Bounded by a
    # deadline, not by a count.
    seen: set[int] = set()
    deadline = time.monotonic() + EVENT_DEADLINE
    requests = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        while seen != set(workers.values()) and time.monotonic() < deadline:
            for resp in pool.map(lambda _: c.get("/pid"), range(4)):
                requests += 1
                assert resp.status == 200, resp
                seen.add(int(resp.text.strip()))
    print(f"pids seen after {requests} requests: {sorted(seen)}; workers: {workers}")
    assert seen <= set(workers.values()), f"a pid answered that corral never logged: {seen}"
    assert seen == set(workers.values()), (
        f"only {seen} answered within {EVENT_DEADLINE:.0f} s ({requests} requests); "
        f"workers: {workers}")


def test_worker_count_without_workers_flag(corral):
    """No --workers and no environment: corral picks a count (the default may depend on the
    machine) and runs exactly the number it announces."""
    c = corral.start(workers=None, wait_ready=False)
    count = int(c.wait_for_log(r"starting (\d+) workers?").group(1))
    assert count >= 1
    workers = c.wait_ready(count)
    assert len(c.spawns()) == count, c.spawns()
    assert int(c.get("/pid").text) in workers.values()


def test_worker_environment(corral):
    c = corral.start(workers=1, env={"APP_SETTING_FOR_TEST": "kept"})
    env = json.loads(c.get("/env").text)
    assert env.get("APP_SETTING_FOR_TEST") == "kept", "corral's environment reaches the app"
    assert "CORRAL_WORKER_SETTINGS" not in env, "the shim must remove its settings variable"


def test_workers_inherit_only_stdio_and_listening_sockets(corral):
    """PROTOCOL.md: nothing but stdio, the listening sockets and the worker's own control
    channel is inherited. A worker shares no socket or pipe with corral or with another worker
    except the listening socket (the admin socket, the other workers' channels, corral's own
    descriptors all stay out)."""
    c = corral.start(workers=2)
    listening = {f"socket:[{row['inode']}]" for row in _listening_rows(c.port)}
    assert len(listening) == 1, f"one listening socket expected on :{c.port}: {listening}"
    corral_fds = fd_targets(c.pid)
    stdio = {corral_fds[fd] for fd in (0, 1, 2) if fd in corral_fds}

    def private(targets):
        return {t for t in targets.values()
                if t.startswith(("socket:", "pipe:")) and t not in stdio}

    corral_private = private(corral_fds)
    workers = list(c.worker_pids().values())
    worker_private = {pid: private(fd_targets(pid)) for pid in workers}
    for pid, mine in worker_private.items():
        print(f"worker {pid}: {sorted(mine)}")
        assert listening <= mine, f"worker {pid} does not hold the listening socket"
        shared = (mine & corral_private) - listening
        assert not shared, f"worker {pid} inherited corral's descriptors: {shared}"
    between = (worker_private[workers[0]] & worker_private[workers[1]]) - listening
    assert not between, f"the two workers share descriptors: {between}"


def _listening_rows(port: int):
    return [row for row in tcp_table() if row["local_port"] == port and row["state"] == "0A"]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def unix_get(path: str, url_path: str, timeout: float = 10.0) -> tuple[int, str]:
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", url_path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_serves_on_every_kind_of_address(corral, tmp_path):
    sock_path = tmp_path / "app.sock"
    # A socket file left behind by an earlier run: corral replaces it.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(sock_path))
    assert sock_path.exists()
    # A listening socket handed down by a parent, as systemd socket activation does.
    inherited = socket.socket()
    inherited.bind(("127.0.0.1", 0))
    inherited.listen(16)
    inherited_port = inherited.getsockname()[1]
    fd = inherited.fileno()

    binds = ["--bind", "127.0.0.1:0", "--bind", f"unix:{sock_path}", "--bind", f"fd://{fd}"]
    v6 = ipv6_loopback_works()
    if v6:
        binds += ["--bind", "[::1]:0"]
    try:
        c = corral.start(*binds, bind=None, workers=2, pass_fds=(fd,))
    finally:
        inherited.close()  # corral and its workers hold it now
    pids = {str(pid) for pid in c.worker_pids().values()}
    urls = [m["url"] for m in c.find_log(LISTENING)]
    print("listening:", urls)
    assert len(urls) == len(binds) // 2, urls
    assert f"unix:{sock_path}" in urls, urls
    # An inherited socket may be logged by its number or by the address it listens on.
    assert f"fd://{fd}" in urls or f"http://127.0.0.1:{inherited_port}" in urls, urls

    def answered_by_worker(status, text):
        return status == 200 and text.split()[-1] in pids

    resp = c.get("/")
    assert answered_by_worker(resp.status, resp.text), resp
    assert answered_by_worker(*unix_get(str(sock_path), "/")), "unix socket"
    resp = http_get(inherited_port, "/")
    assert answered_by_worker(resp.status, resp.text), f"inherited fd: {resp}"
    if v6:
        v6_url = next(u for u in urls if u.startswith("http://[::1]:"))
        resp = http_request(int(v6_url.rsplit(":", 1)[1]), "/", host="::1")
        assert answered_by_worker(resp.status, resp.text), f"IPv6: {resp}"
    else:
        print("IPv6 loopback unavailable here: [::1] not tested")


def test_port_environment_variable_is_the_default_bind(corral):
    c = corral.start(bind=None, workers=1, env={"PORT": "0"})
    urls = [m["url"] for m in c.find_log(LISTENING)]
    assert len(urls) == 1 and re.fullmatch(r"http://0\.0\.0\.0:\d+", urls[0]), urls
    assert http_get(int(urls[0].rsplit(":", 1)[1]), "/").status == 200


@pytest.mark.parametrize("args, env, expected", [
    pytest.param([], {"CORRAL_WORKERS": "2"}, 2, id="corral-env"),
    pytest.param(["--workers", "1"], {"CORRAL_WORKERS": "3"}, 1, id="flag-wins-over-env"),
    pytest.param([], {"WEB_CONCURRENCY": "2"}, 2, id="web-concurrency"),
])
def test_worker_count_from_flag_and_environment(corral, args, env, expected):
    c = corral.start(*args, workers=None, env=env, wait_ready=False)
    count = int(c.wait_for_log(r"starting (\d+) workers?").group(1))
    assert count == expected, f"{args} {env}: {count} workers, expected {expected}"
    c.wait_ready(expected)
    assert len(c.spawns()) == expected
    assert c.get("/").status == 200


def test_backlog_above_somaxconn_is_warned(corral):
    somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
    backlog = somaxconn + 1000
    c = corral.start("--backlog", str(backlog), workers=1)
    warnings = [e for e in c.entries() if e.level.startswith("warn")
                and str(backlog) in e.msg and str(somaxconn) in e.msg]
    assert warnings, f"no warning naming --backlog {backlog} and somaxconn {somaxconn}"
    print("corral:", warnings[0].msg)
    assert c.get("/").status == 200


def test_uvicorn_options_are_passed_through(corral):
    """--lifespan off: uvicorn never runs the lifespan, so an app whose startup fails serves.
    --limit-concurrency 2: uvicorn answers 503 once a request is in flight and another
    connection comes (uvicorn counts the connection being answered too)."""
    c = corral.start("--lifespan", "off", "--limit-concurrency", "2",
                     app="apps.broken_lifespan:app", workers=1)
    assert c.get("/").status == 200
    slow = InflightRequest(c.port, "/sleep?s=3")
    c.wait_taken(slow)
    over = c.get("/")
    assert over.status == 503, f"--limit-concurrency 2 with one request in flight: {over}"
    slow.join(EVENT_DEADLINE)
    assert slow.status == 200, slow
