"""corral as PID 1 and as the reaper of its workers' orphans (issue 3, "PID 1 and plain-child
duties"): the kernel delivers to PID 1 only the signals it has a handler for (signal(7),
pid_namespaces(7)), and orphans are reparented to it and must be reaped (wait(2)).

"ns" tests run corral as PID 1 of a new pid namespace with `unshare -p -f --mount-proc` (the
tests run as root), the way a container runtime starts an ENTRYPOINT. Signals are sent from the
test, that is from outside the namespace, to corral's host pid (the child of unshare): the
kernel drops every such signal that PID 1 has left at its default action, so only a real
handler lets corral act on it. Worker pids in corral's log are pids inside the namespace;
namespace_members() translates them.

Orphans come from apps/procs.py: GET /orphans double-forks grandchildren of a worker, which are
reparented to corral (PID 1, or a child subreaper otherwise) and must be reaped by it without
ever being taken for workers; /metrics counts them in corral_orphans_reaped_total.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import (EVENT_DEADLINE, INTEGRATION_DIR, PYTHON, InflightRequest, _proc_stat,
                      children_of, metric, namespace_members, pid_alive, proc_state,
                      server_side_of, socket_owner, wait_template, wait_until, without_template)

if os.geteuid() != 0:
    pytest.skip("PID namespaces (unshare -p) need root", allow_module_level=True)

SIGEXEC = str(INTEGRATION_DIR / "helpers" / "sigexec.py")
# Every signal corral acts on or must survive, plus SIGCHLD for reaping.
HANDLED = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTIN", "SIGTTOU",
           "SIGTSTP", "SIGCHLD"]
# Signals corral must survive without stopping (they are not stop requests).
NOT_A_STOP = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGTSTP"]
WORKER_EXITED = re.compile(r"worker \d+ exited \(pid (\d+)\)")


def status_fields(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in
                                                     text.splitlines())}


def caught(pid: int) -> int:
    return int(status_fields(pid)["SigCgt"], 16)


def wait_metric(c, name: str, expected: int, what: str) -> None:
    seen = []

    def reached():
        seen.append(metric(c, name))
        assert seen[-1] <= expected, f"{name} is {seen[-1]}, more than the {expected} {what}"
        return seen[-1] == expected

    wait_until(reached, EVENT_DEADLINE, f"{name} to reach {expected} ({what}); last value "
               f"{seen[-1] if seen else None}", interval=0.05)


def zombies(pids) -> list[int]:
    return [pid for pid in pids if proc_state(pid) == "Z"]


def worker_exits(c) -> list[int]:
    return [int(m.group(1)) for m in c.find_log(WORKER_EXITED)]


# --------------------------------------------------------------------------------------------
# Signals as PID 1
# --------------------------------------------------------------------------------------------


def test_pid1_has_a_real_handler_for_every_signal_it_acts_on(corral):
    c = corral.start(pidns=True, workers=1)
    status = status_fields(c.main_pid)
    assert status["NSpid"].split()[-1] == "1", f"corral is not PID 1 of its namespace: {status}"
    # The worker template starts first; it forks the worker through a middle process.
    assert wait_template(c) == namespace_members(c.main_pid)[2], "pid 2 should be the template"
    assert [pid for _, pid in c.spawns()] == [4], "the first worker should be pid 4 in the ns"
    mask = int(status["SigCgt"], 16)
    missing = [name for name in HANDLED if not mask & (1 << (getattr(signal, name) - 1))]
    assert not missing, (f"as PID 1 corral has no handler for {missing} (SigCgt {mask:#x}): the "
                         f"kernel drops these signals")


def _taken_by(c, request: InflightRequest) -> int:
    """The host pid of the process in corral's namespace that accepted the request and read it."""

    def taken():
        row = server_side_of(c.port, request.local_port)
        if row is None or row["inode"] == 0 or row["rx_queue"] != 0:
            return None
        return socket_owner(row["inode"], namespace_members(c.main_pid).values())

    return wait_until(taken, EVENT_DEADLINE, f"a worker to take {request!r}")


def test_pid1_sigterm_from_outside_the_namespace_drains_and_exits_0(corral, tmp_path):
    c = corral.start("--graceful-timeout", "20s", app="apps.hold:app", pidns=True, workers=2)
    wait_template(c)
    members = without_template(namespace_members(c.main_pid))
    assert len(members) == 3, f"expected corral and 2 workers in the namespace: {members}"
    # Held until the drain has started: a request that merely slept could be answered, and
    # its connection gone, before a poll on a busy machine saw a worker take it.
    release = tmp_path / "release"
    request = InflightRequest(c.port, f"/hold?file={release}")
    worker = _taken_by(c, request)
    assert worker != c.main_pid

    os.kill(c.main_pid, signal.SIGTERM)  # from the host: si_pid is 0 inside the namespace
    c.wait_for_log(r"state Running -> Drain\w+ \(SIGTERM\)", timeout=5)
    release.touch()
    rc = c.wait_exit()
    request.join(10)
    assert rc == 0, f"SIGTERM must drain and exit 0, got {rc}; log:\n{c.tail()}"
    assert request.status == 200, f"the in-flight request was not completed: {request}"
    drained = c.find_log(r"worker \d+ exited \(pid \d+\): .* \(drained\)")
    assert len(drained) == 2, f"both workers should have drained; log:\n{c.tail()}"
    left = [pid for pid in members.values() if pid_alive(pid)]
    assert not left, f"processes of the namespace outlived corral: {left}"


