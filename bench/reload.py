#!/usr/bin/python3
"""--reload, side by side: `corral --reload` and `uvicorn --reload` on the same apps.

Run it through `bench/run.sh reload`. For each server and app it measures:

- edit -> new response: the time from an edit of main.py being saved (its file closed) to the
  first response that carries the new code's answer, while a client asks every 2 ms on a fresh
  connection. BENCH_RELOAD_EDITS edits (default 7), one every BENCH_RELOAD_PAUSE s (1.5), so
  that uvicorn's stat reloader has seen every file again before the next one; the median, the
  fastest and the slowest.
- idle wakeups: how often the supervisor's own process (corral; uvicorn's reloader) woke in
  BENCH_RELOAD_IDLE s (10) of no change and no request: the growth of voluntary_ctxt_switches
  in /proc/PID/status, each of which is one return from a blocking wait.

BENCH_RELOAD_SERVERS (corral uvicorn) and BENCH_RELOAD_APPS (small fastapi) choose what runs;
BENCH_RELOAD_CORRAL_ARGS adds options to corral's command line. Both run their workers on the
same uvicorn: BENCH_UVICORN, the source folder of a release (the
one holding its `uvicorn/` package; default ../shared/anchors/uvicorn-0.51.0 beside the
checkout), put first on PYTHONPATH, and Debian's /usr/bin/python3. uvicorn reloads with its
stat reloader, which is what it uses without the optional watchfiles package (not installed
here). Apps: a plain ASGI one, and a FastAPI one (Debian's python3-fastapi). The results go to
bench/results/reload.md and reload.json. It only measures: no thresholds.
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import http.client

import bench
from bench import BenchError, log

EDITS = max(bench.env_num("BENCH_RELOAD_EDITS", 7, int), 1)
PAUSE = bench.env_num("BENCH_RELOAD_PAUSE", 1.5)
IDLE = bench.env_num("BENCH_RELOAD_IDLE", 10.0)
DEADLINE = 30.0  # an edit not served by then is a failure
UVICORN = os.environ.get("BENCH_UVICORN") or os.path.join(
    bench.ROOT, "..", "shared", "anchors", "uvicorn-0.51.0")
PYTHON = os.environ.get("BENCH_PYTHON", "/usr/bin/python3")
CORRAL = os.environ.get("BENCH_CORRAL", os.path.join(bench.ROOT, "build", "corral"))
SERVERS = os.environ.get("BENCH_RELOAD_SERVERS", "corral uvicorn").split()
APPS_RUN = os.environ.get("BENCH_RELOAD_APPS", "small fastapi").split()
CORRAL_ARGS = os.environ.get("BENCH_RELOAD_CORRAL_ARGS", "").split()  # e.g. --reload-delay 20ms

APPS = {
    "small": """\
VERSION = {version!r}

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": VERSION.encode()}})
""",
    "fastapi": """\
from fastapi import FastAPI
from pydantic import BaseModel

VERSION = {version!r}
app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@app.get("/")
def root():
    return VERSION


@app.post("/items")
def create(item: Item):
    return item
""",
}


def write_app(folder, kind, version):
    """An editor's save: the file rewritten in place and closed."""
    with open(os.path.join(folder, "main.py"), "w") as f:
        f.write(APPS[kind].format(version=version))


def get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        return conn.getresponse().read().decode(errors="replace")
    finally:
        conn.close()


def wait_for(port, version, deadline):
    while time.monotonic() < deadline:
        try:
            if version in get(port):
                return time.monotonic()
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.002)
    return None


def command(server, folder, port):
    if server == "corral":
        return [CORRAL, "--reload", "--bind", f"127.0.0.1:{port}", "--admin-bind", "none",
                "--python", PYTHON, "--app-dir", folder, "--no-access-log", *CORRAL_ARGS,
                "main:app"]
    return [PYTHON, "-m", "uvicorn", "--reload", "--port", str(port), "--app-dir", folder,
            "--no-access-log", "main:app"]


