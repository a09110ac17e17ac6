"""Zero-downtime lifecycle under real load: no request is lost while corral reloads (SIGHUP),
scales (SIGTTIN/SIGTTOU), recycles workers (--max-requests, --max-worker-memory), drains after
--drain-delay, stops with connections waiting in the listen queue, or rolls back a reload whose
code does not boot.

Every scenario runs two load generators at once (loadgen.py): one with `Connection: close` (a
new connection per request), one with keep-alive connections reused request after request. Both
must see zero failed requests and zero non-2xx responses. The keep-alive generator also counts
"idle_close": a request on a reused connection that the server closed (or reset) before sending
any byte of a response, the race every server has when it closes an idle keep-alive connection
just as the client reuses it (clients retry those). Those are printed and must stay near zero.

Nothing here asserts on elapsed time: every wait polls a condition with a generous deadline.
"""

from __future__ import annotations

import collections
import json
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from conftest import EVENT_DEADLINE, EXITED, InflightRequest, pid_alive, server_side_of, \
    socket_owner, tcp_table, wait_until
from loadgen import LoadGenerator

# Both generators run in every scenario: Connection: close with this many threads...
CLOSE_THREADS = 2
# ...and keep-alive with one thread per entry: how many requests each thread sends on one
# connection before opening another (0: until the server closes it). The connection that lives
# on is open on a worker when the worker shuts down; the renewed ones reach new workers.
KEEPALIVE_RENEWAL = [0, 20, 200]
# Requests each generator must complete after a lifecycle event, so the load provably ran on
# the new workers too.
AFTER_EVENT = 100
# The keep-alive idle-close race: allowed at most this many, or this fraction of the reused
# requests if that is more.
IDLE_CLOSE_MAX = 5
IDLE_CLOSE_FRACTION = 0.01

COMMON = ("--no-access-log",)