def test_pid1_survives_signals_that_are_not_stop_requests(corral):
    """Sent from outside the namespace, one after the other: corral logs each one (so it has a
    handler and the signal arrived) and goes on running and serving; none of them stops or
    kills it (SIGHUP reloads and SIGTTIN/SIGTTOU scale, which is fine)."""
    c = corral.start(pidns=True, workers=1)
    start = c.mark()
    for name in NOT_A_STOP:
        mark = c.mark()
        os.kill(c.main_pid, getattr(signal, name))
        c.wait_for_log(rf"\b{name}\b", after=mark, timeout=10)
        assert proc_state(c.main_pid) not in ("T", "t", None), f"{name} stopped corral"
        assert c.admin("/healthz", timeout=5).status == 200, f"after {name}"
        assert c.get("/").status == 200, f"after {name}"
    assert not c.find_log(r"Drain\w+|Stopped", after=start), f"a stop was started:\n{c.tail()}"
    assert c.running


@pytest.mark.parametrize("name, expected", [("SIGINT", 130), ("SIGQUIT", 0)])
def test_pid1_quick_stops_exit_codes(corral, name, expected):
    c = corral.start(pidns=True, workers=2)
    os.kill(c.main_pid, getattr(signal, name))
    rc = c.wait_exit()
    assert rc == expected, f"{name} to PID 1: exit {rc}, expected {expected}; log:\n{c.tail()}"


def test_pid1_boot_failure_exits_3(corral):
    c = corral.start(app="apps.broken_import:app", pidns=True, workers=2, wait_ready=False)
    rc = c.wait_exit()
    assert rc == 3, f"a broken app must exit 3 as PID 1 too, got {rc}; log:\n{c.tail()}"


def test_pid1_bad_usage_exits_2(corral):
    c = corral.start(pidns=True, workers="lots", wait_ready=False)
    rc = c.wait_exit()
    assert rc == 2, f"bad usage must exit 2 as PID 1 too, got {rc}; log:\n{c.tail()}"
    assert "lots" in c.stderr_text()


# --------------------------------------------------------------------------------------------
# Reaping
# --------------------------------------------------------------------------------------------


def test_pid1_reaps_a_hundred_double_forked_orphans(corral):
    c = corral.start(app="apps.procs:app", pidns=True, workers=2)
    workers = set(c.worker_pids().values())
    orphans = json.loads(c.get("/orphans?n=100").text)
    assert len(set(orphans)) == 100

    wait_metric(c, "corral_orphans_reaped_total", 100, "orphans made by the worker")

    def only_corral_and_workers():
        members = without_template(namespace_members(c.main_pid))
        return set(members) == {1} | workers and members

    members = wait_until(only_corral_and_workers, EVENT_DEADLINE,
                         "the namespace to hold nothing but corral and its workers")
    assert not zombies(members.values())
    assert not worker_exits(c), f"orphans were taken for workers:\n{c.tail()}"
    assert c.spawns() and len(c.spawns()) == 2, f"extra spawns: {c.spawns()}"
    assert c.admin("/ready").status == 200
    assert c.get("/").status == 200


def test_pid1_reaps_orphans_that_all_exit_at_the_same_moment(corral):
    """Coalesced SIGCHLDs (catatonit #4): 50 orphans end together, three times over; every one
    is reaped, none is left a zombie, and supervision is not disturbed."""
    c = corral.start(app="apps.procs:app", pidns=True, workers=1)
    worker = c.worker_pids()[0]
    for round_ in range(1, 4):
        orphans = json.loads(c.get("/orphans?n=50&hold=1").text)
        members = namespace_members(c.main_pid)
        missing = [pid for pid in orphans if pid not in members]
        assert not missing, f"held orphans {missing} are not alive"
        parents = {pid: int(_proc_stat(members[pid])[1]) for pid in orphans}
        wrong = {pid: ppid for pid, ppid in parents.items() if ppid != c.main_pid}
        assert not wrong, f"orphans not reparented to corral (host pid {c.main_pid}): {wrong}"

        assert c.get("/release").text == "1"
        wait_metric(c, "corral_orphans_reaped_total", 50 * round_, f"orphans after round {round_}")
        wait_until(lambda: not set(orphans) & set(namespace_members(c.main_pid)),
                   EVENT_DEADLINE, "the released orphans to be gone")
    assert c.worker_pids() == {0: worker}
    assert not worker_exits(c), f"orphans were taken for workers:\n{c.tail()}"
    assert c.admin("/ready").status == 200


