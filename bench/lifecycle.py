#!/usr/bin/python3
"""Lifecycle benchmark: requests lost or slowed while the servers reload, scale, recycle workers
and stop, for corral, gunicorn + UvicornWorker and `uvicorn --workers`, side by side in one run.

Run it through `bench/run.sh lifecycle` (which installs what is missing and builds corral);
settings come from BENCH_LC_* (and some BENCH_*) environment variables, see README.md. It
prints markdown tables and writes them to bench/results/lifecycle.md, the raw numbers to
lifecycle.json. It only measures: there are no thresholds and no pass/fail.

For each server, load mode (Connection: close, keep-alive) and operation, it launches a fresh
server with 2 workers, waits until every worker is ready, runs loader.py (paced load, every
request recorded with its outcome) and sends the operation's signals at fixed times during the
load. Processes, cleanup and the server commands are bench.py's.
"""

import datetime
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import bench
from bench import BenchError, log

BENCH = bench.BENCH
RESULTS = bench.RESULTS
LOGS = os.path.join(bench.LOGS, "lifecycle")
LOADER = os.path.join(BENCH, "loader.py")

RATE = bench.env_num("BENCH_LC_RATE", 1000.0)  # requests per second offered, all clients
CONNECTIONS = max(bench.env_num("BENCH_LC_CONNECTIONS", 20, int), 1)
TIMEOUT = bench.env_num("BENCH_LC_TIMEOUT", 3.0)  # per request
DURATION = bench.env_num("BENCH_LC_DURATION", 10.0)  # baseline, max-requests, memory
SIGNAL_DURATION = bench.env_num("BENCH_LC_SIGNAL_DURATION", 7.0)  # HUP and TTIN/TTOU runs
HUP_AT = [float(x) for x in os.environ.get("BENCH_LC_HUP_AT", "1 3 5").split()]
TTIN_AT = bench.env_num("BENCH_LC_TTIN_AT", 1.0)
TTOU_AT = bench.env_num("BENCH_LC_TTOU_AT", 4.0)
MAX_REQUESTS = bench.env_num("BENCH_LC_MAX_REQUESTS", 300, int)
JITTER = bench.env_num("BENCH_LC_MAX_REQUESTS_JITTER", 50, int)
MEMORY_LIMIT = os.environ.get("BENCH_LC_MEMORY_LIMIT", "64Mi")
GROW_KB = bench.env_num("BENCH_LC_GROW_KB", 32, int)
TERM_AT = bench.env_num("BENCH_LC_TERM_AT", 1.5)
WINDOW = bench.env_num("BENCH_LC_TERM_WINDOW", 2.0)  # failures counted this long after SIGTERM
DRAIN_DELAY = bench.env_num("BENCH_LC_DRAIN_DELAY", 2.0)
MODES = os.environ.get("BENCH_LC_MODES", "close keep-alive").split()
# Latency rounds: a p99 from one 10 s run moves by 2x between identical runs on this shared
# machine, so the recycling latency is compared over several fresh launches per side,
# alternating which side goes first, by the median p99 of each side.
LATENCY_ROUNDS = bench.env_num("BENCH_LC_LATENCY_ROUNDS", 5, int)
SETTLE = bench.env_num("BENCH_LC_SETTLE", 0.5)
SERVERS = bench.SERVERS
WORKERS = bench.WORKERS
GRACEFUL = bench.GRACEFUL
PATH = "/"
JSON_FAILURES = 100  # failed requests kept per run in lifecycle.json
GROW_PATH = f"/grow?kb={GROW_KB}"


def fmt_s(x):
    return f"{x:g}"


