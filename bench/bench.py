#!/usr/bin/python3
"""Side-by-side benchmark of corral, gunicorn + UvicornWorker and `uvicorn --workers`.

Run it through bench/run.sh (which installs wrk/gunicorn/uvicorn and builds corral); the
settings come from the environment, see README.md. It prints markdown tables and writes them to
bench/results/latest.md. It only measures: there are no thresholds and no pass/fail.

Every server runs the same app (bench/app.py) with the same number of workers on loopback, one
server after another. This process makes itself a child subreaper, so whatever a server leaves
behind is re-parented here and killed before the next server starts (and on any exit).
"""

import ctypes
import datetime
import json
import os
import platform
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
RESULTS = os.path.join(BENCH, "results")
LOGS = os.path.join(RESULTS, "logs")
PIDS_FILE = os.path.join(RESULTS, ".pids")  # read by run.sh's trap if this process is killed
LUA = os.path.join(BENCH, "report.lua")
READY_LINE = "Application startup complete."  # uvicorn logs it once per worker, under all three


def env_num(name, default, kind=float):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        sys.exit(f"bench: {name}={raw!r} is not a number")
    if value < 0:
        sys.exit(f"bench: {name} must not be negative")
    return value


PYTHON = os.environ.get("BENCH_PYTHON", "/usr/bin/python3")
CORRAL = os.environ.get("BENCH_CORRAL", os.path.join(ROOT, "build", "corral"))
SERVERS = os.environ.get("BENCH_SERVERS", "corral gunicorn uvicorn").split()
WORKERS = env_num("BENCH_WORKERS", 2, int)
DURATION = env_num("BENCH_DURATION", 10, int)  # each measured wrk run, seconds
WARMUP = env_num("BENCH_WARMUP", 2, int)  # unreported keep-alive run before measuring
THREADS = env_num("BENCH_THREADS", 2, int)
CONNECTIONS = env_num("BENCH_CONNECTIONS", 50, int)
WRK_TIMEOUT = env_num("BENCH_WRK_TIMEOUT", 2, int)  # wrk --timeout, seconds
ROUNDS = max(env_num("BENCH_ROUNDS", 2, int), 1)  # the whole sequence, servers rotated
COLD_RUNS = max(env_num("BENCH_COLD_RUNS", 3, int), 1)  # launches per server and round
BOOT_TIMEOUT = env_num("BENCH_BOOT_TIMEOUT", 60.0)
GRACEFUL = env_num("BENCH_GRACEFUL", 10, int)  # corral/gunicorn --graceful-timeout, seconds
TERM_WINDOW = env_num("BENCH_TERM_WINDOW", 6, int)  # wrk run of the SIGTERM test, seconds
TERM_AT = env_num("BENCH_TERM_AT", 2.0)  # SIGTERM this long after wrk started
PATH = os.environ.get("BENCH_PATH", "/")
TERM_PATH = os.environ.get("BENCH_TERM_PATH", "/")
SETTLE = env_num("BENCH_SETTLE", 1.0)  # pause between phases, seconds
PROBE_TIMEOUT = 3.0  # per probe request in the SIGTERM test

T_START = time.monotonic()
PROC_CHILDREN = set()  # pids of Popen objects we wait for ourselves (never reaped by pid here)


