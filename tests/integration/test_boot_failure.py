"""Boot failure: an app that cannot be imported or whose lifespan startup fails makes corral show
the Python error once, stop, and exit 3 instead of respawning forever."""

import pytest

from conftest import pid_alive


@pytest.mark.parametrize("app", ["apps.broken_import:app", "apps.broken_lifespan:app"])
def test_broken_app_exits_3_with_the_error_once(corral, app):
    c = corral.run(app=app, workers=2, timeout=30)
    log = c.stderr_text()
    print(log)

    assert c.returncode == 3, f"{app}: exit code {c.returncode}, expected 3"
    assert log.count("broken on purpose") == 1, (
        f"{app}: the error text must appear exactly once in corral's stderr, found "
        f"{log.count('broken on purpose')} times")
    assert c.find_log(r"app failed to boot"), f"{app}: no 'app failed to boot' line"
    # The error belongs to corral's report, not to a stray line of a worker's.
    assert any("broken on purpose" in line
               for line in log.split("app failed to boot", 1)[-1].splitlines()), log
    assert not c.find_log(r"worker \d+ ready \(pid"), f"{app}: a worker reported ready"
    # It gave up instead of respawning: at most one spawn per slot.
    slots = [slot for slot, _ in c.spawns()]
    assert len(slots) == len(set(slots)), f"{app}: workers were respawned: {c.spawns()}"
    alive = [pid for pid in c.all_worker_pids() if pid_alive(pid)]
    assert not alive, f"{app}: workers {alive} outlived corral"


@pytest.mark.parametrize("app, missing", [("apps.no_such_module:app", "apps.no_such_module"),
                                          ("apps.basic:no_such_app", "no_such_app")])
def test_app_uvicorn_cannot_load_exits_3_with_uvicorns_reason_once(corral, app, missing):
    """uvicorn logs why it cannot load the app, then exits (Config.load): that reason is the
    boot error, shown once."""
    c = corral.run(app=app, workers=2, timeout=30)
    log = c.stderr_text()
    print(log)
    assert c.returncode == 3, f"{app}: exit code {c.returncode}, expected 3"
    reason = [line for line in log.splitlines() if "Error loading ASGI app" in line]
    assert len(reason) == 1, f"uvicorn's reason must appear exactly once: {reason}"
    assert missing in reason[0], reason[0]
    assert c.find_log(r"app failed to boot")
    assert not c.find_log(r"worker \d+ ready \(pid")