# Operations, in the order they run and are reported. `servers` maps each server to the extra
# options it needs, or to the reason the operation is not available ("n/a").
OPS = [
    {"key": "baseline", "title": "no operation (the reference)", "duration": DURATION,
     "servers": {"corral": [], "gunicorn": [], "uvicorn": []}},
    {"key": "max-requests", "title": f"max-requests recycling ({MAX_REQUESTS}, jitter {JITTER})",
     "duration": DURATION,
     "servers": {
         "corral": ["--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", str(JITTER)],
         "gunicorn": ["--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", str(JITTER)],
         # 0.17.6 has the limit (no jitter), but its --workers parent never replaces a worker
         # that reached it: this row shows what that option does there, not recycling.
         "uvicorn": ["--limit-max-requests", str(MAX_REQUESTS)]},
     "not_recycling": ["uvicorn"]},
    {"key": "hup", "title": "SIGHUP reload at " + ", ".join(f"{fmt_s(t)} s" for t in HUP_AT),
     "duration": SIGNAL_DURATION,
     "events": [(t, "SIGHUP") for t in HUP_AT],
     "servers": {"corral": [], "gunicorn": [],
                 "uvicorn": "n/a: uvicorn 0.17.6 does not handle SIGHUP (0.30+ does)"}},
    {"key": "ttin-ttou", "title": f"SIGTTIN at {fmt_s(TTIN_AT)} s, SIGTTOU at {fmt_s(TTOU_AT)} s",
     "duration": SIGNAL_DURATION,
     "events": [(TTIN_AT, "SIGTTIN"), (TTOU_AT, "SIGTTOU")],
     "servers": {"corral": [], "gunicorn": [],
                 "uvicorn": "n/a: uvicorn 0.17.6 does not handle SIGTTIN/SIGTTOU (0.30+ does)"}},
    {"key": "memory", "title": f"memory recycling (--max-worker-memory {MEMORY_LIMIT}, "
                               f"`GET {GROW_PATH}`)",
     "duration": DURATION, "path": GROW_PATH,
     "servers": {"corral": ["--max-worker-memory", MEMORY_LIMIT],
                 "gunicorn": "n/a: gunicorn has no memory limit (declined, gunicorn #3581)",
                 "uvicorn": "n/a: uvicorn has no memory limit"}},
    {"key": "sigterm", "title": f"SIGTERM at {fmt_s(TERM_AT)} s; corral with --drain-delay "
                                f"{fmt_s(DRAIN_DELAY)}s, the others plain",
     "term": True,
     "servers": {"corral": ["--drain-delay", f"{fmt_s(DRAIN_DELAY)}s"], "gunicorn": [],
                 "uvicorn": []}},
    {"key": "sigterm-plain", "title": f"SIGTERM at {fmt_s(TERM_AT)} s, corral without "
                                      "--drain-delay (reference)",
     "term": True,
     "servers": {"corral": [], "gunicorn": "same as the row above (plain SIGTERM)",
                 "uvicorn": "same as the row above (plain SIGTERM)"}},
]
# The latency rounds compare each recycling operation with the same load without it.
GROW_BASELINE = {"key": "baseline-grow", "title": f"no operation, `GET {GROW_PATH}`",
                 "duration": DURATION, "path": GROW_PATH,
                 "servers": {"corral": [], "gunicorn": [], "uvicorn": []}}
LATENCY_PAIRS = [("baseline", "max-requests"), ("baseline-grow", "memory")]

_only = os.environ.get("BENCH_LC_OPS", "").split()
if _only:
    unknown = set(_only) - {op["key"] for op in OPS}
    if unknown:
        sys.exit(f"lifecycle: unknown BENCH_LC_OPS {' '.join(sorted(unknown))}; "
                 f"known: {' '.join(op['key'] for op in OPS)}")
    OPS = [op for op in OPS if op["key"] in _only or op["key"] == "baseline"]

# A line per worker started, in each server's log (counted before and after the load).
STARTED = {"corral": re.compile(r"^\S+ info +worker \d+ spawned \(pid", re.M),
           "gunicorn": re.compile(r"\[INFO\] Booting worker with pid", re.M),
           "uvicorn": re.compile(r"Started server process", re.M)}
KINDS = ("refused", "reset", "timeout", "closed", "error")