def log(message):
    print(f"[bench {time.monotonic() - T_START:6.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# processes


def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log("warning: PR_SET_CHILD_SUBREAPER failed; orphans would go to init")


def proc_table():
    """pid -> (ppid, starttime) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[19])  # ppid, starttime
    return table


def descendants(root, table=None, include_root=True):
    table = table if table is not None else proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table and (include_root or pid != root):
            out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def remember_pids(pids, group=False):
    """Lets run.sh kill them if this process itself dies without cleaning up: lines are
    "pid PID STARTTIME", or "group PGID STARTTIME" for a server's whole process group."""
    table = proc_table()
    try:
        with open(PIDS_FILE, "a") as f:
            for pid in pids:
                if pid in table:
                    f.write(f"{'group' if group else 'pid'} {pid} {table[pid][1]}\n")
    except OSError:
        pass


def reap_orphans():
    """Waits for the zombies re-parented to us (we are a subreaper), never for Popen children."""
    me = os.getpid()
    for pid, (ppid, _) in proc_table().items():
        if ppid == me and pid not in PROC_CHILDREN:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def server_leftovers(exclude=()):
    """Our descendants other than this process and the given pids (e.g. a running wrk)."""
    me = os.getpid()
    return [p for p in descendants(me, include_root=False) if p not in exclude]


def kill_everything(exclude=(), timeout=10.0):
    """SIGKILLs every descendant but `exclude` and waits until they are gone."""
    deadline = time.monotonic() + timeout
    while True:
        reap_orphans()
        table = proc_table()
        alive = [p for p in descendants(os.getpid(), table, include_root=False)
                 if p not in exclude and not is_zombie(p)]
        if not alive:
            reap_orphans()  # those that died since the last pass
            return True
        kill_pids(alive)
        if time.monotonic() > deadline:
            log(f"warning: processes survive SIGKILL: {alive}")
            return False
        time.sleep(0.02)


def is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2] in "ZX"
    except OSError:
        return True


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env():
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("CORRAL_", "UVICORN_", "GUNICORN_", "BENCH_")) or key in (
                "WEB_CONCURRENCY", "PORT", "PYTHONPATH", "VIRTUAL_ENV", "FORWARDED_ALLOW_IPS"):
            del env[key]
    return env


def server_command(name, port):
    """The same app, workers, keep-alive (5 s) and graceful timeout where the server has one;
    access logs off everywhere (gunicorn has none by default)."""
    w, g = str(WORKERS), str(GRACEFUL)
    if name == "corral":
        return [CORRAL, "--workers", w, "--bind", f"127.0.0.1:{port}",
                "--admin-bind", f"127.0.0.1:{free_port()}", "--python", PYTHON,
                "--app-dir", BENCH, "--no-access-log", "--graceful-timeout", f"{g}s",
                "--timeout-keep-alive", "5s", "app:app"]
    if name == "gunicorn":
        return [PYTHON, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", w,
                "-b", f"127.0.0.1:{port}", "--chdir", BENCH, "--graceful-timeout", g,
                "--keep-alive", "5", "app:app"]
    if name == "uvicorn":  # 0.17.6 has no graceful timeout
        return [PYTHON, "-m", "uvicorn", "--workers", w, "--host", "127.0.0.1", "--port",
                str(port), "--app-dir", BENCH, "--no-access-log", "--timeout-keep-alive", "5",
                "app:app"]
    raise BenchError(f"unknown server {name!r} in BENCH_SERVERS (corral, gunicorn, uvicorn)")


class Server:
    def __init__(self, name, run):
        self.name = name
        self.port = free_port()
        self.cmd = server_command(name, self.port)
        self.log_path = os.path.join(LOGS, f"{name}-{run}.log")
        self.log_file = open(self.log_path, "w")
        self.t_launch = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, cwd=BENCH, env=server_env(),
                                     start_new_session=True)
        PROC_CHILDREN.add(self.proc.pid)
        remember_pids([self.proc.pid], group=True)

    @property
    def pid(self):
        return self.proc.pid

    def log_tail(self, lines=25):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def fail(self, what):
        raise BenchError(f"{self.name}: {what}\n--- last lines of {self.log_path} ---\n"
                         f"{self.log_tail()}--- command: {' '.join(self.cmd)}")

    def check_alive(self):
        if self.proc.poll() is not None:
            self.fail(f"exited with status {self.proc.returncode} while starting")

    def wait_first_200(self):
        """Seconds from launch to the first 200 on the port, polling every 5 ms."""
        deadline = self.t_launch + BOOT_TIMEOUT
        while True:
            self.check_alive()
            now = time.monotonic()
            if now > deadline:
                self.fail(f"no 200 on port {self.port} within {BOOT_TIMEOUT:g}s")
            status = http_get(self.port, "/", deadline - now)
            if status == 200:
                return time.monotonic() - self.t_launch
            time.sleep(0.005)

    def wait_all_ready(self):
        """Seconds from launch until every worker logged READY_LINE (log polled every 10 ms)."""
        deadline = self.t_launch + BOOT_TIMEOUT
        while True:
            self.check_alive()
            try:
                with open(self.log_path, errors="replace") as f:
                    count = f.read().count(READY_LINE)
            except OSError:
                count = 0
            if count >= WORKERS:
                self.tree()
                return time.monotonic() - self.t_launch
            if time.monotonic() > deadline:
                self.fail(f"only {count} of {WORKERS} workers ready within {BOOT_TIMEOUT:g}s")
            time.sleep(0.01)

    def tree(self):
        pids = descendants(self.pid)
        remember_pids(pids)
        return pids

    def close(self):
        """SIGKILLs the whole tree (and anything else left under us) and reaps it."""
        if self.proc.poll() is None:
            kill_pids(self.tree())
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"warning: {self.name} pid {self.pid} did not die")
        PROC_CHILDREN.discard(self.pid)
        kill_everything()
        self.log_file.close()