def context_switches(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise BenchError(f"no voluntary_ctxt_switches for pid {pid}")


def run(server, kind, logs):
    folder = tempfile.mkdtemp(prefix=f"corral-bench-reload-{kind}-", dir="/var/tmp")
    os.chmod(folder, 0o755)
    write_app(folder, kind, "v0")
    port = bench.free_port()
    env = bench.server_env()
    env["PYTHONPATH"] = UVICORN
    log_path = os.path.join(logs, f"reload-{server}-{kind}.log")
    with open(log_path, "wb") as out:
        # uvicorn watches its working directory; corral watches --app-dir.
        proc = subprocess.Popen(command(server, folder, port), cwd=folder, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    bench.PROC_CHILDREN.add(proc.pid)
    bench.remember_pids([proc.pid], group=True)
    try:
        if wait_for(port, "v0", time.monotonic() + 60) is None:
            raise BenchError(f"{server} did not serve {kind} within 60 s; see {log_path}")
        time.sleep(PAUSE)
        times = []
        for i in range(1, EDITS + 1):
            version = f"v{i}-{os.urandom(4).hex()}"
            write_app(folder, kind, version)
            saved = time.monotonic()
            served = wait_for(port, version, saved + DEADLINE)
            if served is None:
                raise BenchError(f"{server}: edit {i} of {kind} not served in {DEADLINE:.0f} s")
            times.append(served - saved)
            log(f"{server} {kind}: edit {i} served after {(served - saved) * 1000:.0f} ms")
            time.sleep(PAUSE)
        before = context_switches(proc.pid)
        time.sleep(IDLE)
        wakeups = context_switches(proc.pid) - before
        log(f"{server} {kind}: {wakeups} wakeups in {IDLE:.0f} s idle")
        return {"server": server, "app": kind, "edits_s": times, "wakeups": wakeups}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            bench.kill_pids(bench.descendants(proc.pid))
            proc.wait()
        bench.reap_orphans()
        shutil.rmtree(folder, ignore_errors=True)


def ms(seconds):
    return f"{seconds * 1000:.0f} ms"


def report(results):
    lines = [
        "| app | server | edit → new response, median | fastest – slowest | "
        f"supervisor wakeups in {IDLE:.0f} s idle |",
        "| --- | --- | --- | --- | --- |",
    ]
    by = {(r["server"], r["app"]): r for r in results}
    for kind in APPS:
        for server in SERVERS:
            r = by.get((server, kind))
            if r is None:
                continue
            median = statistics.median(r["edits_s"])
            lines.append(f"| {kind} | {server} --reload | {ms(median)} | "
                         f"{ms(min(r['edits_s']))} – {ms(max(r['edits_s']))} | {r['wakeups']} |")
        if ("corral", kind) in by and ("uvicorn", kind) in by:
            ratio = (statistics.median(by[("corral", kind)]["edits_s"])
                     / statistics.median(by[("uvicorn", kind)]["edits_s"]))
            lines.append(f"| {kind} | corral / uvicorn | {ratio:.2f} | | |")
    return "\n".join(lines) + "\n"


def main():
    if not os.path.isfile(os.path.join(UVICORN, "uvicorn", "__init__.py")):
        sys.exit(f"bench: BENCH_UVICORN={UVICORN} holds no uvicorn package")
    bench.set_subreaper()
    logs = os.path.join(bench.RESULTS, "logs")
    os.makedirs(logs, exist_ok=True)
    version = subprocess.run([PYTHON, "-c", "import uvicorn; print(uvicorn.__version__)"],
                             env={**bench.server_env(), "PYTHONPATH": UVICORN},
                             capture_output=True, text=True, check=True).stdout.strip()
    results = []
    failed = False
    for kind in APPS_RUN:
        for server in SERVERS:
            try:
                results.append(run(server, kind, logs))
            except BenchError as error:
                log(f"error: {error}")
                failed = True
    table = report(results)
    header = (f"`corral --reload` and `uvicorn --reload` (uvicorn {version}, stat reloader), "
              f"{EDITS} edits each, load average {os.getloadavg()[0]:.2f} at the end\n\n")
    print(header + table)
    with open(os.path.join(bench.RESULTS, "reload.md"), "w") as f:
        f.write(header + table)
    with open(os.path.join(bench.RESULTS, "reload.json"), "w") as f:
        json.dump({"uvicorn": version, "edits": EDITS, "results": results}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