class Server(bench.Server):
    """bench.Server with extra options and its own log name."""

    def __init__(self, name, tag, extra):  # pylint: disable=super-init-not-called
        self.name = name
        self.port = bench.free_port()
        cmd = bench.server_command(name, self.port)
        self.cmd = cmd[:-1] + list(extra) + cmd[-1:]  # the APP stays last
        self.log_path = os.path.join(LOGS, f"{tag}.log")
        self.log_file = open(self.log_path, "w")
        self.t_launch = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, cwd=BENCH,
                                     env=bench.server_env(), start_new_session=True)
        bench.PROC_CHILDREN.add(self.proc.pid)
        bench.remember_pids([self.proc.pid], group=True)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def started(self):
        return len(STARTED[self.name].findall(self.log_text()))


def start_loader(port, path, mode, duration, t0):
    cmd = [bench.PYTHON, LOADER, str(port), path, mode, str(CONNECTIONS), str(RATE),
           str(duration), str(TIMEOUT), repr(t0)]
    return bench.start_tool(cmd)


def finish_loader(proc, timeout):
    out, err = bench.finish_tool(proc, timeout, "loader.py")
    try:
        return json.loads(out)["records"]
    except (ValueError, KeyError):
        raise BenchError(f"loader.py printed no records (status {proc.returncode}):\n"
                         f"{err[-2000:]}")


def sleep_until(t):
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def run_op(name, op, mode, extra):
    """One fresh server, one load, the operation's signals. Returns the raw run."""
    tag = f"{name}-{op['key']}-{mode}"
    server = Server(name, tag, extra)
    run = {"name": name, "op": op["key"], "mode": mode, "cmd": " ".join(server.cmd),
           "log": os.path.relpath(server.log_path, BENCH), "events": []}
    try:
        server.wait_first_200()
        server.wait_all_ready()
        time.sleep(SETTLE)
        started_before = server.started()
        path = op.get("path", PATH)
        run["path"] = path
        t0 = time.monotonic() + 0.3  # loader.py's first request; it needs ~0.1 s to start
        run["t0"], run["wall0"] = t0, time.time() + (t0 - time.monotonic())
        if op.get("term"):
            run.update(term_run(server, path, mode, t0))
        else:
            loader = start_loader(server.port, path, mode, op["duration"], t0)
            for at, sig in op.get("events", []):
                sleep_until(t0 + at)
                server.tree()  # remembered for run.sh's trap
                os.kill(server.pid, getattr(signal, sig))
                run["events"].append((time.monotonic() - t0, sig))
            run["records"] = finish_loader(loader, op["duration"] + TIMEOUT + 30)
            if server.proc.poll() is not None:
                server.fail(f"exited with status {server.proc.returncode} during the load")
        run["workers_started"] = server.started() - started_before
        run["alive_after"] = len(server.tree()) if server.proc.poll() is None else 0
    finally:
        server.close()
    return run


def term_run(server, path, mode, t0):
    """Load from t0; SIGTERM at t0 + TERM_AT; the load goes on until WINDOW s after SIGTERM
    and at least until the supervisor exited (seen at once through a pidfd)."""
    pidfd = os.pidfd_open(server.pid)
    limit = TERM_AT + DRAIN_DELAY + GRACEFUL + 5.0
    loader = start_loader(server.port, path, mode, limit + WINDOW, t0)
    try:
        sleep_until(t0 + TERM_AT)
        server.tree()
        t_term = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        exited = bool(poller.poll((limit - TERM_AT) * 1000))
        t_exit = time.monotonic() if exited else None
        sleep_until(t_term + WINDOW)
        loader.send_signal(signal.SIGINT)
        records = finish_loader(loader, TIMEOUT + 30)
        status = server.proc.wait(timeout=5) if exited else None
    finally:
        os.close(pidfd)
        if loader.poll() is None:
            loader.kill()
            loader.wait()
        bench.PROC_CHILDREN.discard(loader.pid)
    return {"records": records, "events": [(t_term - t0, "SIGTERM")], "t_term": t_term - t0,
            "exit_s": None if t_exit is None else t_exit - t_term, "status": status}