def http_get(port, path, timeout):
    """Status of GET path, or None if the connection failed (refused, reset, timed out)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=min(timeout, 5.0)) as s:
            s.settimeout(max(timeout, 0.01))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------
# measurements


def memory(pids):
    """(supervisor RSS, tree RSS, tree PSS or None, process count) in KiB; pids[0] is the
    supervisor. PSS counts shared pages once in total (split between the sharers)."""
    rss, pss, count, sup_rss = 0, 0, 0, None
    pss_ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                value = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
        except OSError:
            continue
        if not value:  # zombie
            continue
        kib = int(value.group(1))
        count += 1
        rss += kib
        if sup_rss is None and pid == pids[0]:
            sup_rss = kib
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss += int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))
        except (OSError, AttributeError):
            pss_ok = False
    return {"sup_rss": sup_rss, "tree_rss": rss, "tree_pss": pss if pss_ok else None,
            "procs": count}


def cpu_times(pids):
    """pid -> CPU seconds (user + system) used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def repo_relative(text):
    """Names this checkout's files relative to its top, so that the results read the same
    whichever machine and directory they came from."""
    return text.replace(ROOT + os.sep, "")


def write_results(name, text, payload):
    """Writes results/NAME.md (the tables) and results/NAME.json (the raw numbers), and prints
    the tables."""
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
        f.write(repo_relative(text))
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        f.write(repo_relative(json.dumps(payload, indent=1)))
    print(text)
    log(f"wrote {os.path.join(RESULTS, name + '.md')}")


def start_tool(cmd, stderr=subprocess.PIPE):
    """Starts a load tool (wrk, loader.py) that the cleanup on exit knows to kill."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr, text=True)
    PROC_CHILDREN.add(proc.pid)
    remember_pids([proc.pid])
    return proc


def finish_tool(proc, timeout, name):
    """The tool's (stdout, stderr) once it exits; it is killed if it overruns `timeout`."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"{name} did not finish in time")
    finally:
        PROC_CHILDREN.discard(proc.pid)


def start_wrk(port, duration, close, path):
    cmd = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{duration}s",
           "--timeout", f"{WRK_TIMEOUT}s", "-s", LUA]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    return start_tool(cmd, stderr=subprocess.STDOUT)


def finish_wrk(proc, timeout):
    out, _ = finish_tool(proc, timeout, "wrk")
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            result = json.loads(line[len("WRK_JSON "):])
            result["rps"] = result["requests"] / max(result["duration_us"] / 1e6, 1e-9)
            return result
    raise BenchError(f"wrk printed no summary (status {proc.returncode}):\n{out[-2000:]}")


def run_wrk(port, duration, close, path):
    return finish_wrk(start_wrk(port, duration, close, path), duration + WRK_TIMEOUT + 30)


