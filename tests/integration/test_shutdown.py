"""Shutdown: SIGTERM drains, the graceful deadline is enforced, SIGINT/SIGQUIT are quick, and a
SIGKILLed corral leaves no worker behind."""

import os
import signal
import socket
import time

import pytest

from conftest import (EVENT_DEADLINE, EXIT_DEADLINE, EXITED, INTEGRATION_DIR, PYTHON,
                      InflightRequest, children_of, is_worker_template, pid_alive, wait_until)


def start_slow_requests(c, count: int, seconds: float) -> list[InflightRequest]:
    """`count` concurrent /sleep requests, each one accepted and read by a worker on return."""
    requests = [InflightRequest(c.port, f"/sleep?s={seconds}") for _ in range(count)]
    for request in requests:
        c.wait_taken(request)
    return requests


def assert_no_worker_alive(c) -> None:
    alive = [pid for pid in c.all_worker_pids() if pid_alive(pid)]
    assert not alive, f"worker pids {alive} alive after corral exited"


def test_sigterm_drains_in_flight_requests(corral):
    c = corral.start("--graceful-timeout", "20s", workers=2)
    workers = c.worker_pids()
    assert c.admin("/ready").status == 200
    requests = start_slow_requests(c, 4, 3)
    mark = c.mark()

    c.send_signal(signal.SIGTERM)

    # /ready turns 503 at once, while the requests are still running.
    def ready_503():
        resp = c.admin("/ready", timeout=5)
        return resp if resp.status == 503 else None

    ready = wait_until(ready_503, 10, "/ready to answer 503 after SIGTERM")
    in_flight = [r for r in requests if not r.done]
    print(f"/ready during drain: {ready.status} {ready.text!r}; in flight: {len(in_flight)}")
    assert in_flight, "/ready turned 503 only after every in-flight request had finished"
    health = c.admin("/healthz", timeout=5)
    print(f"/healthz during drain: {health.status} {health.text!r}")
    assert health.status == 200, "workers are alive during the drain: /healthz must say 200"
    c.wait_for_log(r"state Running -> Drain\w+", after=mark)

    for request in requests:
        request.join(EVENT_DEADLINE)
    failed = [r for r in requests if r.status != 200]
    assert not failed, f"requests that did not complete with 200 during the drain: {failed}"
    assert all(r.body.strip() for r in requests)

    rc = c.wait_exit()
    assert rc == 0, f"exit code {rc} after a clean drain; log:\n{c.tail()}"
    assert_no_worker_alive(c)
    for slot, pid in workers.items():
        exit_line = c.wait_for_log(rf"worker {slot} exited \(pid {pid}\): .*", after=mark)
        assert EXITED.search(exit_line.group(0))["why"] == "drained", exit_line.group(0)
    assert c.find_log(r"state .* -> Stopped", after=mark), "no final state transition logged"


def test_request_longer_than_graceful_timeout_is_killed_at_deadline(corral):
    c = corral.start("--graceful-timeout", "1s", workers=2)
    slow = start_slow_requests(c, 1, 30)[0]
    victim = c.wait_taken(slow)  # already taken; gives the pid that holds the request
    mark = c.mark()

    sent = time.monotonic()
    c.send_signal(signal.SIGTERM)
    rc = c.wait_exit(EVENT_DEADLINE)
    elapsed = time.monotonic() - sent
    print(f"corral exited {elapsed:.3f} s after SIGTERM with --graceful-timeout 1s (rc {rc})")

    assert rc == 0, f"exit code {rc}; log:\n{c.tail()}"
    assert elapsed <= 1.0 + 1.0, f"exited {elapsed:.2f} s after SIGTERM: later than deadline + 1 s"
    assert elapsed >= 0.95, f"exited {elapsed:.2f} s after SIGTERM: before the 1 s deadline"
    killed = c.find_log(rf"worker \d+ exited \(pid {victim}\): killed by SIGKILL", after=mark)
    assert killed, f"worker {victim} with the slow request was not SIGKILLed:\n{c.tail()}"
    assert_no_worker_alive(c)
    slow.join(10)
    assert slow.status != 200, slow