# ---------------------------------------------------------------------------------------------
# analysis


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def summarize(records, t0, lo=None, hi=None):
    """Counts of the requests sent in [t0 + lo, t0 + hi) (all of them without bounds)."""
    chosen = [r for r in records
              if (lo is None or r[0] >= t0 + lo) and (hi is None or r[0] < t0 + hi)]
    out = {"sent": len(chosen), "ok": 0, "non2xx": 0, "failed": 0, "reused_failed": 0,
           "stale": sum(r[5] for r in chosen)}
    out.update({k: 0 for k in KINDS})
    latencies = []
    for start, latency, outcome, reused, status, _ in chosen:
        if outcome == "ok":
            latencies.append(latency)
            if 200 <= status < 300:
                out["ok"] += 1
            else:
                out["non2xx"] += 1
        else:
            out["failed"] += 1
            out[outcome] = out.get(outcome, 0) + 1
            out["reused_failed"] += reused
    latencies.sort()
    out["p50"], out["p99"] = percentile(latencies, 50), percentile(latencies, 99)
    out["max"] = latencies[-1] if latencies else None
    return out


def analyse(run):
    records, t0 = run.pop("records"), run["t0"]
    if run["op"].startswith("sigterm"):
        t_term = run["t_term"]
        run["summary"] = summarize(records, t0, t_term, t_term + WINDOW)
        end = t_term + (run["exit_s"] if run["exit_s"] is not None else WINDOW)
        run["after"] = summarize(records, t0, t_term + WINDOW, max(end, t_term + WINDOW))
        run["before"] = summarize(records, t0, None, t_term)
    else:
        run["summary"] = summarize(records, t0)
    # Every failure, for the report's details (times from the load's start).
    run["failures"] = [(round(start - t0, 4), round(latency, 4),
                        outcome if outcome != "ok" else f"http {status}", reused)
                       for start, latency, outcome, reused, status, _ in records
                       if outcome != "ok" or not 200 <= status < 300]
    return run


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) ")


