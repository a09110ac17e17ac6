"""Workers share the load: a keep-alive connection goes to the worker that holds the fewest,
so that clients which keep their connections open (a load balancer, wrk) are spread evenly
rather than taken by whichever worker woke first. The workers agree through the scoreboard
corral shares with them (worker/shim.py, Balancer)."""

import http.client
import threading
from pathlib import Path

import pytest

from conftest import EVENT_DEADLINE, wait_until


def open_connection(port: int) -> tuple[http.client.HTTPConnection, int]:
    """A keep-alive connection, and the pid of the worker that answered its first request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=EVENT_DEADLINE)
    conn.request("GET", "/pid")
    response = conn.getresponse()
    assert response.status == 200
    return conn, int(response.read())


def shares(pids: list[int], workers: dict[int, int]) -> dict[int, int]:
    counts = {pid: 0 for pid in workers.values()}
    for pid in pids:
        assert pid in counts, f"pid {pid} answered, which corral never logged ({workers})"
        counts[pid] += 1
    return counts


@pytest.mark.parametrize("workers", [2, 3])
def test_connections_opened_one_after_another_alternate(corral, workers):
    """Each new connection arrives while every worker is idle: one that holds fewer takes it.
    (Without balancing, the worker the kernel wakes first takes most of them.) One worker may
    be slow to wake on a busy machine, and lose a connection to a peer: hence the slack of 1."""
    c = corral.start(workers=workers)
    ready = c.wait_ready(workers)
    conns, pids = [], []
    for _ in range(10 * workers):
        conn, pid = open_connection(c.port)
        conns.append(conn)
        pids.append(pid)
    counts = shares(pids, ready)
    print(f"connections per worker: {counts}; in order: {pids}")
    assert max(counts.values()) - min(counts.values()) <= 2, counts
    for conn in conns:
        conn.close()


def test_connections_opened_at_once_spread_evenly(corral):
    """40 clients connect at the same moment and keep their connections, each sending requests
    one after another: each worker holds its share, within 20%."""
    c = corral.start(workers=2)
    ready = c.wait_ready(2)
    clients, requests = 40, 20
    start = threading.Barrier(clients)
    pids: list[int] = []
    failures: list[str] = []

    def client():
        try:
            start.wait(EVENT_DEADLINE)
            conn, pid = open_connection(c.port)
            for _ in range(requests):
                conn.request("GET", "/pid")
                response = conn.getresponse()
                assert int(response.read()) == pid, "a keep-alive connection changed worker"
            conn.close()
            pids.append(pid)
        except Exception as exc:  # noqa: BLE001 - reported below, with the others
            failures.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(EVENT_DEADLINE * 2)
    assert not failures, failures
    counts = shares(pids, ready)
    print(f"connections per worker: {counts}")
    assert all(abs(n - clients / 2) <= 0.2 * clients / 2 for n in counts.values()), counts


def test_a_blocked_worker_with_fewer_connections_does_not_hold_new_ones(corral, tmp_path):
    """A worker whose event loop is blocked holds fewer connections than its peer: new
    connections go to the peer and are served while the block lasts, rather than waiting for
    the blocked worker."""
    c = corral.start(app="apps.hold:app", workers=2)
    ready = c.wait_ready(2)
    # Until each worker holds one and one holds more: on a busy machine a worker can be slow
    # to wake and leave a connection or two to its peer.
    conns = []
    counts = shares([], ready)
    while min(counts.values()) == 0 or len(set(counts.values())) == 1:
        assert len(conns) < 40, f"40 connections and still {counts}"
        conns.append(open_connection(c.port))
        counts = shares([pid for _, pid in conns], ready)
    fewer = min(counts, key=counts.get)
    other = next(pid for pid in counts if pid != fewer)
    fewer_conn = next(conn for conn, pid in conns if pid == fewer)
    release = tmp_path / "release"
    blocked = threading.Thread(target=lambda: (fewer_conn.request("GET", f"/hold?file={release}"),
                                               fewer_conn.getresponse().read()))
    blocked.start()
    # Held: sleeping in the app's loop of short sleeps, not waiting for events.
    wait_until(lambda: Path(f"/proc/{fewer}/wchan").read_text() == "hrtimer_nanosleep",
               EVENT_DEADLINE, f"worker {fewer} to hold its event loop")
    new_pids = [open_connection(c.port)[1] for _ in range(6)]
    assert blocked.is_alive(), "the held worker answered before it was released"
    assert new_pids == [other] * 6, (new_pids, fewer, other)
    release.touch()
    blocked.join(EVENT_DEADLINE)
    assert not blocked.is_alive()
