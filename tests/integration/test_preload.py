"""--preload (issue 15): the worker template imports APP's module, so the workers forked from it
share its memory rather than each importing a copy; lifespan startup still runs in each worker
after the fork; SIGHUP still serves new code, from a new template; an import error is still a
boot failure; threads started by the import are named in a warning; losing the template loses
no request.

apps/preload.py writes 32 MiB at import. Forked from a template that imported it, a worker
shares those pages with the template (they count in its Shared_*, not its Private_* memory);
importing it itself, it owns a private copy."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from pathlib import Path

from conftest import EVENT_DEADLINE, pid_alive, wait_template, wait_until

APP = "apps.preload:app"
BALLAST_MIB = 32


def private_mib(pid: int) -> float:
    """The worker's private resident memory (smaps_rollup), MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def answers(c, count: int = 20) -> list[dict]:
    """What `count` keep-alive connections, held open together, each got for GET /: corral
    leaves a new connection to the worker that holds the fewest (test_balance.py), so every
    worker answers some. One closed connection after another could all go to one worker."""
    conns, seen = [], []
    try:
        for _ in range(count):
            conns.append(http.client.HTTPConnection("127.0.0.1", c.port, timeout=10))
            conns[-1].request("GET", "/")
            response = conns[-1].getresponse()
            assert response.status == 200
            seen.append(json.loads(response.read()))
    finally:
        for conn in conns:
            conn.close()
    return seen


def start(corral, *extra, **kwargs):
    c = corral.start("--no-access-log", *extra, app=APP, workers=2, **kwargs)
    return c, c.fork_workers()


def test_forked_workers_share_the_preloaded_apps_memory(corral):
    preloaded, forked = start(corral, "--preload")
    template = wait_template(preloaded)
    shared = {pid: private_mib(pid) for pid in forked.values()}
    seen = answers(preloaded)
    assert {a["imported_in"] for a in seen} == {template}, seen
    # Lifespan startup ran in each worker, after the fork, not in the template.
    assert all(a["started_in"] == [a["pid"]] for a in seen), seen
    preloaded.send_signal(signal.SIGTERM)
    assert preloaded.wait_exit() == 0

    plain, forked = start(corral)
    own = {pid: private_mib(pid) for pid in forked.values()}
    seen = answers(plain)
    assert all(a["imported_in"] == a["pid"] for a in seen), seen
    print(f"private MiB per worker: --preload {sorted(shared.values())}, "
          f"without {sorted(own.values())}")
    # The 32 MiB are the template's and shared with --preload; each worker's own without.
    assert max(shared.values()) + BALLAST_MIB * 0.75 < min(own.values()), (shared, own)


def test_sighup_serves_new_code_from_a_new_template(corral, tmp_path):
    version = tmp_path / "version"
    version.write_text("1")
    c, _ = start(corral, "--preload", env={"VERSION_FILE": str(version)})
    old_template = wait_template(c)
    assert {a["version"] for a in answers(c)} == {"1"}
    version.write_text("2")
    mark = c.mark()
    c.send_signal(signal.SIGHUP)
    c.wait_for_log(r"reload to generation 1 complete", after=mark)
    wait_until(lambda: not pid_alive(old_template), EVENT_DEADLINE, "the old template to go")
    c.fork_workers()
    new_template = wait_template(c)
    seen = answers(c)
    assert {a["version"] for a in seen} == {"2"}, seen
    assert {a["imported_in"] for a in seen} == {new_template}, seen


def test_an_import_error_is_a_boot_failure_told_once(corral):
    c = corral.start("--preload", app="apps.broken_import:app", workers=2, wait_ready=False)
    assert c.wait_exit() == 3, c.tail()
    text = c.stderr_text()
    assert text.count("Traceback") == 1, text


def test_a_thread_started_at_import_is_named_in_a_warning(corral):
    c = corral.start("--no-access-log", "--preload", app=APP, workers=1,
                     env={"PRELOAD_THREAD": "1"})
    line = c.wait_for_log(r"--preload: importing apps\.preload started 1 thread\(s\) \(poller\).*")
    assert "run without --preload" in line[0], line[0]
    assert c.get("/").status == 200


def test_losing_the_template_loses_no_request(corral):
    c, _ = start(corral, "--preload")
    template = wait_template(c)
    failures, done = [], threading.Event()

    def load():
        while not done.is_set():
            try:
                assert c.get("/", timeout=10).status == 200
            except (OSError, AssertionError) as error:
                failures.append(error)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        mark = c.mark()
        os.kill(template, signal.SIGKILL)
        c.wait_for_log(rf"worker template \(pid {template}\) killed by SIGKILL", after=mark)
        for _ in range(50):
            c.admin("/healthz")  # the workers serve on while corral notices
    finally:
        done.set()
        loader.join()
    assert not failures, failures[:3]
    # The next replacements come from a new template, which preloads the app again.
    forked = c.fork_workers()
    assert {a["imported_in"] for a in answers(c)} == {wait_template(c)} != {template}
    assert set(forked.values()) == {a["pid"] for a in answers(c, 40)}