def log_excerpt(run, lo, hi, limit=40):
    """corral's log lines from wall time lo to hi (seconds since the epoch). corral's own lines
    carry a timestamp; the workers' lines in between have none: they come along, but for
    uvicorn's routine INFO lines."""
    try:
        with open(os.path.join(BENCH, run["log"]), errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out, inside = [], False
    for line in lines:
        m = LOG_TIME.match(line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
            if t > hi:
                break
            inside = t >= lo
        if inside and (m or not line.startswith("INFO:")):
            out.append(line)
    if len(out) > limit:
        out = out[:limit // 2] + [f"... ({len(out) - limit} lines left out) ..."] + \
            out[-(limit // 2):]
    return out


# ---------------------------------------------------------------------------------------------
# report


def f_ms(x):
    return "—" if x is None else f"{x * 1000:.1f}"


def f_ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}"


def op_by_key(key):
    return next(op for op in OPS + [GROW_BASELINE] if op["key"] == key)


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def latency_rounds():
    """LATENCY_ROUNDS fresh launches per side of each pair in LATENCY_PAIRS, per server and
    load, alternating which side runs first. Returns {(server, treatment, mode): {"base":
    [run summaries], "treated": [...]}}."""
    keys = {op["key"] for op in OPS}
    out = {}
    for name in SERVERS:
        for base_key, key in LATENCY_PAIRS:
            treated = op_by_key(key) if key in keys else None
            if (treated is None or isinstance(treated["servers"].get(name), str)
                    or name in treated.get("not_recycling", ())):
                continue
            base = op_by_key(base_key)
            for mode in MODES:
                sides = {"base": [], "treated": []}
                for round_ in range(LATENCY_ROUNDS):
                    order = [("base", base), ("treated", treated)]
                    for side, op in order if round_ % 2 == 0 else order[::-1]:
                        log(f"== latency round {round_ + 1}/{LATENCY_ROUNDS}: {name}, {mode}, "
                            f"{op['key']}")
                        try:
                            run = analyse(run_op(name, op, mode, op["servers"][name]))
                        except BenchError as exc:
                            log(f"ERROR {exc}")
                            bench.kill_everything()
                            continue
                        summary = dict(run["summary"], workers_started=run["workers_started"])
                        sides[side].append(summary)
                        log(f"{name} {op['key']} {mode}: p99 {f_ms(summary['p99'])} ms, "
                            f"failed {summary['failed']}, workers started "
                            f"{run['workers_started']}")
                        time.sleep(SETTLE)
                out[(name, key, mode)] = sides
    return out


def latency_lines(rounds):
    lines = [
        "",
        "## Latency during recycling",
        "",
        f"p99 of the answered requests, in ms: {LATENCY_ROUNDS} fresh launches with recycling "
        f"and {LATENCY_ROUNDS} with the same load without it, alternating which goes first; the "
        "ratio is that of the two medians. Every launch's p99 is listed, in the order run, to "
        "show the spread. The memory rows load `GET " + GROW_PATH + "` on both sides.",
        "",
        "| server | recycling | load | p99 without: median (each launch) | p99 with: median "
        "(each launch) | ratio | workers started per launch | failed |",
        "| --- | --- | --- | --- | --- | ---: | --- | ---: |",
    ]
    for (name, key, mode), sides in rounds.items():
        base = [r["p99"] for r in sides["base"]]
        treated = [r["p99"] for r in sides["treated"]]
        started = sorted(r["workers_started"] for r in sides["treated"])
        failed = sum(r["failed"] for r in sides["base"] + sides["treated"])
        lines.append(
            f"| {name} | {key} | {mode} | {f_ms(median(base))} ({', '.join(map(f_ms, base))}) | "
            f"{f_ms(median(treated))} ({', '.join(map(f_ms, treated))}) | "
            f"{f_ratio(median(treated), median(base))} | "
            f"{started[0] if started else '—'}–{started[-1] if started else '—'} | {failed} |")
    return lines


def report(runs, rounds, notes, load_after):
    def find(name, key, mode):
        return next((r for r in runs if r["name"] == name and r["op"] == key
                     and r["mode"] == mode), None)

    def cell(name, op, mode):
        spec = op["servers"].get(name)
        if isinstance(spec, str):
            return "n/a" if spec.startswith("n/a") else "="
        r = find(name, op["key"], mode)
        if r is None:
            return "—"
        if r.get("error"):
            return "error"
        s = r["summary"]
        notes = []
        if s["reused_failed"]:
            notes.append(f"{s['reused_failed']} on a reused connection")
        if s["non2xx"]:
            notes.append(f"+{s['non2xx']} non-2xx")
        return f"{s['failed']} of {s['sent']}" + (f" ({', '.join(notes)})" if notes else "")

    lines = [
        f"# Lifecycle: corral vs gunicorn vs uvicorn — {notes['date']}",
        "",
        f"Machine: {notes['cpu']}, Linux {notes['kernel']}, Debian {notes['debian']}; shared "
        f"and noisy (load average {notes['load']} at start, {load_after} at end). "
        f"{notes['python']}, uvicorn {notes['uvicorn']}, gunicorn {notes['gunicorn']}, "
        f"{notes['corral']}.",
        "",
        f"Same app (bench/app.py), {WORKERS} workers each, loopback, one server at a time, a "
        f"fresh launch for every row. Load: bench/loader.py, {CONNECTIONS} clients offering "
        f"{RATE:g} requests/s in all (one request per client every "
        f"{CONNECTIONS / RATE * 1000:g} ms, no catch-up burst after a slow one), `GET {PATH}`, "
        f"{TIMEOUT:g} s timeout per request; **close**: every request on a new connection with "
        "`Connection: close`; **keep-alive**: each client reuses its connection.",
        "",
        "## Failed requests, side by side",
        "",
        "Failed requests of all those sent (for SIGTERM: of those sent in the first "
        f"{fmt_s(WINDOW)} s after it). \"on a reused connection\": how many of those failed on "
        "a keep-alive connection that had already carried a request (the server closed it as "
        "the request arrived: the keep-alive race). n/a: the server has no such operation; =: "
        "same as the row above.",
        "",
        "| operation | load | " + " | ".join(SERVERS) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in SERVERS) + " |",
    ]
    for op in OPS:
        for mode in MODES:
            lines.append(f"| {op['title']} | {mode} | "
                         + " | ".join(cell(n, op, mode) for n in SERVERS) + " |")
    if "uvicorn" in SERVERS and any(r["name"] == "uvicorn" and r["op"] == "max-requests"
                                    for r in runs):
        lines += [
            "",
            f"uvicorn's max-requests row is `--limit-max-requests {MAX_REQUESTS}` (0.17.6 has no "
            "jitter): each worker exits at its limit, and the `--workers` parent of 0.17.6 "
            "never starts a new one, so from then on connections wait in the listen queue "
            f"unanswered (timeouts); a client that waits {TIMEOUT:g} s per request sends few, "
            "hence the small count sent. It is what that option does there, not recycling.",
        ]

    lines += latency_lines(rounds)

    # Every run.
    lines += [
        "",
        "## Every run",
        "",
        "| server | operation | load | offered | sent | ok | failed | refused | reset | timeout "
        "| closed | failed on a reused connection | non-2xx | p50 ms | p99 ms "
        "| p99 ÷ baseline p99 | workers started | idle connections found closed |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in SERVERS:
        for op in OPS:
            for mode in MODES:
                spec = op["servers"].get(name)
                if isinstance(spec, str):
                    if mode == MODES[0]:
                        lines.append(f"| {name} | {op['key']} | all | {spec} "
                                     + "| " * 14 + "|")
                    continue
                r = find(name, op["key"], mode)
                if r is None:
                    continue
                if r.get("error"):
                    lines.append(f"| {name} | {op['key']} | {mode} | error: "
                                 f"{r['error'].splitlines()[0]} " + "| " * 14 + "|")
                    continue
                s = r["summary"]
                base = find(name, "baseline", mode)
                b99 = base["summary"]["p99"] if base and not base.get("error") else None
                other = f" (+{s['error']} other)" if s["error"] else ""
                term = op.get("term")
                offered = RATE * (WINDOW if term else op["duration"])
                lines.append(
                    f"| {name} | {op['key']} | {mode} | {offered:.0f} | {s['sent']} | {s['ok']} | "
                    f"{s['failed']}{other} | {s['refused']} | {s['reset']} | {s['timeout']} | "
                    f"{s['closed']} | {s['reused_failed'] if mode != 'close' else '—'} | "
                    f"{s['non2xx']} | {f_ms(s['p50'])} | {f_ms(s['p99'])} | "
                    f"{'—' if op['key'] == 'baseline' or term else f_ratio(s['p99'], b99)} | "
                    f"{r['workers_started']} | {s['stale'] if mode != 'close' else '—'} |")
    lines += [
        "",
        f"offered: {RATE:g} requests/s times the load's length (for SIGTERM rows: the first "
        f"{fmt_s(WINDOW)} s after SIGTERM). sent: requests actually sent then; fewer than "
        "offered means the clients fell behind, because answers took longer than a client's "
        f"{CONNECTIONS / RATE * 1000:g} ms interval (or timed out). ok: 2xx answers. "
        "failed: no answer, by kind (refused: nothing listened; reset: the connection was "
        f"reset; timeout: no answer within {TIMEOUT:g} s, connecting or reading; closed: the "
        "server closed the connection without an answer). failed on a reused connection: "
        "those failures that happened on a keep-alive connection that had already carried a "
        "request, i.e. the server closed it while the request was on its way (the keep-alive "
        "race). p50/p99: latency of the answered requests, from the request's start to the "
        "end of the response (a new connection's connect included). workers started: worker "
        "processes the server started during the load (from its log). idle connections found "
        "closed: requests for which the client found its idle keep-alive connection already "
        "closed by the server and opened a new one, as HTTP client pools do; not failures.",
    ]

    # SIGTERM details.
    term_runs = [r for r in runs if r["op"].startswith("sigterm") and not r.get("error")]
    if term_runs:
        lines += [
            "",
            "## SIGTERM",
            "",
            f"SIGTERM {fmt_s(TERM_AT)} s into the load. The load goes on for {fmt_s(WINDOW)} s "
            "after it (a load balancer still routes there while it notices), and until the "
            "supervisor has exited.",
            "",
            "| server | options | load | SIGTERM → exit, ms | exit status | sent in the first "
            f"{fmt_s(WINDOW)} s | failed | by kind | sent after that until the exit | failed "
            "| by kind |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
        ]
        for r in sorted(term_runs, key=lambda r: (SERVERS.index(r["name"]), r["op"] != "sigterm",
                                                   MODES.index(r["mode"]))):
            s, a = r["summary"], r["after"]
            opts = (f"--drain-delay {fmt_s(DRAIN_DELAY)}s"
                    if r["name"] == "corral" and r["op"] == "sigterm" else "plain")
            exit_ms = "—" if r["exit_s"] is None else f"{r['exit_s'] * 1000:.0f}"
            lines.append(
                f"| {r['name']} | {opts} | {r['mode']} | {exit_ms} | "
                f"{'—' if r['status'] is None else r['status']} | {s['sent']} | {s['failed']} | "
                f"{kinds_text(s)} | {a['sent']} | {a['failed']} | {kinds_text(a)} |")

    # Where corral lost requests.
    lost = [r for r in runs if r["name"] == "corral" and not r.get("error") and r["failures"]]
    lost.sort(key=lambda r: r["op"].startswith("sigterm"))  # stable: run order otherwise
    lines += ["", "## Where corral lost requests", ""]
    if not lost:
        lines.append("Nowhere in this run: every request sent to corral got a 2xx answer.")
    for r in lost:
        counted = [f for f in r["failures"] if in_counted(r, f[0])]
        if r["op"].startswith("sigterm"):
            after = len(r["failures"]) - len(counted)
            what = ("without --drain-delay, the reference row" if r["op"] == "sigterm-plain"
                    else f"with --drain-delay {fmt_s(DRAIN_DELAY)}s")
            lines.append(
                f"- **SIGTERM {what}, {r['mode']}**: {len(counted)} failed in the first "
                f"{fmt_s(WINDOW)} s ({kinds_text(r['summary'])}); {after} sent later, until "
                "the exit (see the SIGTERM table).")
            if r["op"] == "sigterm-plain" or not counted:
                continue
        events = ", ".join(f"{sig} at {t:.2f} s" for t, sig in r["events"])
        if not r["op"].startswith("sigterm"):
            lines.append(f"- **{r['op']}, {r['mode']}**: {len(counted)} failed "
                         f"({kinds_text(r['summary'])}); "
                         f"{'signals: ' + events if events else 'recycling'}; "
                         f"{r['workers_started']} workers started.")
        clusters = cluster(counted)
        for i, group in enumerate(clusters[:3]):
            kinds = {}
            for f in group:
                key = f"{f[2]} ({'reused' if f[3] else 'new'} connection)"
                kinds[key] = kinds.get(key, 0) + 1
            wall = datetime.datetime.fromtimestamp(r["wall0"] + group[0][0])
            lines += [
                "",
                f"  At {group[0][0]:.3f}–{group[-1][0]:.3f} s into the load (from "
                f"{wall.strftime('%H:%M:%S.%f')[:-3]}): "
                + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                + f". corral's log ({r['log']}), from 0.8 s before to 0.4 s after:",
                "",
                "  ```",
            ]
            excerpt = log_excerpt(r, r["wall0"] + group[0][0] - 0.8,
                                  r["wall0"] + group[-1][0] + 0.4)
            lines += [f"  {line}" for line in excerpt] or ["  (no log line in that time)"]
            lines.append("  ```")
        if len(clusters) > 3:
            lines += ["", f"  ... and {len(clusters) - 3} more bursts at "
                      + ", ".join(f"{g[0][0]:.2f} s ({len(g)})" for g in clusters[3:]) + "."]
        lines.append("")

    lines += ["", "Commands (ports differ per launch; extra options per row as above):", ""]
    seen = set()
    for r in runs:
        if r.get("cmd") and (r["name"], r["op"]) not in seen and r["mode"] == MODES[0]:
            seen.add((r["name"], r["op"]))
            lines.append(f"- {r['op']}: `{r['cmd']}`")
    return "\n".join(lines) + "\n"


def cluster(failures, gap=0.3):
    """Failures (sorted by start) in bursts: a new burst after `gap` s without a failure."""
    groups = []
    for f in failures:
        if groups and f[0] - groups[-1][-1][0] <= gap:
            groups[-1].append(f)
        else:
            groups.append([f])
    return groups


def in_counted(run, start):
    if run["op"].startswith("sigterm"):
        return run["t_term"] <= start < run["t_term"] + WINDOW
    return True


def kinds_text(s):
    parts = [f"{s[k]} {k}" for k in KINDS if s.get(k)]
    if s.get("non2xx"):
        parts.append(f"{s['non2xx']} non-2xx")
    return ", ".join(parts) or "—"


def main():
    os.makedirs(LOGS, exist_ok=True)
    for old in os.listdir(LOGS):
        if old.endswith(".log"):
            os.unlink(os.path.join(LOGS, old))
    bench.set_subreaper()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    notes = bench.machine_notes()
    log(f"lifecycle: servers {' '.join(SERVERS)}; {WORKERS} workers; loads {' '.join(MODES)}; "
        f"{CONNECTIONS} clients, {RATE:g} req/s; results in {RESULTS}")
    runs = []
    try:
        for name in SERVERS:
            for mode in MODES:
                for op in OPS:
                    extra = op["servers"].get(name)
                    if extra is None:
                        raise BenchError(f"unknown server {name!r}")
                    if isinstance(extra, str):
                        continue
                    log(f"== {name}, {mode}: {op['title']}")
                    try:
                        run = analyse(run_op(name, op, mode, extra))
                    except BenchError as exc:
                        log(f"ERROR {exc}")
                        runs.append({"name": name, "op": op["key"], "mode": mode,
                                     "error": str(exc)})
                        bench.kill_everything()
                        continue
                    s = run["summary"]
                    log(f"{name} {op['key']} {mode}: sent {s['sent']}, ok {s['ok']}, failed "
                        f"{s['failed']} ({kinds_text(s)}), p50 {f_ms(s['p50'])} ms, p99 "
                        f"{f_ms(s['p99'])} ms, workers started {run['workers_started']}"
                        + (f", exit after {run['exit_s']:.3f} s status {run['status']}"
                           if run.get("exit_s") is not None else ""))
                    runs.append(run)
                    time.sleep(SETTLE)
        rounds = latency_rounds() if LATENCY_ROUNDS > 0 else {}
    finally:
        bench.kill_everything()
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(runs, rounds, notes, load_after)
    for run in runs:  # the report has used them all; the file keeps the first ones
        failures = run.get("failures", [])
        if len(failures) > JSON_FAILURES:
            run["failures"] = failures[:JSON_FAILURES]
            run["failures_left_out"] = len(failures) - JSON_FAILURES
    latency = [{"server": name, "op": key, "mode": mode, **sides}
               for (name, key, mode), sides in rounds.items()]
    bench.write_results("lifecycle", text, {"notes": notes, "load_after": load_after, "runs": runs,
                                            "latency_rounds": latency})
    return 1 if any(r.get("error") for r in runs) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        bench.kill_everything()
        sys.exit(130)
    finally:
        try:
            os.unlink(bench.PIDS_FILE)
        except OSError:
            pass