@pytest.mark.parametrize("forked", [False, True], ids=["spawned", "forked"])
def test_sigkill_of_corral_leaves_no_worker(corral, forked):
    """Forked workers set their parent-death signal once corral has adopted them; the
    template (a child of corral's, like a spawned worker) goes too."""
    c = corral.start(workers=2)
    workers = list((c.fork_workers() if forked else c.worker_pids()).values())
    workers += [pid for pid in children_of(c.pid) if is_worker_template(pid)]
    port = c.port

    c.proc.kill()
    c.wait_exit(10)
    killed_at = time.monotonic()

    def all_gone():
        return not any(pid_alive(pid) for pid in workers)

    wait_until(all_gone, 2.0, f"workers {workers} to die after corral was SIGKILLed")
    print(f"workers gone {time.monotonic() - killed_at:.3f} s after corral's SIGKILL")
    # Nothing holds the listening socket any more.
    with socket.socket() as probe:
        probe.settimeout(5)
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "something still listens on the port"


def test_sigint_is_a_quick_stop_with_130(corral):
    c = corral.start("--graceful-timeout", "30s", workers=2)
    slow = start_slow_requests(c, 1, 30)[0]
    sent = time.monotonic()
    c.send_signal(signal.SIGINT)
    rc = c.wait_exit(EVENT_DEADLINE)
    elapsed = time.monotonic() - sent
    print(f"SIGINT -> exit in {elapsed:.3f} s, rc {rc}")
    assert rc == 130, f"SIGINT must exit 130, got {rc}; log:\n{c.tail()}"
    assert elapsed < 10, "SIGINT is a quick stop: it must not wait for --graceful-timeout (30 s)"
    assert_no_worker_alive(c)
    slow.join(10)


def test_sigquit_is_a_quick_stop_with_0(corral):
    c = corral.start("--graceful-timeout", "30s", workers=2)
    start_slow_requests(c, 1, 30)
    c.send_signal(signal.SIGQUIT)
    rc = c.wait_exit(EVENT_DEADLINE)
    assert rc == 0, f"SIGQUIT is a clean quick stop (exit 0), got {rc}; log:\n{c.tail()}"
    assert_no_worker_alive(c)


def test_second_sigterm_escalates_the_drain(corral):
    c = corral.start("--graceful-timeout", "30s", workers=2)
    start_slow_requests(c, 1, 30)
    mark = c.mark()
    c.send_signal(signal.SIGTERM)
    c.wait_for_log(r"state Running -> Drain\w+", after=mark)
    sent = time.monotonic()
    c.send_signal(signal.SIGTERM)
    rc = c.wait_exit(EVENT_DEADLINE)
    elapsed = time.monotonic() - sent
    print(f"second SIGTERM -> exit in {elapsed:.3f} s, rc {rc}")
    assert elapsed < 10, "a second SIGTERM must not wait for --graceful-timeout (30 s)"
    assert rc == 0, f"exit code {rc}; log:\n{c.tail()}"
    assert_no_worker_alive(c)


def test_sigterm_while_workers_boot_does_not_wait_for_them(corral):
    """Workers inside lifespan startup have no request in flight: a drain has nothing to wait
    for (supervisor.cpp: a booting worker "gets SIGTERM (whose default action is clean) in a
    drain"). Once uvicorn has installed its handlers, SIGTERM no longer ends a booting worker,
    so corral must not let such workers hold the drain until --graceful-timeout."""
    c = corral.start("--graceful-timeout", "10s", app="apps.slow_start:app", workers=2,
                     env={"SLOW_START_SECONDS": "60"}, wait_ready=False)
    c.wait_for_log(r"worker 1 spawned")
    workers = list(c.worker_pids().values())
    # In lifespan startup once the event loop exists (an epoll descriptor in the fd table):
    # uvicorn has installed its signal handlers by then.
    wait_until(lambda: all(_has_event_loop(pid) for pid in workers), EVENT_DEADLINE,
               "both workers to reach their event loop")
    assert c.admin("/ready").status == 503
    sent = time.monotonic()
    c.send_signal(signal.SIGTERM)
    rc = c.wait_exit(EVENT_DEADLINE)
    elapsed = time.monotonic() - sent
    print(f"SIGTERM while booting -> exit in {elapsed:.3f} s, rc {rc}")
    assert rc == 0, f"exit code {rc}; log:\n{c.tail()}"
    assert elapsed <= 10 + 1, "exit later than --graceful-timeout + 1 s"
    assert_no_worker_alive(c)
    assert not c.ready_pids()
    crashes = [m.string for m in c.find_log(EXITED) if m["why"] in ("crash", "boot_failure")]
    assert not crashes, f"workers stopped by corral's SIGTERM are not crashes: {crashes}"
    assert elapsed < 5, (f"the drain waited {elapsed:.1f} s for workers that were still booting "
                         "and had no request in flight")