def freeze_and_stop_wrk(wrk, port):
    """Ends a wrk run the instant the supervisor has exited, with wrk's summary. Once nothing
    listens, wrk retries refused connections in a tight loop (tens of thousands per second),
    and its SIGINT only takes effect at a 100 ms tick: left alone it would add hundreds to
    thousands of errors that belong to no server. So: freeze wrk (SIGSTOP), put a listener that
    never answers on the port, resume it and SIGINT it. Failures wrk had already received count;
    new connections just wait on that listener until wrk stops. Returns that listener (or None
    if the port could not be taken, e.g. an orphan still holds it)."""
    placeholder = None
    try:
        wrk.send_signal(signal.SIGSTOP)
        try:
            placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            placeholder.bind(("127.0.0.1", port))
            placeholder.listen(4096)
        except OSError as exc:
            log(f"warning: could not hold port {port} after the server exited ({exc}); "
                "wrk's errors include up to ~100 ms after the exit")
            placeholder.close()
            placeholder = None
        wrk.send_signal(signal.SIGCONT)
        wrk.send_signal(signal.SIGINT)
    except ProcessLookupError:
        pass
    return placeholder


class Probe:
    """A few clients that send one Connection: close request after another, each timestamped,
    so the SIGTERM test can tell which requests sent after SIGTERM were served, refused or
    reset, and until when the server answered new connections."""

    def __init__(self, port, path, clients=2):
        self.port, self.path = port, path
        self.results = []  # (monotonic start, monotonic end, outcome)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def loop(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            outcome, connected = self.request()
            self.results.append((t0, time.monotonic(), outcome, connected))
            self.stop.wait(0.002)

    def request(self):
        """(outcome, when the connection was made or None)."""
        connected = None
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=PROBE_TIMEOUT) as s:
                connected = time.monotonic()
                s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: bench\r\n"
                          "Connection: close\r\n\r\n".encode())
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        return ("closed" if not data else "bad"), connected
                    data += chunk
        except ConnectionRefusedError:
            return "refused", connected
        except (ConnectionResetError, BrokenPipeError):
            return "reset", connected
        except socket.timeout:
            return "timeout", connected
        except OSError:
            return "error", connected
        match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        if not match:
            return "bad", connected
        return ("ok" if match.group(1) == b"200" else f"http {match.group(1).decode()}"), connected

    def finish(self, t_term, t_exit):
        self.stop.set()
        for thread in self.threads:
            thread.join(PROBE_TIMEOUT + 1)
        after = [(a, b, o, c) for a, b, o, c in list(self.results) if a >= t_term]
        if t_exit is not None:
            # A request sent just before the exit whose connection was only made after it
            # reached the placeholder of freeze_and_stop_wrk; without it, it would have been
            # refused, as nothing else listened any more.
            after = [(a, b, "refused" if c is not None and c >= t_exit and o == "timeout"
                      else o) for a, b, o, c in after if a < t_exit]
        kinds = {}
        for _, _, outcome in after:
            kinds[outcome] = kinds.get(outcome, 0) + 1
        ok_ends = [b - t_term for a, b, o in after if o == "ok"]
        failures = [a - t_term for a, b, o in after if o != "ok"]
        before_failed = sum(1 for a, b, o, c in self.results if a < t_term and o != "ok")
        return {"sent": len(after), "kinds": kinds, "last_ok_s": max(ok_ends, default=None),
                "first_fail_s": min(failures, default=None), "failed_before": before_failed}


