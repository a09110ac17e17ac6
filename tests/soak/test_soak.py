"""Chaos soak: corral keeps serving, answers its probes and cleans up after itself whatever
happens around it, for a fixed time under steady load.

corral runs as PID 1 of its own pid namespace, with 2 workers of apps.procs:app, under two loads
(keep-alive connections, some long-lived and some renewed often, and a new connection per
request). Meanwhile, at random moments (the seed is printed; CORRAL_SOAK_SEED repeats a run):
a worker is SIGKILLed, or its event loop blocked past --timeout; corral gets SIGHUP, SIGTTIN or
SIGTTOU; a worker double-forks orphans; and hostile clients hold slowloris connections to the
admin port and send it garbage. /healthz is probed every 100 ms throughout.

At the end it asserts: corral is alive and every slot of its target is served by a ready worker;
no zombie is left in the namespace; corral's descriptors and anonymous memory are back to their
baseline (within a small margin); every failed request was on a connection held by a worker
that was SIGKILLed or blocked (counted per fault); every probe was answered 200.

CI runs it for 60 s; `CORRAL_SOAK_SECONDS=600 /usr/bin/python3 -m pytest -s tests/soak` runs a
longer one (see the README's Soak section).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from integration_conftest import (EVENT_DEADLINE, InflightRequest, fd_targets, namespace_members,
                                  proc_state, server_side_of, socket_owner, tcp_table,
                                  wait_until)
from loadgen import FAILURES, LoadGenerator

SECONDS = float(os.environ.get("CORRAL_SOAK_SECONDS", "60"))
SEED = int(os.environ.get("CORRAL_SOAK_SEED", str(int(time.time()))))
# A probe must be answered (within the prober's 5 s socket timeout): the latencies are printed,
# not asserted, since a shared machine makes any wall-clock figure noisy. The target is a
# Kubernetes probe's default timeoutSeconds of 1 s, with a median well under it.
HUNG_AFTER = 2  # --timeout, seconds
# Compared on anonymous memory (RssAnon), the heap and stacks a leak grows: the code pages
# corral unmaps once it serves (runtime/resident_memory.cpp) come back as the loop runs them,
# which moves VmRSS without a byte leaked.
ANON_MARGIN_KIB = 2048


@dataclass
class Fault:
    kind: str
    at: float
    pid: int | None = None
    ports: set[int] = field(default_factory=set)  # client ports of the connections it held
    failed: int = 0
    wall: float = field(default_factory=time.time)  # to find it in corral's log


def resident_kib(pid: int) -> dict[str, int]:
    """VmRSS and RssAnon of `pid`, in KiB."""
    wanted = ("VmRSS", "RssAnon")
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            fields[key] = int(value.split()[0])
    return fields


def live_workers(corral_pid: int) -> list[int]:
    """The host pids of corral's workers now: its children that lead their own process group
    (its orphans were started in a worker's group) and are not the worker template."""
    workers = []
    for host in namespace_members(corral_pid).values():
        try:
            stat = Path(f"/proc/{host}/stat").read_text()
            comm = Path(f"/proc/{host}/comm").read_text().strip()
        except OSError:
            continue
        state, ppid, pgid = stat[stat.rindex(")") + 2:].split()[:3]
        if int(ppid) == corral_pid and int(pgid) == host and state != "Z" and comm != "corral-template":
            workers.append(host)
    return workers


def client_ports(worker: int, server_port: int) -> set[int]:
    """The client ports of every connection to `server_port` that `worker` holds (none once it
    is gone)."""
    try:
        targets = fd_targets(worker).values()
    except OSError:
        return set()
    inodes = {int(target[8:-1]) for target in targets if target.startswith("socket:[")}
    return {row["remote_port"] for row in tcp_table()
            if row["local_port"] == server_port and row["inode"] in inodes}


def kill(victim: int, corral_pid: int, port: int) -> Fault | None:
    """SIGSTOPs a worker (it accepts nothing more, so the snapshot of its connections is exact),
    then SIGKILLs it. Through a pidfd: the worker may have exited since it was listed, and its
    pid must not reach whatever process got it next."""
    try:
        pidfd = os.pidfd_open(victim)
    except ProcessLookupError:
        return None
    try:
        stat = Path(f"/proc/{victim}/stat").read_text()
        if int(stat[stat.rindex(")") + 2:].split()[1]) != corral_pid:
            return None  # not corral's child: the pid was reused before it was opened
        signal.pidfd_send_signal(pidfd, signal.SIGSTOP)
        wait_until(lambda: proc_state(victim) in ("T", "Z", None), EVENT_DEADLINE,
                   f"worker {victim} stopped")
        fault = Fault("kill", time.monotonic(), victim, client_ports(victim, port))
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return fault
    except (ProcessLookupError, FileNotFoundError):
        return None
    finally:
        os.close(pidfd)


def watch_blocked(fault: Fault, request, corral_pid: int, port: int) -> None:
    """Finds the worker that takes the /block request (it may sit in the listen queue while no
    worker serves), then records the connections it holds until it dies: its loop may accept a
    few more in the turn that read the request, before the handler blocks it."""
    def taken():
        row = server_side_of(port, request.local_port)
        if row is None or row["inode"] == 0 or row["rx_queue"] != 0:
            return None
        return socket_owner(row["inode"], live_workers(corral_pid))
    deadline = time.monotonic() + 60
    while fault.pid is None and time.monotonic() < deadline and not request.done:
        fault.pid = taken()
        time.sleep(0.01)
    fault.at = time.monotonic()
    while fault.pid is not None and proc_state(fault.pid) not in (None, "Z"):
        fault.ports |= client_ports(fault.pid, port)
        time.sleep(0.05)


class Prober(threading.Thread):
    """GET /healthz on a fresh connection every 100 ms; records (latency, status)."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.results, self.stop = port, [], threading.Event()

    def run(self):
        while not self.stop.wait(0.1):
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
                    reply = b""
                    while b"\r\n\r\n" not in reply:
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        reply += chunk
                status = int(reply[9:12]) if reply.startswith(b"HTTP/1.1 ") else 0
            except OSError:
                status = 0
            self.results.append((time.monotonic() - started, status))


class Hostile(threading.Thread):
    """Holds up to 300 slowloris connections to the admin port and sends it garbage."""

    def __init__(self, port: int, rng: random.Random):
        super().__init__(daemon=True)
        self.port, self.rng, self.stop, self.held = port, rng, threading.Event(), []

    def run(self):
        while not self.stop.wait(0.02):
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                if self.rng.random() < 0.5:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")  # and never the rest
                    self.held.append(sock)
                else:
                    sock.sendall(self.rng.randbytes(self.rng.randint(1, 12000)))
                    sock.close()
            except OSError:
                pass
            while len(self.held) > 300:
                self.held.pop(0).close()

    def close(self):
        self.stop.set()
        self.join(10)
        for sock in self.held:
            sock.close()


def test_soak(corral):
    rng = random.Random(SEED)
    print(f"soak: {SECONDS:g} s, seed {SEED}")
    c = corral.start("--timeout", f"{HUNG_AFTER}s", "--graceful-timeout", "5s",
                     "--max-requests", "400", "--max-requests-jitter", "100",
                     app="apps.procs:app", workers=2, pidns=True)
    port, corral_pid = c.port, c.main_pid
    loads = [LoadGenerator(port, "keepalive", threads=3, per_connection=[0, 40, 5], pause=0.01,
                           max_seconds=SECONDS + 120, max_requests=10**9),
             LoadGenerator(port, "close", threads=2, pause=0.02, max_seconds=SECONDS + 120,
                           max_requests=10**9)]
    for load in loads:
        load.start()
    time.sleep(2)
    # corral holds one control channel per worker: its other descriptors are what must return.
    def own_fds():
        return len(fd_targets(corral_pid)) - len(live_workers(corral_pid))
    baseline_fds, baseline_rss = own_fds(), resident_kib(corral_pid)
    prober, hostile = Prober(c.admin_port), Hostile(c.admin_port, rng)
    prober.start()
    hostile.start()

    faults: list[Fault] = []
    target = 2
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(1.0, 2.5))
        kind = rng.choice(["kill", "kill", "block", "hup", "ttin", "ttou", "orphans"])
        workers = live_workers(corral_pid)
        if kind == "kill" and workers:
            victim = rng.choice(workers)
            fault = kill(victim, corral_pid, port)
            if fault:
                faults.append(fault)
        elif kind == "block":
            fault = Fault("block", time.monotonic())
            faults.append(fault)
            request = InflightRequest(port, f"/block?s={HUNG_AFTER * 2}")
            threading.Thread(target=watch_blocked, args=(fault, request, corral_pid, port),
                             daemon=True).start()
        elif kind == "hup":
            os.kill(corral_pid, signal.SIGHUP)
            faults.append(Fault("hup", time.monotonic()))
        elif kind == "ttin" and target < 3:
            os.kill(corral_pid, signal.SIGTTIN)
            target += 1
            faults.append(Fault("ttin", time.monotonic()))
        elif kind == "ttou" and target > 1:
            os.kill(corral_pid, signal.SIGTTOU)
            target -= 1
            faults.append(Fault("ttou", time.monotonic()))
        elif kind == "orphans":
            try:
                c.get("/orphans?n=2", timeout=10)
                faults.append(Fault("orphans", time.monotonic()))
            except OSError:
                pass

    # Recovery: every slot served again, the loads still running.
    def recovered():
        body = json.loads(c.admin("/healthz").text)
        workers = body["workers"]
        return workers["total"] == target and workers["ready"] == target == workers["alive"]
    wait_until(recovered, 60, f"{target} ready workers after the faults")
    time.sleep(1)
    for load in loads:
        load.stop(60)
    prober.stop.set()
    prober.join(10)
    hostile.close()

    assert c.running, c.tail()
    # No zombie in the namespace: corral (PID 1 there) reaped every orphan.
    def no_zombies():
        members = namespace_members(corral_pid)
        return [host for host in members.values() if proc_state(host) == "Z"] == []
    wait_until(no_zombies, EVENT_DEADLINE, "no zombie in corral's pid namespace")
    # Descriptors and memory back to the baseline once the admin clients have left.
    wait_until(lambda: own_fds() <= baseline_fds, EVENT_DEADLINE,
               f"corral's descriptors (but the workers' channels) back to {baseline_fds}")
    final_rss = resident_kib(corral_pid)

    results = [r for load in loads for r in load.results]
    failed = [r for r in results if r.outcome in FAILURES]
    unexplained = []
    for result in failed:
        cause = next((f for f in faults if f.ports and result.local_port in f.ports
                      and result.finished >= f.at), None)
        if cause is None:
            unexplained.append(result)
        else:
            cause.failed += 1
    latencies = [latency for latency, _ in prober.results]
    counts = {kind: sum(1 for f in faults if f.kind == kind)
              for kind in ("kill", "block", "hup", "ttin", "ttou", "orphans")}
    print(f"soak: {len(results)} requests, {len(failed)} failed "
          f"({sum(1 for r in results if r.outcome == 'idle_close')} idle-close races apart); "
          f"faults {counts}; failed per kill/block: "
          f"{[(f.kind, f.failed) for f in faults if f.kind in ('kill', 'block')]}")
    print(f"soak: /healthz {len(latencies)} probes, median {statistics.median(latencies) * 1000:.1f}"
          f" ms, max {max(latencies) * 1000:.1f} ms; corral's fds but the workers' channels "
          f"{baseline_fds} -> {own_fds()}, RSS {baseline_rss['VmRSS']} -> {final_rss['VmRSS']}"
          f" KiB, of it anonymous {baseline_rss['RssAnon']} -> {final_rss['RssAnon']} KiB")
    for result in unexplained[:10]:
        near = [(f.kind, f.pid, round(f.at - result.started, 2), time.strftime(
            "%H:%M:%S", time.gmtime(f.wall))) for f in faults if abs(f.at - result.started) < 12]
        print(f"soak: unexplained {result.outcome} on port {result.local_port}, started "
              f"{time.strftime('%H:%M:%S', time.gmtime(time.time() - (time.monotonic() - result.started)))}"
              f" UTC, faults near it (kind, pid, seconds after the request started): {near}")
    assert not unexplained, (f"{len(unexplained)} failed requests held by no killed or blocked "
                             f"worker: {unexplained[:5]}")
    assert all(status == 200 for _, status in prober.results), [
        r for r in prober.results if r[1] != 200][:5]
    assert final_rss["RssAnon"] <= baseline_rss["RssAnon"] + ANON_MARGIN_KIB, (baseline_rss,
                                                                                 final_rss)
    assert counts["kill"] and counts["block"], f"the run injected too few faults: {counts}"