def _has_event_loop(pid: int) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[eventpoll]":
                return True
        except OSError:
            pass
    return False


def test_no_process_of_corral_outlives_it(corral):
    """corral reaps its worker template before it exits, as it does its workers: under systemd
    (KillMode=mixed) or a container runtime, whatever is left would be SIGKILLed and logged. A
    subreaper around corral stands in for the service manager and reports anything left."""
    wrapper = [PYTHON, str(INTEGRATION_DIR / "helpers" / "subreaper.py"), "--"]
    c = corral.start(workers=1, wrapper=wrapper)
    mark = c.mark()
    c.send_signal(signal.SIGTERM)
    rc = c.wait_exit(EXIT_DEADLINE)
    assert rc == 0, f"exit code {rc}; log:\n{c.tail()}"
    assert c.find_log(r"worker 0 exited .* \(drained\)", after=mark), c.tail()
    assert "left behind" not in c.stderr_text(), c.stderr_text()


def test_sigterm_while_the_app_imports_ends_the_workers_at_once(corral, tmp_path):
    """Until uvicorn handles SIGTERM, its default action ends a booting worker: nothing is
    served yet, so neither corral's drain nor the worker waits for an import that would take
    a minute."""
    c = corral.start("--graceful-timeout", "30s", app="apps.slow_import:app", workers=2,
                     env={"SLOW_IMPORT_DIR": str(tmp_path)}, wait_ready=False)
    try:
        c.wait_for_log(r"worker 1 spawned")
        workers = list(c.worker_pids().values())
        wait_until(lambda: all((tmp_path / f"importing.{pid}").exists() for pid in workers),
                   EVENT_DEADLINE, "both workers to be importing the app")
        mark = c.mark()
        c.send_signal(signal.SIGTERM)
        assert c.wait_exit() == 0, c.tail()
        for pid in workers:
            line = c.wait_for_log(rf"worker \d+ exited \(pid {pid}\): .*", after=mark).group(0)
            assert EXITED.search(line)["how"] == "killed by SIGTERM", line
    finally:
        (tmp_path / "release").touch()


def test_a_stopping_worker_joins_the_apps_threads_then_runs_its_atexit_handlers(corral,
                                                                                 tmp_path):
    """Workers end with os._exit (worker/shim.py, leave) after doing what the interpreter's own
    exit would: join the app's non-daemon threads, then run its atexit handlers."""
    hooks = tmp_path / "exit-hooks"
    hooks.touch()
    c = corral.start("--graceful-timeout", "20s", app="apps.exit_hooks:app", workers=2,
                     env={"EXIT_HOOKS_FILE": str(hooks)})
    workers = set(c.worker_pids().values())
    mark = c.mark()
    c.send_signal(signal.SIGTERM)
    assert c.wait_exit() == 0, c.tail()
    for pid in workers:
        line = c.wait_for_log(rf"worker \d+ exited \(pid {pid}\): .*", after=mark).group(0)
        assert EXITED.search(line)["how"] == "exit code 0", line
    notes = [line.split() for line in hooks.read_text().splitlines()]
    print("exit hooks:", notes)
    for pid in workers:
        mine = [what for what, who in notes if who == str(pid)]
        assert mine == ["thread", "atexit"], f"worker {pid} at its exit: {mine}"