def sigterm_test(server):
    """wrk (Connection: close) for TERM_WINDOW s plus a Probe; SIGTERM to the supervisor at
    TERM_AT s. wrk is stopped the moment the supervisor exits (freeze_and_stop_wrk), so its
    errors are those of the time the server was up or draining, not of the time after."""
    pidfd = os.pidfd_open(server.pid)
    wrk = start_wrk(server.port, TERM_WINDOW, True, TERM_PATH)
    t_wrk = time.monotonic()
    probe = Probe(server.port, TERM_PATH)
    placeholder = None
    t_term = t_exit = None
    try:
        time.sleep(max(TERM_AT - (time.monotonic() - t_wrk), 0))
        server.tree()  # remembered for run.sh's trap
        t_term = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        limit = GRACEFUL + 5.0  # uvicorn has no graceful timeout: it gets the same bound
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        exited = bool(poller.poll(limit * 1000))
        if exited:
            t_exit = time.monotonic()
            if wrk.poll() is None:
                placeholder = freeze_and_stop_wrk(wrk, server.port)
        probed = probe.finish(t_term, t_exit)
        status = server.proc.wait(timeout=5) if exited else None
        # What of the tree outlives the supervisor (orphans are re-parented to us): looked at
        # 0.5 s after it exited, so that processes already on their way out are not counted.
        time.sleep(0.5)
        reap_orphans()
        leftovers = [p for p in server_leftovers(exclude={wrk.pid}) if not is_zombie(p)]
        result = finish_wrk(wrk, TERM_WINDOW + WRK_TIMEOUT + 30)
    finally:
        probe.stop.set()
        os.close(pidfd)
        if placeholder is not None:
            placeholder.close()
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
        PROC_CHILDREN.discard(wrk.pid)
    result.update(exited=exited, exit_s=(t_exit - t_term) if exited else None, status=status,
                  leftovers=len(leftovers), wrk_s=result["duration_us"] / 1e6, probe=probed)
    return result


def bench_server(name, rnd):
    log(f"== {name}, round {rnd} of {ROUNDS}")
    out = {"name": name, "round": rnd, "cold": [], "ready": []}
    server = None
    try:
        for run in range(1, COLD_RUNS + 1):
            server = Server(name, f"{rnd}-{run}")
            log(f"{name}: run {run}/{COLD_RUNS}: pid {server.pid}, port {server.port}")
            out["cold"].append(server.wait_first_200())
            out["ready"].append(server.wait_all_ready())
            log(f"{name}: first 200 after {out['cold'][-1] * 1000:.0f} ms, all {WORKERS} "
                f"workers ready after {out['ready'][-1] * 1000:.0f} ms")
            if run < COLD_RUNS:
                server.close()
                server = None
                time.sleep(SETTLE / 2)
        out["cmd"] = " ".join(server.cmd)
        time.sleep(SETTLE)
        out["mem_idle"] = memory(server.tree())
        log(f"{name}: idle memory {out['mem_idle']}")
        if WARMUP > 0:
            log(f"{name}: warm-up {WARMUP}s")
            run_wrk(server.port, WARMUP, False, PATH)
        for label, close in (("keep-alive", False), ("close", True)):
            time.sleep(SETTLE)
            log(f"{name}: wrk {label} {DURATION}s, {THREADS} threads, {CONNECTIONS} connections")
            pids = server.tree()
            before, load = cpu_times(pids), os.getloadavg()[0]
            out[label] = run_wrk(server.port, DURATION, close, PATH)
            server.check_alive()
            after = cpu_times(pids)
            used = {p: after[p] - before[p] for p in pids if p in before and p in after}
            out[label].update(
                loadavg=load, sup_cpu=used.get(server.pid),
                worker_cpu=sorted((v for p, v in used.items() if p != server.pid), reverse=True),
                new_pids=len(set(server.tree()) - set(pids)))
            log(f"{name}: {label}: {fmt_wrk_line(out[label])}")
        out["mem_load"] = memory(server.tree())
        log(f"{name}: memory after load {out['mem_load']}")
        time.sleep(SETTLE)
        log(f"{name}: SIGTERM test: wrk Connection: close for {TERM_WINDOW}s, "
            f"SIGTERM at {TERM_AT:g}s")
        out["term"] = sigterm_test(server)
        t = out["term"]
        log(f"{name}: SIGTERM: {fmt_wrk_line(t)}; exited={t['exited']} "
            f"after {t['exit_s'] if t['exit_s'] is None else round(t['exit_s'], 3)}s "
            f"status={t['status']} leftovers={t['leftovers']}; probe {t['probe']}")
    finally:
        if server is not None:
            server.close()
    return out