class Load:
    """Both load generators against one port; a context manager that always stops them."""

    def __init__(self, port: int, path: str = "/", max_seconds: float = 40.0):
        self.gens = {
            "close": LoadGenerator(port, "close", threads=CLOSE_THREADS, path=path,
                                   max_seconds=max_seconds),
            "keepalive": LoadGenerator(port, "keepalive", threads=len(KEEPALIVE_RENEWAL),
                                       path=path, max_seconds=max_seconds,
                                       per_connection=KEEPALIVE_RENEWAL),
        }

    def __enter__(self) -> "Load":
        for gen in self.gens.values():
            gen.start()
        self.wait_ok(AFTER_EVENT // 2)  # the load runs before anything happens
        return self

    def __exit__(self, *exc):
        for gen in self.gens.values():
            gen.stop()

    def wait_ok(self, n: int = AFTER_EVENT, since: float | None = None) -> None:
        """Waits until each generator had n 2xx responses to requests started since `since`."""
        for mode, gen in self.gens.items():
            if not gen.wait_for(n, "ok", since, timeout=EVENT_DEADLINE):
                pytest.fail(f"{mode} load: fewer than {n} successful requests in "
                            f"{EVENT_DEADLINE:.0f} s; {gen.describe()}")

    def wait_served_by(self, pid: int) -> None:
        """Waits until worker pid has answered requests of each generator."""
        for mode, gen in self.gens.items():
            wait_until(lambda: gen.served_by(pid), EVENT_DEADLINE,
                       f"{mode} load to reach worker {pid}: {gen.describe()}")

    def stop_at(self, when: float) -> None:
        for gen in self.gens.values():
            gen.stop_at(when)

    def stop(self) -> None:
        for gen in self.gens.values():
            gen.stop()

    def assert_served_by(self, pids, each_mode: bool = True) -> None:
        """The load really ran on the workers that were then stopped: each worker in pids
        answered requests of both generators (each_mode) or of at least one of them, and each
        generator reached at least one of them."""
        served = {}
        for mode, gen in self.gens.items():
            served[mode] = collections.Counter(r.pid for r in gen.snapshot() if r.outcome == "ok")
            print(f"{mode}: 2xx responses by worker pid: {dict(served[mode])}")
            assert any(served[mode][pid] for pid in pids), f"{mode} load reached none of {pids}"
        for pid in pids:
            reached = [mode for mode in served if served[mode][pid]]
            assert reached if not each_mode else len(reached) == len(served), \
                f"worker {pid} was reached only by {reached or 'no'} load"

    def report(self, scenario: str) -> None:
        for mode, gen in self.gens.items():
            print(f"[{scenario}] {mode}: {gen.describe()}")

    def assert_nothing_lost(self, scenario: str) -> None:
        """Zero failed requests and zero non-2xx in both modes; keep-alive idle-close races
        near zero. Stops the load first."""
        self.stop()
        self.report(scenario)
        problems = []
        for mode, gen in self.gens.items():
            summary = gen.summary()
            if summary["failed"] or summary["non_2xx"]:
                problems.append(f"{mode}: {gen.describe()}")
        keepalive = self.gens["keepalive"].summary()
        allowed = max(IDLE_CLOSE_MAX, int(IDLE_CLOSE_FRACTION * keepalive["reused"]))
        if keepalive["idle_close"] > allowed:
            problems.append(f"keep-alive idle-close races: {keepalive['idle_close']} of "
                            f"{keepalive['reused']} reused requests (allowed {allowed})")
        assert not problems, f"{scenario}: requests lost:\n" + "\n".join(problems)


def health(c) -> dict:
    return json.loads(c.admin("/healthz", timeout=5).text)


def wait_workers(c, total: int, what: str, timeout: float = EVENT_DEADLINE) -> dict:
    """Waits until /healthz shows `total` workers, all alive and ready."""

    def settled():
        h = health(c)
        w = h["workers"]
        return h if (w["total"], w["alive"], w["ready"]) == (total, total, total) else None

    return wait_until(settled, timeout, what)


def exits(c, why: str, after: int = 0) -> list[re.Match]:
    return [m for m in c.find_log(EXITED, after) if m["why"] == why]


def wait_exited(c, pids, after: int = 0) -> None:
    for pid in pids:
        c.wait_for_log(rf"worker \d+ exited \(pid {pid}\)", after=after)


def assert_clean_exits(c, whys: tuple[str, ...], after: int = 0) -> None:
    """Every worker exit from `after` on had one of the expected reasons, and a worker that was
    drained (not one stopped while it booted: "superseded") exited with code 0."""
    for m in c.find_log(EXITED, after):
        assert m["why"] in whys, f"unexpected: {m.group(0)}"
        assert m["why"] == "superseded" or m["how"] == "exit code 0", f"unexpected: {m.group(0)}"


# --------------------------------------------------------------------------------------------
# 1. SIGHUP: rolling reload, and a second SIGHUP during the roll
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("surge", [1, 2])
def test_sighup_rolling_reload_loses_no_request(corral, surge):
    c = corral.start(*COMMON, "--max-surge", str(surge), workers=2)
    first = set(c.worker_pids().values())
    with Load(c.port) as load:
        mark = c.mark()
        c.send_signal(signal.SIGHUP)
        c.wait_for_log(r"state Running -> Reloading \(SIGHUP: rolling to generation 1\)",
                       after=mark)
        c.wait_for_log(r"reload to generation 1 complete", after=mark)
        # The old workers drain once their successors are ready, so they exit after this.
        wait_exited(c, first, after=mark)
        second = set(c.worker_pids().values())
        assert not second & first
        load.wait_ok(since=time.monotonic())

        # A second SIGHUP while the next roll is under way restarts it with the newest code.
        mark = c.mark()
        c.send_signal(signal.SIGHUP)
        c.wait_for_log(r"worker \d+ spawned \(pid \d+\) to take over from pid \d+", after=mark)
        c.send_signal(signal.SIGHUP)
        c.wait_for_log(r"reload to generation 3 complete", after=mark)
        wait_exited(c, second, after=mark)
        load.wait_ok(since=time.monotonic())
        load.assert_nothing_lost(f"SIGHUP --max-surge {surge}")
        # The second generation lives only until the next roll: keep-alive connections, which
        # stay with their worker, may never reach one of them, so one kind of load is enough.
        load.assert_served_by(first)
        load.assert_served_by(second, each_mode=False)

    final = set(c.worker_pids().values())
    assert not final & (first | second)
    print("/healthz after the reloads:", health(c))
    # Both rolls are complete and every replaced worker has exited: nothing is left to settle,
    # so this wait is short (it only keeps the test from hanging while a worker leaks).
    wait_workers(c, 2, "exactly 2 workers, all ready, after the reloads; /healthz "
                       f"{health(c)}; log:\n{c.tail()}", timeout=5)
    assert health(c).get("reload_error") is None
    # Every worker replaced by a roll says so; only a successor stopped while booting, when
    # the second SIGHUP restarted the roll, is "superseded".
    reasons = {int(m["pid"]): m["why"] for m in c.find_log(EXITED)}
    wrong = {pid: reasons[pid] for pid in first | second if reasons[pid] != "reloaded"}
    assert not wrong, f"workers replaced by a reload but logged otherwise: {wrong}"
    assert_clean_exits(c, ("reloaded", "superseded"))


# --------------------------------------------------------------------------------------------
# 2. SIGTTIN / SIGTTOU
# --------------------------------------------------------------------------------------------


def test_scale_up_and_down_loses_no_request(corral):
    c = corral.start(*COMMON, workers=2)
    assert health(c)["workers"]["total"] == 2
    with Load(c.port) as load:
        mark = c.mark()
        c.send_signal(signal.SIGTTIN)
        c.wait_for_log(r"scaling up to 3 workers \(SIGTTIN\)", after=mark)
        wait_workers(c, 3, "3 ready workers after SIGTTIN")
        added = c.worker_pids()[2]
        # Both kinds of traffic on the new worker, so that its removal is under load.
        load.wait_served_by(added)

        mark = c.mark()
        c.send_signal(signal.SIGTTOU)
        c.wait_for_log(r"scaling down to 2 workers \(SIGTTOU\)", after=mark)
        c.wait_for_log(rf"worker 2 exited \(pid {added}\): exit code 0 \(scaled_down\)",
                       after=mark)
        wait_workers(c, 2, "2 ready workers after SIGTTOU")
        load.wait_ok(since=time.monotonic())
        load.assert_nothing_lost("SIGTTIN/SIGTTOU")
        load.assert_served_by({added})
    assert_clean_exits(c, ("scaled_down",))


# --------------------------------------------------------------------------------------------
# 3. --max-requests recycling
# --------------------------------------------------------------------------------------------


def test_max_requests_recycling_loses_no_request(corral):
    c = corral.start(*COMMON, "--max-requests", "50", "--max-requests-jitter", "10", workers=2)
    with Load(c.port) as load:
        c.wait_for_log(r"worker \d+ exited \(pid \d+\): exit code 0 \(recycled\)", count=4)
        load.wait_ok(since=time.monotonic())
        load.assert_nothing_lost("--max-requests")
        # A recycled worker lives for about its successor's boot: one mode may miss it.
        load.assert_served_by({int(m["pid"]) for m in exits(c, "recycled")}, each_mode=False)
    recycled = exits(c, "recycled")
    print(f"{len(recycled)} workers recycled")
    assert len(recycled) >= 4
    assert_clean_exits(c, ("recycled",))


# --------------------------------------------------------------------------------------------
# 4. --max-worker-memory recycling
# --------------------------------------------------------------------------------------------


def test_max_worker_memory_recycling_loses_no_request(corral):
    c = corral.start(*COMMON, "--max-worker-memory", "80Mi", app="apps.memory:app", workers=2)
    with Load(c.port) as load:
        grown = c.get("/grow?mb=100")
        assert grown.status == 200, grown.text
        _, pid, mib = grown.text.split()
        print(f"worker {pid} now holds {mib} MiB more")
        line = c.wait_for_log(rf"worker (\d+) \(pid {pid}\) uses (\S+) of memory, above "
                              rf"--max-worker-memory 80Mi: starting its replacement")
        print("corral:", line.group(0))
        c.wait_for_log(rf"worker \d+ exited \(pid {pid}\): exit code 0 \(recycled\)")
        load.wait_ok(since=time.monotonic())
        load.assert_nothing_lost("--max-worker-memory")
        load.assert_served_by({int(pid)}, each_mode=False)
    # Only the grown worker was replaced.
    assert [m["pid"] for m in exits(c, "recycled")] == [pid]
    assert_clean_exits(c, ("recycled",))


# --------------------------------------------------------------------------------------------
# 5. SIGTERM with --drain-delay
# --------------------------------------------------------------------------------------------


DRAIN_DELAY = 2.0
# The load generator starts no request later than this before the end of the drain delay:
# once the delay is over, corral gates the listener and drops new SYNs on purpose (a client
# connecting then retries its SYN and, by then, the instance has left the load balancer). The
# margin only guards against a load thread descheduled between its check and its connect().
STOP_MARGIN = 0.3


def test_sigterm_with_drain_delay_serves_until_the_gate(corral):
    c = corral.start(*COMMON, "--drain-delay", f"{DRAIN_DELAY}s", "--graceful-timeout", "20s",
                     workers=2)
    workers = c.worker_pids()
    with Load(c.port) as load:
        mark = c.mark()
        signalled = time.monotonic()
        c.send_signal(signal.SIGTERM)
        # corral's delay timer starts when it gets the signal, after `signalled`: every request
        # started before signalled + DRAIN_DELAY started before the gate.
        load.stop_at(signalled + DRAIN_DELAY - STOP_MARGIN)

        def ready_503():
            resp = c.admin("/ready", timeout=5)
            return resp if resp.status == 503 else None

        ready = wait_until(ready_503, 10, "/ready to answer 503 after SIGTERM")
        turned = time.monotonic()
        print(f"/ready {ready.status} {ready.text.strip()} "
              f"{turned - signalled:.3f} s after SIGTERM")
        assert "draining" in ready.text
        c.wait_for_log(r"drain: /ready fails now; workers keep serving for 2s", after=mark)

        # During the delay the listener is open and the workers serve: a connection made now
        # is served, and so is the load, which goes on until just before the delay ends.
        late = InflightRequest(c.port, "/")
        late.join(EVENT_DEADLINE)
        assert late.status == 200, late
        for gen in load.gens.values():
            gen.join(EVENT_DEADLINE)
        during = {mode: gen.count("ok", since=turned) for mode, gen in load.gens.items()}
        print(f"2xx responses to requests started after /ready turned 503: {during}")
        load.assert_nothing_lost(f"SIGTERM --drain-delay {DRAIN_DELAY:.0f}s")
        assert all(during.values()), f"no request of some mode ran during the delay: {during}"

    c.wait_for_log(r"drain: 2 workers finishing in-flight requests", after=mark)
    rc = c.wait_exit()
    assert rc == 0, f"exit code {rc}; log:\n{c.tail()}"
    for slot, pid in workers.items():
        c.wait_for_log(rf"worker {slot} exited \(pid {pid}\): exit code 0 \(drained\)",
                       after=mark)
    c.wait_for_log(r"state Drain\w+ -> Stopped", after=mark)


# --------------------------------------------------------------------------------------------
# 6. Backlog-safe stop: connections waiting in the listen queue are served
# --------------------------------------------------------------------------------------------


QUEUED = 20


def listen_queue(port: int) -> int | None:
    """Connections waiting in the accept queue of the listener on port (the rx_queue of a
    LISTEN row of /proc/net/tcp is the accept queue's length), None if it is not listening."""
    for row in tcp_table():
        if row["local_port"] == port and row["state"] == "0A":
            return row["rx_queue"]
    return None


def hold_every_worker(c, release: Path, workers: set[int]) -> list[InflightRequest]:
    """Blocks the event loop of each serving worker (pids) with a /hold (apps.hold) until
    `release` exists. One at a time, so that each worker takes exactly one: once its loop is
    blocked, a worker accepts nothing more."""
    holds, holders = [], set()
    for _ in workers:
        hold = InflightRequest(c.port, f"/hold?file={release}")
        holds.append(hold)
        holders.add(c.wait_taken(hold, workers))
    assert holders == workers, f"holds taken by {holders}, workers {workers}"
    return holds


def queue_requests(c, n: int) -> list[InflightRequest]:
    """n requests whose connections wait in the listen queue (every worker is held)."""
    queued = [InflightRequest(c.port, "/pid") for _ in range(n)]
    wait_until(lambda: listen_queue(c.port) == n, EVENT_DEADLINE,
               f"{n} connections in the listen queue (now {listen_queue(c.port)})")
    return queued


def test_stop_serves_connections_waiting_in_the_listen_queue(corral, tmp_path):
    release = tmp_path / "release"
    c = corral.start(*COMMON, "--graceful-timeout", "20s", app="apps.hold:app", workers=2)
    holds = hold_every_worker(c, release, set(c.worker_pids().values()))
    queued = queue_requests(c, QUEUED)
    metrics = c.admin("/metrics").body.decode()
    listener = f'listener="http://127.0.0.1:{c.port}"'
    assert f"corral_listen_queue_connections{{{listener}}} {QUEUED}\n" in metrics, metrics
    mark = c.mark()
    c.send_signal(signal.SIGTERM)
    c.wait_for_log(rf"drain: no new connections; serving the {QUEUED} waiting in the listen "
                   r"queue first", after=mark)
    # The gate drops new SYNs: a new connection is neither accepted nor refused.
    with socket.socket() as probe:
        probe.settimeout(0.5)
        with pytest.raises(socket.timeout):
            probe.connect(("127.0.0.1", c.port))
    assert listen_queue(c.port) == QUEUED, "queued connections left the queue while held"
    assert not c.find_log(r"drain: \d+ workers? finishing", after=mark), \
        "corral stopped the workers with connections still queued:\n" + c.tail()

    release.touch()
    for request in holds + queued:
        request.join(EVENT_DEADLINE)
    statuses = [r.status for r in queued]
    print(f"queued requests: {statuses.count(200)} of {QUEUED} answered 200; "
          f"served by {sorted({r.body.decode() for r in queued if r.status == 200})}")
    lost = [r for r in holds + queued if r.status != 200]
    assert not lost, f"requests lost at stop: {lost}; log:\n{c.tail()}"
    rc = c.wait_exit()
    assert rc == 0, f"exit code {rc}; log:\n{c.tail()}"
    assert len(exits(c, "drained", mark)) == 2


@pytest.mark.parametrize("how", ["sighup", "sigttou"])
def test_worker_stopped_while_booting_loses_no_queued_request(corral, tmp_path, how):
    """A worker that corral stops while it boots: the first roll's successor when a second
    SIGHUP restarts the roll, or the worker SIGTTIN added when SIGTTOU comes before it is
    ready. Here it is in its lifespan startup (uvicorn has installed its signal handlers) while
    connections wait in the listen queue (both serving workers are busy): the stopped worker
    must not take them, or must serve them, but never drop them. The same race showed under
    plain load (SIGHUPs one second apart): the stopped worker's output says `Task was destroyed
    but it is pending! ... _accept_connection2` and `Connection: close` clients get resets."""
    release = tmp_path / "release-holds"
    c = corral.start(*COMMON, "--graceful-timeout", "20s", app="apps.hold:app", workers=2,
                     env={"HOLD_BOOT_DIR": str(tmp_path)})
    try:
        stopped_while_booting(c, tmp_path, release, how)
    finally:
        release.touch()
        (tmp_path / "hold-boot").unlink(missing_ok=True)


def stopped_while_booting(c, tmp_path: Path, release: Path, how: str) -> None:
    serving = set(c.worker_pids().values())
    (tmp_path / "hold-boot").touch()
    mark = c.mark()
    c.send_signal(signal.SIGHUP if how == "sighup" else signal.SIGTTIN)
    booting = int(c.wait_for_log(r"worker \d+ spawned \(pid (\d+)\)", after=mark).group(1))
    wait_until(lambda: (tmp_path / f"booting.{booting}").exists(), EVENT_DEADLINE,
               f"worker {booting} to reach its lifespan startup")
    holds = hold_every_worker(c, release, serving)
    queued = queue_requests(c, QUEUED)

    mark = c.mark()
    if how == "sighup":
        c.send_signal(signal.SIGHUP)
        c.wait_for_log(r"rolling to generation 2", after=mark)
    else:
        c.send_signal(signal.SIGTTOU)
        c.wait_for_log(r"scaling down to 2 workers", after=mark)
    # The stopped worker finishes its startup now, with connections in the queue.
    (tmp_path / f"release.{booting}").touch()
    gone = c.wait_for_log(rf"worker \d+ exited \(pid {booting}\): .*", after=mark)
    print("corral:", gone.group(0))
    print(f"listen queue after it exited: {listen_queue(c.port)} of {QUEUED}")
    (tmp_path / "hold-boot").unlink()
    release.touch()
    for request in holds + queued:
        request.join(EVENT_DEADLINE)
    served = collections.Counter(r.body.decode() for r in queued if r.status == 200)
    print(f"queued requests: {sum(served.values())} of {QUEUED} answered 200, by {dict(served)}")
    lost = [r for r in holds + queued if r.status != 200]
    assert not lost, (f"{len(lost)} of {QUEUED} queued requests lost when worker {booting} was "
                      f"stopped while booting: {lost[:3]}...\ncorral: {gone.group(0)}")
    if how == "sighup":
        c.wait_for_log(r"reload to generation 2 complete", after=mark)
    wait_workers(c, 2, "2 ready workers")


# --------------------------------------------------------------------------------------------
# 7. A request whose bytes arrive just after the stop began
# --------------------------------------------------------------------------------------------


def test_request_arriving_just_after_stop_is_served(corral):
    c = corral.start(*COMMON, "--graceful-timeout", "20s", workers=2)
    workers = c.worker_pids().values()
    sock = socket.create_connection(("127.0.0.1", c.port), timeout=EVENT_DEADLINE)
    try:
        client_port = sock.getsockname()[1]

        def accepted():
            row = server_side_of(c.port, client_port)
            return row and row["inode"] and socket_owner(row["inode"], workers)

        owner = wait_until(accepted, EVENT_DEADLINE, "a worker to accept the connection")
        mark = c.mark()
        c.send_signal(signal.SIGTERM)
        c.wait_for_log(r"drain: 2 workers finishing in-flight requests", after=mark)
        time.sleep(0.1)  # the scenario itself: the request's bytes arrive ~100 ms later
        assert pid_alive(owner)
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        reply = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    finally:
        sock.close()
    print(f"worker {owner} answered: {reply!r}")
    assert reply.startswith(b"HTTP/1.1 200"), f"late request lost: {reply!r}\n{c.tail()}"
    assert reply.endswith(str(owner).encode())
    assert c.wait_exit() == 0


def keep_alive_exchange(sock: socket.socket, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """One keep-alive request on sock: (status, headers, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the response; got {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in
               (line.partition(b":") for line in lines[1:])}
    while len(body) < int(headers[b"content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_keep_alive_client_of_a_stopping_worker_is_answered_and_asked_to_close(corral):
    """A client that reuses its idle keep-alive connection while the worker drains gets its
    answer with `Connection: close`, then the connection closes: it moves to another worker
    rather than race uvicorn's closing of idle connections at shutdown."""
    c = corral.start(*COMMON, "--graceful-timeout", "20s", workers=1)
    old = c.worker_pids()[0]
    sock = socket.create_connection(("127.0.0.1", c.port), timeout=EVENT_DEADLINE)
    slow = InflightRequest(c.port, "/sleep?s=3")  # keeps the old worker draining a while
    try:
        status, headers, body = keep_alive_exchange(sock, "/pid")
        assert (status, body, headers.get(b"connection")) == (200, str(old).encode(), None)
        assert c.wait_taken(slow) == old
        mark = c.mark()
        c.send_signal(signal.SIGHUP)
        c.wait_for_log(r"reload to generation 1 complete", after=mark)
        answers = []
        while headers.get(b"connection") != b"close":
            time.sleep(0.05)
            status, headers, body = keep_alive_exchange(sock, "/pid")
            answers.append((status, body.decode(), headers.get(b"connection")))
            assert len(answers) < 40, f"never asked to close: {answers}"
        print(f"answers on the reused connection after the reload: {answers}")
        assert all(status == 200 for status, _, _ in answers), answers
        assert answers[-1][1] == str(old), "asked to close by a worker other than the old one"
        assert sock.recv(1) == b"", "the connection stayed open after Connection: close"
    finally:
        sock.close()
    slow.join(EVENT_DEADLINE)
    assert slow.status == 200


# --------------------------------------------------------------------------------------------
# 8. A reload whose new code fails to boot
# --------------------------------------------------------------------------------------------


def test_failed_reload_keeps_old_workers_serving(corral, tmp_path):
    flag = tmp_path / "fail-to-boot"
    c = corral.start(*COMMON, app="apps.flag_boot:app", workers=2,
                     env={"FLAG_BOOT_FILE": str(flag)})
    old = set(c.worker_pids().values())
    with Load(c.port) as load:
        flag.touch()
        mark = c.mark()
        c.send_signal(signal.SIGHUP)
        c.wait_for_log(r"reload to generation 1 failed; the old workers keep serving",
                       after=mark)
        c.wait_for_log(r"state Reloading -> Running \(reload failed\)", after=mark)
        h = health(c)
        print("/healthz after the failed reload:", h)
        assert "flag file present" in h.get("reload_error", ""), h
        assert "flag file present" in c.stderr_text()
        ready = c.admin("/ready", timeout=5)
        assert ready.status == 200 and "reload_error" in ready.text, ready.text
        after_failure = time.monotonic()
        load.wait_ok(since=after_failure)
        assert all(pid_alive(pid) for pid in old)
        served_by = {r.pid for gen in load.gens.values() for r in gen.snapshot()
                     if r.started >= after_failure and r.outcome == "ok"}
        assert served_by <= old, f"served by {served_by}, old workers {old}"
        assert c.running

        flag.unlink()
        mark = c.mark()
        c.send_signal(signal.SIGHUP)
        c.wait_for_log(r"reload to generation 2 complete", after=mark)
        load.wait_ok(since=time.monotonic())
        load.assert_nothing_lost("failed reload, then a good one")
    h = health(c)
    assert "reload_error" not in h, h
    assert not set(c.worker_pids().values()) & old
    assert_clean_exits(c, ("reloaded",), after=mark)