def test_not_pid1_corral_is_the_subreaper_of_its_workers_orphans(corral):
    """Not PID 1: orphans come to corral (PR_SET_CHILD_SUBREAPER), not to the host's init."""
    c = corral.start(app="apps.procs:app", workers=1)
    assert proc_state(c.pid) and status_fields(c.pid)["NSpid"].split()[-1] != "1"
    worker = c.worker_pids()[0]
    orphans = json.loads(c.get("/orphans?n=20&hold=1").text)
    parents = {pid: int(_proc_stat(pid)[1]) for pid in orphans}
    wrong = {pid: ppid for pid, ppid in parents.items() if ppid != c.pid}
    assert not wrong, f"orphans not reparented to corral (pid {c.pid}): {wrong}"

    assert c.get("/release").text == "1"
    wait_metric(c, "corral_orphans_reaped_total", 20, "released orphans")
    wait_until(lambda: not any(proc_state(pid) for pid in orphans), EVENT_DEADLINE,
               "the orphans to be reaped")
    assert not worker_exits(c), f"orphans were taken for workers:\n{c.tail()}"
    assert c.worker_pids() == {0: worker}


def test_every_worker_killed_at_the_same_moment_is_noticed_and_replaced(corral):
    c = corral.start(workers=4)
    for round_ in range(2):
        victims = list(c.wait_ready(4).values())
        mark = c.mark()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        for pid in victims:
            c.wait_for_log(rf"worker \d+ exited \(pid {pid}\): killed by SIGKILL \(crash\)",
                           after=mark)
        for slot in range(4):
            c.wait_for_log(rf"worker {slot} spawned", after=mark)
        replaced = c.wait_ready(4)
        assert not set(replaced.values()) & set(victims), f"round {round_}: {replaced}"
        assert not zombies(children_of(c.pid)), f"round {round_}: zombie children of corral"
    assert c.get("/").status == 200


def test_a_child_corral_inherits_is_reaped_and_changes_nothing(corral):
    """`sh -c 'sleep 0.3 & exec corral ...'`: the sleep becomes corral's child; its exit is
    reaped as an orphan and touches no worker (bubblewrap #146)."""
    c = corral.start(wrapper=["/bin/sh", "-c", 'sleep 0.3 & exec "$@"', "sh"], workers=2)
    workers = c.worker_pids()
    wait_metric(c, "corral_orphans_reaped_total", 1, "the inherited sleep")
    assert not zombies(children_of(c.pid))
    assert not worker_exits(c), f"the sleep was taken for a worker:\n{c.tail()}"
    assert c.worker_pids() == workers and len(c.spawns()) == 2
    assert c.admin("/ready").status == 200


def test_a_child_that_exited_before_corral_started_is_reaped(corral):
    """The parent forks a child that exits before it execs corral: corral inherits a zombie
    whose SIGCHLD was delivered before corral had a handler. A reaper that only reaps when a
    SIGCHLD arrives leaves it a zombie until some worker happens to exit (tini reaps at least
    once a second for this reason)."""
    c = corral.start(wrapper=[PYTHON, SIGEXEC, "--zombie", "--"], workers=1)
    inherited = [pid for pid in children_of(c.pid) if pid not in c.all_worker_pids()]
    print(f"children of corral besides the worker: {inherited} "
          f"(states {[proc_state(pid) for pid in inherited]})")

    deadline = time.monotonic() + 3
    while zombies(children_of(c.pid)) or metric(c, "corral_orphans_reaped_total") != 1:
        if time.monotonic() > deadline:
            pytest.fail(f"3 s after corral started, the child it inherited is still a zombie: "
                        f"{zombies(children_of(c.pid))} (corral_orphans_reaped_total "
                        f"{metric(c, 'corral_orphans_reaped_total')})")
        time.sleep(0.1)
    assert not worker_exits(c)


@pytest.mark.parametrize("name, expected_rc", [("SIGTERM", 0), ("SIGINT", 130)])
def test_a_workers_own_children_do_not_outlive_corral(corral, name, expected_rc):
    """Checklist item 10 (tini test/pgroup, dumb-init spawn_and_kill_pipeline): a worker's own
    subprocess (here `sleep 600`, in the worker's process group) is stopped with it. As PID 1
    the kernel would kill it when corral exits; as a plain child of a shell nothing does, and
    it keeps running, reparented to the host's init, after corral has exited."""
    c = corral.start(app="apps.procs:app", workers=1)
    worker = c.worker_pids()[0]
    child = int(c.get("/child?s=600").text)
    assert os.getpgid(child) == os.getpgid(worker)
    try:
        c.send_signal(getattr(signal, name))
        assert c.wait_exit() == expected_rc
        deadline = time.monotonic() + 2
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_alive(child):
            pytest.fail(f"after corral stopped ({name}, exit {c.returncode}), worker {worker}'s "
                        f"child {child} (`sleep 600`) is still running, now a child of pid "
                        f"{_proc_stat(child)[1]}")
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)
