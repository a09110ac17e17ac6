"""GET /status on the admin port, and `corral status` printing it, against a running corral."""

import json
import os
import re
import signal
import subprocess

from conftest import CORRAL_BIN, EVENT_DEADLINE, wait_until


def run_status(*args, env=None):
    return subprocess.run([CORRAL_BIN, "status", *args], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **(env or {})})


def test_status_endpoint_and_command(corral):
    c = corral.start("--max-requests", "1000", workers=2)
    for _ in range(6):
        assert c.get("/").status == 200
    victim = c.worker_pids()[1]
    mark = c.mark()
    os.kill(victim, signal.SIGKILL)
    c.wait_for_log(rf"worker 1 exited \(pid {victim}\)", after=mark)
    c.wait_ready(2)

    def served_reported():
        status = json.loads(c.admin("/status").text)
        return status if sum(w["requests_served"] for w in status["workers"]) >= 1 else None

    status = wait_until(served_reported, EVENT_DEADLINE, "the workers' request counts")
    print(json.dumps(status, indent=1))
    assert status["state"] == "running"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", status["version"])
    assert status["uptime_seconds"] > 0
    assert status["workers_reason"] == "--workers '2'"
    settings = status["settings"]
    assert settings["max-requests"]["value"] == 1000
    assert settings["max-requests"]["origin"] == "command line"
    assert settings["bind"]["value"] == ["127.0.0.1:0"]
    assert settings["backlog"] == {"value": 2048, "origin": "default", "source": None}
    workers = {w["slot"]: w for w in status["workers"]}
    assert {w["pid"] for w in workers.values()} == set(c.worker_pids().values()), c.tail()
    assert workers[1]["restarts"] == 1
    assert workers[1]["last_exit"] == {"status": "killed by SIGKILL", "reason": "crash"}
    assert workers[0]["restarts"] == 0 and workers[0]["last_exit"] is None
    for worker in workers.values():
        assert worker["state"] == "ready" and worker["generation"] == 0
        assert worker["resident_memory_bytes"] > 1 << 20
        assert worker["age_seconds"] >= 0 and worker["heartbeat_age_seconds"] >= 0
        assert worker["requests_in_flight"] == 0

    admin = f"127.0.0.1:{c.admin_port}"
    table = run_status("--admin", admin)
    print(table.stdout)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"corral {status['version']}, running, up ")
    header = next(i for i, line in enumerate(lines) if line.startswith("SLOT"))
    # Headings are apart by two spaces at least ("IN FLIGHT" is one).
    columns = [0] + [m.end() for m in re.finditer(r"  +", lines[header])]
    rows = lines[header + 1:]
    assert len(rows) == 2
    for row in rows:
        # Aligned: each column starts where its heading does.
        for start in columns[:-1]:
            assert row[start] != " " and (start == 0 or row[start - 1] == " "), (row, start)
    assert str(workers[1]["pid"]) in rows[1] and "killed by SIGKILL (crash)" in rows[1]

    as_json = run_status("--json", env={"CORRAL_ADMIN_BIND": admin})
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["state"] == "running"


def test_status_command_errors(corral):
    usage = run_status("--bogus")
    assert usage.returncode == 2 and "corral: error: status: unexpected argument" in usage.stderr
    assert run_status("--admin", "fd://3").returncode == 2
    c = corral.start(workers=1)
    port = c.admin_port
    c.send_signal(signal.SIGTERM)
    c.wait_exit()
    down = run_status("--admin", f"127.0.0.1:{port}")
    print(down.stderr)
    assert down.returncode == 1
    assert down.stderr.startswith(f"corral: error: status from 127.0.0.1:{port}: ")
    assert len(down.stderr.splitlines()) == 1
    helped = run_status("--help")
    assert helped.returncode == 0 and "Usage: corral status" in helped.stdout
