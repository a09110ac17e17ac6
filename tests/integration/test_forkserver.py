"""--start-method forkserver (the default): a worker template, a Python process that has
imported uvicorn, forks new workers, which are then corral's own children like any other
(worker/shim.py, class Template; supervisor/worker_template.hpp).

The hygiene every worker gets whichever way it started (signal sets, descriptors, a SIGKILLed
corral) is checked for forked workers by the tests of test_process_options.py and
test_shutdown.py, parametrized with Corral.fork_workers(). Here: what is the template's own, and
a side-by-side comparison of a forked worker with a spawned one, since two pieces of code make
them clean (the shim's Template.become_worker, and ChildSetup in corral's posix spawner).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (EVENT_DEADLINE, _proc_stat, children_of, fd_targets, is_worker_template,
                      metric, pid_alive, wait_template, wait_until)


def templates_of(c) -> list[int]:
    return [pid for pid in children_of(c.pid) if is_worker_template(pid)]


def test_forked_workers_are_corrals_children_each_in_its_own_group(corral):
    c = corral.start("--no-access-log", workers=2)
    template = wait_template(c)
    forked = c.fork_workers()
    for pid in forked.values():
        fields = _proc_stat(pid)
        assert int(fields[1]) == c.pid, f"worker {pid}'s parent is {fields[1]}, not corral"
        assert int(fields[2]) == pid, f"worker {pid} is in process group {fields[2]}"
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "corral-worker"
    assert int(_proc_stat(template)[2]) == template, "the template has its own group"
    pids = {int(c.get("/pid").text) for _ in range(40)}
    assert pids <= set(forked.values()) and pids, f"served by {pids}, forked {forked}"
    logged = len(c.find_log(r"spawned \(pid \d+\).*, forked from the template"))
    assert metric(c, "corral_worker_forks_total") == logged, "the metric counts the forks"
    print(c.tail())


def test_a_killed_template_is_replaced_and_workers_keep_being_replaced(corral):
    c = corral.start("--no-access-log", workers=2)
    first = wait_template(c)
    c.wait_for_log(rf"worker template ready \(pid {first}\)")
    os.kill(first, signal.SIGKILL)
    c.wait_for_log(rf"worker template \(pid {first}\) killed by SIGKILL; the next worker "
                   r"starts a new one")
    assert c.get("/").status == 200
    forked = c.fork_workers()  # the first replacement starts afresh, with a new template
    second = wait_template(c)
    assert second != first
    assert all(pid_alive(pid) for pid in forked.values())
    assert c.admin("/ready").status == 200


def test_reload_forks_from_a_new_template_and_re_imports_the_app(corral, tmp_path):
    version = tmp_path / "version"
    version.write_text("1")
    c = corral.start("--no-access-log", app="apps.versioned:app", workers=2,
                     env={"VERSION_FILE": str(version)})
    c.fork_workers()
    old_template = wait_template(c)
    assert {c.get("/version").text for _ in range(20)} == {"1"}

    version.write_text("2")
    mark = c.mark()
    c.send_signal(signal.SIGHUP)
    c.wait_for_log(r"reload to generation 1 complete", after=mark)
    wait_until(lambda: not pid_alive(old_template), EVENT_DEADLINE, "the old template to go")
    new_template = wait_template(c)
    # Workers forked from the new template after the reload import the new code too.
    forked = c.fork_workers()
    assert new_template in templates_of(c)
    answers = {c.get("/version").text for _ in range(20)}
    assert answers == {"2"}, f"after the reload, workers {forked} answered {answers}"


def test_start_method_spawn_starts_every_worker_afresh(corral):
    c = corral.start("--no-access-log", "--start-method", "spawn", workers=2)
    victim = c.worker_pids()[0]
    mark = c.mark()
    os.kill(victim, signal.SIGKILL)
    spawned = c.wait_for_log(r"worker 0 spawned \(pid (\d+)\)(.*)", after=mark)
    assert spawned[2] == "", spawned[0]
    c.wait_ready(2)
    time.sleep(0.5)  # a template would have started with the first worker
    assert not templates_of(c), "a worker template runs with --start-method spawn"


def test_a_template_that_does_not_answer_is_replaced_and_the_worker_starts_afresh(corral):
    """A stopped template (SIGSTOP stands for one stuck in swap, say) cannot answer: corral
    gives up on it after 500 ms, kills it, starts the worker as a fresh interpreter, and forks
    from a new template afterwards."""
    c = corral.start("--no-access-log", workers=2)
    stuck = wait_template(c)
    os.kill(stuck, signal.SIGSTOP)
    mark = c.mark()
    os.kill(c.worker_pids()[0], signal.SIGKILL)
    c.wait_for_log(rf"worker template \(pid {stuck}\) did not answer within 500 ms; starting "
                   r"workers afresh", after=mark)
    spawned = c.wait_for_log(r"worker 0 spawned \(pid (\d+)\)(.*)", after=mark)
    assert spawned[2] == "", f"expected a fresh interpreter: {spawned[0]}"
    c.wait_ready(2)
    wait_until(lambda: not pid_alive(stuck), EVENT_DEADLINE, "the stuck template to be killed")
    forked = c.fork_workers()  # a new template takes over
    assert wait_template(c) != stuck
    assert all(pid_alive(pid) for pid in forked.values())


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_and_the_template_show_short_titles(corral, method):
    """ps aux, top -c and htop show a worker as `corral worker <slot>: <app>` and the template
    as `corral template: <app>`, not as python3 with the whole shim for arguments, so that
    `ps aux | grep <app>` finds them; their process names (comm) are corral-worker and
    corral-template."""
    app = "apps.basic:app"
    c = corral.start("--no-access-log", "--start-method", method, app=app, workers=2)
    workers = c.fork_workers() if method == "forkserver" else c.worker_pids()
    expected = {pid: (f"corral worker {slot}: {app}", "corral-worker")
                for slot, pid in workers.items()}
    if method == "forkserver":
        expected[wait_template(c)] = (f"corral template: {app}", "corral-template")
    else:
        assert not templates_of(c)
    for pid, (title, name) in expected.items():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert cmdline == title.encode() + b"\0", f"pid {pid}: cmdline {cmdline[:200]!r}"
        assert Path(f"/proc/{pid}/comm").read_text().strip() == name
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,comm=,args="], capture_output=True, text=True,
                        timeout=30, check=True).stdout
    found = {int(line.split()[0]): line.split(None, 2)[1:]
             for line in ps.splitlines() if app in line}
    print("ps lines naming the app:", found)
    for pid, (title, name) in expected.items():
        assert found.get(pid) == [name, title], f"ps shows pid {pid} as {found.get(pid)}"


def hygiene(c, pid: int) -> dict:
    """What a clean worker starts with, as comparable values: signal sets, descriptors (by kind,
    stdio as corral's own), parent-death signal, process group, parent."""
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines())
    corral_stdio = {fd: target for fd, target in fd_targets(c.pid).items() if fd <= 2}
    descriptors = []
    for fd, target in fd_targets(pid).items():  # before any request: no connection is open
        if fd <= 2:
            descriptors.append(f"{fd}: corral's" if corral_stdio.get(fd) == target else target)
        else:
            descriptors.append(target.split(":[", 1)[0] if target[:7] in ("socket:", "pipe:[")
                               else target)
    fields = _proc_stat(pid)
    return {
        "blocked": status["SigBlk"].strip(),
        "ignored": status["SigIgn"].strip(),
        "caught": status["SigCgt"].strip(),
        "descriptors": sorted(descriptors),
        "parent-death signal": int(c.get("/pdeathsig").text),
        "own process group": int(fields[2]) == pid,
        "parent is corral": int(fields[1]) == c.pid,
    }


def test_forked_and_spawned_workers_start_equally_clean(corral):
    forked_corral = corral.start("--no-access-log", workers=1)
    forked = hygiene(forked_corral, forked_corral.fork_workers()[0])
    spawned_corral = corral.start("--no-access-log", "--start-method", "spawn", workers=1)
    spawned = hygiene(spawned_corral, spawned_corral.worker_pids()[0])
    print(f"forked:  {forked}\nspawned: {spawned}")
    assert forked == spawned
    assert int(forked["blocked"], 16) == 0
    assert forked["parent-death signal"] == signal.SIGKILL
    assert forked["own process group"] and forked["parent is corral"]