def fmt_wrk_line(r):
    return (f"{r['rps']:.0f} req/s, p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f}"
            f" ms, errors connect {r['connect']} read {r['read']} write {r['write']} timeout "
            f"{r['timeout']}, non-2xx {r['status']}")


# ---------------------------------------------------------------------------------------------
# report


def ms(seconds):
    return f"{seconds * 1000:.0f}"


def per_request(w):
    total = sum(w["worker_cpu"]) + (w["sup_cpu"] or 0)
    return f"{total / w['requests'] * 1e6:.0f}" if w["requests"] else "—"


def cpu(seconds):
    return "—" if seconds is None else f"{seconds:.2f}"


def mib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def describe(values):
    if len(values) == 1:
        return ms(values[0])
    return f"{ms(statistics.median(values))} ({ms(min(values))}–{ms(max(values))})"


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0].strip() if text else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_notes():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M).group(1)
    except (OSError, AttributeError):
        pass
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        debian = "?"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{os.cpu_count()} CPUs ({cpu})", "kernel": platform.release(),
        "debian": debian, "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": version([PYTHON, "--version"]),
        "uvicorn": version([PYTHON, "-c", "import uvicorn; print(uvicorn.__version__)"]),
        "gunicorn": version([PYTHON, "-c", "import gunicorn; print(gunicorn.__version__)"]),
        "corral": version([CORRAL, "--version"]), "wrk": version(["wrk", "-v"]),
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, spec, scale=1.0):
    return "—" if value is None else format(value * scale, spec)


def report(results, notes, load_after):
    by_server = {name: [r for r in results if r["name"] == name and not r.get("error")]
                 for name in SERVERS}
    ordered = sorted(results, key=lambda r: (SERVERS.index(r["name"]), r["round"]))
    ok_runs = [r for r in ordered if not r.get("error")]
    lines = [
        f"# corral vs gunicorn vs uvicorn — {notes['date']}",
        "",
        f"Machine: {notes['cpu']}, Linux {notes['kernel']}, Debian {notes['debian']}; shared "
        f"and noisy (load average {notes['load']} at start, {load_after} at end). "
        f"{notes['python']}, uvicorn {notes['uvicorn']}, gunicorn {notes['gunicorn']}, "
        f"{notes['corral']}, {notes['wrk'].split(' [')[0]}.",
        "",
        f"Same app (bench/app.py, plain ASGI, `GET {PATH}` → 13-byte body), {WORKERS} workers "
        f"each, loopback, nothing pinned, one server at a time; {ROUNDS} round(s), the server "
        f"order rotated each round. wrk: {THREADS} threads, {CONNECTIONS} connections, "
        f"{DURATION} s per run (after a {WARMUP} s unreported keep-alive warm-up), "
        f"--timeout {WRK_TIMEOUT}s.",
        "",
        "## Summary (medians over the rounds)",
        "",
        "| server | keep-alive req/s | keep-alive p99 ms | close req/s | close p99 ms "
        "| launch → first 200, ms | supervisor RSS MiB | tree PSS MiB | SIGTERM → exit, ms "
        "| probe requests failed after SIGTERM |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in by_server.items():
        if not runs:
            continue
        def pick(*keys):
            out = []
            for r in runs:
                v = r
                for k in keys:
                    v = v.get(k) if isinstance(v, dict) else None
                out.append(v)
            return median(out)
        fails = [sum(n for k, n in r["term"]["probe"]["kinds"].items() if k != "ok")
                 for r in runs if r.get("term")]
        sent = [r["term"]["probe"]["sent"] for r in runs if r.get("term")]
        lines.append(
            f"| {name} | {fmt(pick('keep-alive', 'rps'), '.0f')} | "
            f"{fmt(pick('keep-alive', 'p99_us'), '.1f', 1e-3)} | "
            f"{fmt(pick('close', 'rps'), '.0f')} | {fmt(pick('close', 'p99_us'), '.1f', 1e-3)} | "
            f"{fmt(median([x for r in runs for x in r['cold']]), '.0f', 1e3)} | "
            f"{fmt(pick('mem_idle', 'sup_rss'), '.1f', 1 / 1024)} | "
            f"{fmt(pick('mem_idle', 'tree_pss'), '.1f', 1 / 1024)} | "
            f"{fmt(pick('term', 'exit_s'), '.0f', 1e3)} | "
            f"{' / '.join(f'{f} of {n}' for f, n in zip(fails, sent)) or '—'} |")
    lines += [
        "",
        "Probe requests failed after SIGTERM: for each round, how many of the requests that "
        "the SIGTERM test's probe sent between SIGTERM and the supervisor's exit got no 200 "
        "(details below).",
        "",
        "## Throughput and latency",
        "",
        "| server | load | round | req/s | p50 ms | p99 ms | requests | connect err | read err "
        "| write err | timeouts | non-2xx | CPU s: supervisor | CPU s: other processes "
        "| tree CPU µs/request | load avg |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: |",
    ]
    for label in ("keep-alive", "close"):
        for r in ok_runs:
            w = r.get(label)
            if not w:
                continue
            lines.append(
                f"| {r['name']} | {label} | {r['round']} | {w['rps']:.0f} | "
                f"{w['p50_us'] / 1000:.2f} | {w['p99_us'] / 1000:.2f} | {w['requests']} | "
                f"{w['connect']} | {w['read']} | {w['write']} | {w['timeout']} | {w['status']} | "
                f"{cpu(w['sup_cpu'])} | {' + '.join(cpu(v) for v in w['worker_cpu']) or '—'}"
                f"{' (+%d new)' % w['new_pids'] if w['new_pids'] else ''} | "
                f"{per_request(w)} | {w['loadavg']:.1f} |")
    lines += [
        "",
        "keep-alive: wrk reuses its connections; close: every request on a new connection "
        "(`Connection: close`). Errors are wrk's socket errors; non-2xx counts responses with "
        "a status >= 400. CPU s: CPU time used during the run by the supervisor and by each "
        "other process of its tree (largest first): it shows how evenly the workers shared the "
        "load. tree CPU µs/request: all that CPU time divided by the requests served, a "
        "measure of cost that the machine's noise moves less than req/s does. load avg: the "
        "machine's 1-minute load average when the run started.",
        "",
        "## Startup and memory",
        "",
        "| server | launches | launch → first 200, ms | launch → all workers ready, ms "
        "| supervisor RSS MiB | tree RSS MiB | tree PSS MiB | processes | tree RSS after load MiB "
        "| tree PSS after load MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in by_server.items():
        runs = [r for r in runs if "mem_idle" in r]
        if not runs:
            continue
        cold = [x for r in runs for x in r["cold"]]
        ready = [x for r in runs for x in r["ready"]]
        mem = {k: median([r["mem_idle"][k] for r in runs]) for k in runs[0]["mem_idle"]}
        load = {k: median([r["mem_load"][k] for r in runs]) for k in runs[0]["mem_load"]}
        lines.append(
            f"| {name} | {len(cold)} | {describe(cold)} | {describe(ready)} | "
            f"{mib(mem['sup_rss'])} | {mib(mem['tree_rss'])} | {mib(mem['tree_pss'])} | "
            f"{mem['procs']:.0f} | {mib(load['tree_rss'])} | {mib(load['tree_pss'])} |")
    lines += [
        "",
        "Cold start: median (min–max) over all launches. first 200: launch until `GET /` "
        "first answers 200 (polled every 5 ms; a connection that waits in the backlog counts "
        "as waiting). all workers ready: until every worker has logged \"Application startup "
        "complete.\". Memory (median over rounds) is taken 1 s after that on the last launch "
        "of a round, and again after its load runs; RSS counts shared pages once per process, "
        "PSS splits them between the processes sharing them.",
        "",
        f"## SIGTERM under load (wrk Connection: close; SIGTERM at {TERM_AT:g} s of a "
        f"{TERM_WINDOW} s run; wrk stopped the moment the supervisor exits)",
        "",
        f"| server | round | SIGTERM → exit, ms | exit status | exited within {GRACEFUL} s "
        "| leftover processes | wrk ok responses | connect err | read err | write err "
        "| timeouts | non-2xx |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in ok_runs:
        t = r.get("term")
        if not t:
            continue
        within = "yes" if t["exited"] and t["exit_s"] <= GRACEFUL else "no"
        lines.append(
            f"| {r['name']} | {r['round']} | {'—' if t['exit_s'] is None else ms(t['exit_s'])} | "
            f"{'—' if t['status'] is None else t['status']} | {within} | {t['leftovers']} | "
            f"{t['requests'] - t['status']} | {t['connect']} | {t['read']} | {t['write']} | "
            f"{t['timeout']} | {t['status']} |")
    lines += [
        "",
        "wrk counts every failed attempt, and it reconnects at once after a refused connection, "
        "so a refused window shows up as thousands of write/connect errors: compare the kinds "
        "and the windows more than the sizes. leftover processes: processes of the tree still "
        "alive 0.5 s after the supervisor exited.",
        "",
        "Probe during the same run (2 clients, one `Connection: close` request after another, "
        "alongside wrk): the requests they sent between SIGTERM and the supervisor's exit.",
        "",
        "| server | round | sent | ok | refused | reset | timeout | other "
        "| first failure, ms after SIGTERM | last ok answer, ms after SIGTERM |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in ok_runs:
        t = r.get("term")
        if not t:
            continue
        p = t["probe"]
        k = dict(p["kinds"])
        ok, refused, reset, timeout = (k.pop(x, 0) for x in ("ok", "refused", "reset", "timeout"))
        other = ", ".join(f"{v} {n}" for n, v in sorted(k.items())) or "0"
        lines.append(
            f"| {r['name']} | {r['round']} | {p['sent']} | {ok} | {refused} | {reset} | "
            f"{timeout} | {other} | "
            f"{'—' if p['first_fail_s'] is None else ms(p['first_fail_s'])} | "
            f"{'—' if p['last_ok_s'] is None else ms(p['last_ok_s'])} |")
    failed = [r for r in ordered if r.get("error")]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- {r['name']} (round {r['round']}): {r['error'].splitlines()[0]}"
                  for r in failed]
    lines += ["", "Commands (ports differ per launch):", ""]
    seen = set()
    for r in ordered:
        if r.get("cmd") and r["name"] not in seen:
            seen.add(r["name"])
            lines.append(f"- `{r['cmd']}`")
    return "\n".join(lines) + "\n"


def main():
    os.makedirs(LOGS, exist_ok=True)
    for old in os.listdir(LOGS):  # logs of an earlier run would be confusing
        if old.endswith(".log"):
            os.unlink(os.path.join(LOGS, old))
    set_subreaper()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    notes = machine_notes()
    log(f"servers: {' '.join(SERVERS)}; {WORKERS} workers; results in {RESULTS}")
    # Warm the page cache for all three so the first server's cold start isn't penalized.
    subprocess.run([PYTHON, "-c", "import uvicorn, uvicorn.workers, gunicorn.app.wsgiapp, h11"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
    results = []
    try:
        for rnd in range(1, ROUNDS + 1):
            shift = (rnd - 1) % len(SERVERS)
            for name in SERVERS[shift:] + SERVERS[:shift]:
                try:
                    results.append(bench_server(name, rnd))
                except BenchError as exc:
                    log(f"ERROR {exc}")
                    results.append({"name": name, "round": rnd, "error": str(exc)})
            leftovers = server_leftovers()
            if leftovers:
                log(f"warning: killing leftover processes {leftovers}")
                kill_everything()
    finally:
        kill_everything()
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(results, notes, load_after)
    write_results("latest", text, {"notes": notes, "load_after": load_after, "results": results})
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        kill_everything()
        sys.exit(130)
    finally:
        try:
            os.unlink(PIDS_FILE)
        except OSError:
            pass
