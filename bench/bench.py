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
import selectors
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
FASTAPI_PATH = os.environ.get("BENCH_FASTAPI_PATH", "/items/3")
APPS = os.environ.get("BENCH_APPS", "tiny fastapi").split()
APP_MODULES = {"tiny": "app:app", "fastapi": "fastapi_app:app"}
APP_PATHS = {"tiny": PATH, "fastapi": FASTAPI_PATH}
RELEASES = os.environ.get("BENCH_RELEASES", "debian current").split()
SECTIONS = os.environ.get("BENCH_SECTIONS", "load memory startup replace spread").split()
# The source of the current releases (gunicorn, uvicorn, uvicorn-worker), used via PYTHONPATH;
# by default beside this checkout.
ANCHORS = os.path.abspath(os.environ.get("BENCH_ANCHORS")
                          or os.path.join(ROOT, "..", "shared", "anchors"))
CURRENT_DIRS = {"uvicorn": "uvicorn-0.51.0", "gunicorn": "gunicorn-26.1.0",
                "uvicorn_worker": "uvicorn-worker-0.4.0"}
MEM_WORKERS = env_num("BENCH_MEM_WORKERS", 4, int)
MEM_APP = os.environ.get("BENCH_MEM_APP", "fastapi")
MEM_RUNS = max(env_num("BENCH_MEM_RUNS", 1, int), 1)
START_RUNS = max(env_num("BENCH_START_RUNS", 3, int), 1)
REPLACE_RUNS = max(env_num("BENCH_REPLACE_RUNS", 3, int), 1)
SPREAD_LAUNCHES = max(env_num("BENCH_SPREAD_LAUNCHES", 5, int), 1)
SPREAD_DURATION = max(env_num("BENCH_SPREAD_DURATION", 5, int), 2)
SPREAD_APP = os.environ.get("BENCH_SPREAD_APP", "tiny")
SPREAD_SERVERS = os.environ.get("BENCH_SPREAD_SERVERS", "corral gunicorn uvicorn").split()
VERSIONS = {}  # release -> {"uvicorn": ..., "gunicorn": ...}, filled by main()

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


def current_path(*names):
    return os.pathsep.join(os.path.join(ANCHORS, CURRENT_DIRS[n]) for n in names)


def server_env(spec=None):
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("CORRAL_", "UVICORN_", "GUNICORN_", "BENCH_")) or key in (
                "WEB_CONCURRENCY", "PORT", "PYTHONPATH", "VIRTUAL_ENV", "FORWARDED_ALLOW_IPS"):
            del env[key]
    if spec is not None and spec.release == "current":
        # corral's workers inherit its environment, so they import uvicorn 0.51 from here too
        env["PYTHONPATH"] = (current_path("gunicorn", "uvicorn", "uvicorn_worker")
                             if spec.name == "gunicorn" else current_path("uvicorn"))
    return env


class Spec:
    """One configuration: server kind (corral, gunicorn, uvicorn = `uvicorn --workers`, bare =
    one uvicorn process), release of gunicorn/uvicorn (debian or current), app, workers,
    --preload."""

    def __init__(self, name, release="debian", app="tiny", workers=None, preload=False):
        if name not in ("corral", "gunicorn", "uvicorn", "bare"):
            raise BenchError(f"unknown server {name!r} (corral, gunicorn, uvicorn)")
        self.name, self.release, self.app = name, release, app
        self.workers = 1 if name == "bare" else (WORKERS if workers is None else workers)
        self.preload = preload

    @property
    def label(self):
        v = VERSIONS.get(self.release, {})
        uv, gu = v.get("uvicorn", "?"), v.get("gunicorn", "?")
        text = {"corral": f"corral (uvicorn {uv})", "gunicorn": f"gunicorn {gu}",
                "uvicorn": f"uvicorn {uv} --workers", "bare": f"uvicorn {uv}, 1 process"
                }[self.name]
        return text + (" --preload" if self.preload else "")

    def slug(self):
        return (f"{self.name}-{self.release}-{self.app}-w{self.workers}"
                + ("-preload" if self.preload else ""))


def server_command(spec, port):
    """The same app, workers, keep-alive (5 s) and graceful timeout where the server has one;
    access logs off everywhere (gunicorn has none by default)."""
    if isinstance(spec, str):  # lifecycle.py: a server name, Debian's releases, the tiny app
        spec = Spec(spec)
    w, g, module = str(spec.workers), str(GRACEFUL), APP_MODULES[spec.app]
    preload = ["--preload"] if spec.preload else []
    if spec.name == "corral":
        return [CORRAL, "--workers", w, "--bind", f"127.0.0.1:{port}",
                "--admin-bind", f"127.0.0.1:{free_port()}", "--python", PYTHON,
                "--app-dir", BENCH, "--no-access-log", "--graceful-timeout", f"{g}s",
                "--timeout-keep-alive", "5s"] + preload + [module]
    if spec.name == "gunicorn":
        worker = ("uvicorn_worker.UvicornWorker" if spec.release == "current"
                  else "uvicorn.workers.UvicornWorker")
        return [PYTHON, "-m", "gunicorn", "-k", worker, "-w", w,
                "-b", f"127.0.0.1:{port}", "--chdir", BENCH, "--graceful-timeout", g,
                "--keep-alive", "5"] + preload + [module]
    if spec.preload:
        raise BenchError("uvicorn has no --preload")
    if spec.name == "uvicorn":  # 0.17.6 has no graceful timeout
        return [PYTHON, "-m", "uvicorn", "--workers", w, "--host", "127.0.0.1", "--port",
                str(port), "--app-dir", BENCH, "--no-access-log", "--timeout-keep-alive", "5",
                module]
    return [PYTHON, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--app-dir",
            BENCH, "--no-access-log", "--timeout-keep-alive", "5", module]


class Server:
    def __init__(self, spec, run):
        if isinstance(spec, str):
            spec = Spec(spec)
        self.spec = spec
        self.name = spec.label
        self.workers = spec.workers
        self.port = free_port()
        self.cmd = server_command(spec, self.port)
        self.log_path = os.path.join(LOGS, f"{spec.slug()}-{run}.log")
        self.log_file = open(self.log_path, "w")
        self.t_launch = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, cwd=BENCH, env=server_env(spec),
                                     start_new_session=True)
        PROC_CHILDREN.add(self.proc.pid)
        remember_pids([self.proc.pid], group=True)

    @property
    def pid(self):
        return self.proc.pid

    @property
    def cmd_text(self):
        """The command as run, with the PYTHONPATH of a current release (anchors folder named
        $BENCH_ANCHORS, so that the results read the same on every machine)."""
        text = " ".join(self.cmd)
        spec = getattr(self, "spec", None)
        if spec is not None and spec.release == "current":
            path = server_env(spec)["PYTHONPATH"].replace(ANCHORS, "$BENCH_ANCHORS")
            text = f"PYTHONPATH={path} {text}"
        return text

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
            if count >= getattr(self, "workers", WORKERS):
                self.tree()
                return time.monotonic() - self.t_launch
            if time.monotonic() > deadline:
                self.fail(f"only {count} of {getattr(self, 'workers', WORKERS)} workers ready within {BOOT_TIMEOUT:g}s")
            time.sleep(0.01)

    def tree(self):
        pids = descendants(self.pid)
        remember_pids(pids)
        return pids

    def ready_count(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read().count(READY_LINE)
        except OSError:
            return 0

    def worker_pids(self):
        """The tree's processes that serve: not the supervisor, nor corral's worker template,
        nor multiprocessing's resource tracker (uvicorn --workers)."""
        out = []
        for pid in self.tree():
            if pid == self.pid or is_zombie(pid):
                continue
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if comm == "corral-template" or "resource_tracker" in cmdline:
                continue
            out.append(pid)
        return out or [self.pid]  # `uvicorn --workers 1` and bare uvicorn serve themselves

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


def bench_server(spec, rnd):
    name, path = spec.label, APP_PATHS[spec.app]
    log(f"== {name}, {spec.app} app, round {rnd} of {ROUNDS}")
    out = {"name": name, "server": spec.name, "release": spec.release, "app": spec.app,
           "round": rnd, "cold": [], "ready": []}
    server = None
    try:
        for run in range(1, COLD_RUNS + 1):
            server = Server(spec, f"{rnd}-{run}")
            log(f"{name}: run {run}/{COLD_RUNS}: pid {server.pid}, port {server.port}")
            out["cold"].append(server.wait_first_200())
            out["ready"].append(server.wait_all_ready())
            log(f"{name}: first 200 after {out['cold'][-1] * 1000:.0f} ms, all {WORKERS} "
                f"workers ready after {out['ready'][-1] * 1000:.0f} ms")
            if run < COLD_RUNS:
                server.close()
                server = None
                time.sleep(SETTLE / 2)
        out["cmd"] = server.cmd_text
        time.sleep(SETTLE)
        out["mem_idle"] = memory(server.tree())
        log(f"{name}: idle memory {out['mem_idle']}")
        if WARMUP > 0:
            log(f"{name}: warm-up {WARMUP}s")
            run_wrk(server.port, WARMUP, False, path)
        for label, close in (("keep-alive", False), ("close", True)):
            time.sleep(SETTLE)
            log(f"{name}: wrk {label} {DURATION}s, {THREADS} threads, {CONNECTIONS} connections")
            pids = server.tree()
            before, load = cpu_times(pids), os.getloadavg()[0]
            out[label] = run_wrk(server.port, DURATION, close, path)
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
    keys = []  # (app, label) in the order of APPS, RELEASES, SERVERS
    for r in sorted(results, key=lambda r: (APPS.index(r["app"]), RELEASES.index(r["release"]),
                                            SERVERS.index(r["server"]))):
        if (r["app"], r["name"]) not in keys:
            keys.append((r["app"], r["name"]))
    by_server = {key: [r for r in results if (r["app"], r["name"]) == key
                       and not r.get("error")] for key in keys}
    ordered = sorted(results, key=lambda r: (keys.index((r["app"], r["name"])), r["round"]))
    ok_runs = [r for r in ordered if not r.get("error")]
    lines = [
        f"# corral vs gunicorn vs uvicorn — {notes['date']}",
        "",
        f"Machine: {notes['cpu']}, Linux {notes['kernel']}, Debian {notes['debian']}; shared "
        f"and noisy (load average {notes['load']} at start, {load_after} at end). "
        f"{notes['python']}; "
        + "; ".join(f"{rel} releases: uvicorn {v['uvicorn']}, gunicorn {v['gunicorn']}"
                    + (", uvicorn-worker 0.4.0" if rel == "current" else "")
                    for rel, v in notes.get("versions", {}).items())
        + f"; {notes['corral']}, {notes['wrk'].split(' [')[0]}.",
    ]
    if not results:  # BENCH_SECTIONS without "load"
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"Apps: tiny (bench/app.py, plain ASGI, `GET {PATH}` → 13-byte body) and fastapi "
        f"(bench/fastapi_app.py, FastAPI + pydantic, `GET {FASTAPI_PATH}` → small JSON); "
        f"{WORKERS} workers "
        f"each, loopback, nothing pinned, one server at a time; {ROUNDS} round(s), the server "
        f"order rotated each round. wrk: {THREADS} threads, {CONNECTIONS} connections, "
        f"{DURATION} s per run (after a {WARMUP} s unreported keep-alive warm-up), "
        f"--timeout {WRK_TIMEOUT}s.",
        "",
        "## Summary (medians over the rounds)",
        "",
        "| app | server | keep-alive req/s | ÷ corral | keep-alive p99 ms | close req/s "
        "| ÷ corral | close p99 ms "
        "| launch → first 200, ms | supervisor RSS MiB | tree PSS MiB | SIGTERM → exit, ms "
        "| probe requests failed after SIGTERM |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]

    def corral_rps(app, release, label):
        runs = [r for r in results if r["app"] == app and r["release"] == release
                and r["server"] == "corral" and not r.get("error") and r.get(label)]
        return median([r[label]["rps"] for r in runs])

    def ratio(value, base):
        return "—" if value is None or not base else f"{value / base:.2f}"

    for (app, name), runs in by_server.items():
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
        rel = runs[0]["release"]
        lines.append(
            f"| {app} | {name} | {fmt(pick('keep-alive', 'rps'), '.0f')} | "
            f"{ratio(pick('keep-alive', 'rps'), corral_rps(app, rel, 'keep-alive'))} | "
            f"{fmt(pick('keep-alive', 'p99_us'), '.1f', 1e-3)} | "
            f"{fmt(pick('close', 'rps'), '.0f')} | "
            f"{ratio(pick('close', 'rps'), corral_rps(app, rel, 'close'))} | "
            f"{fmt(pick('close', 'p99_us'), '.1f', 1e-3)} | "
            f"{fmt(median([x for r in runs for x in r['cold']]), '.0f', 1e3)} | "
            f"{fmt(pick('mem_idle', 'sup_rss'), '.1f', 1 / 1024)} | "
            f"{fmt(pick('mem_idle', 'tree_pss'), '.1f', 1 / 1024)} | "
            f"{fmt(pick('term', 'exit_s'), '.0f', 1e3)} | "
            f"{' / '.join(f'{f} of {n}' for f, n in zip(fails, sent)) or '—'} |")
    lines += [
        "",
        "Probe requests failed after SIGTERM: for each round, how many of the requests that "
        "the SIGTERM test's probe sent between SIGTERM and the supervisor's exit got no 200 "
        "(details below). ÷ corral: the median req/s divided by corral's on the same app "
        "and the same uvicorn release (corral's workers run the uvicorn of that release).",
        "",
        "## Throughput and latency",
        "",
        "| app | server | load | round | req/s | p50 ms | p99 ms | requests | connect err | read err "
        "| write err | timeouts | non-2xx | CPU s: supervisor | CPU s: other processes "
        "| tree CPU µs/request | load avg |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in ("keep-alive", "close"):
        for r in ok_runs:
            w = r.get(label)
            if not w:
                continue
            lines.append(
                f"| {r['app']} | {r['name']} | {label} | {r['round']} | {w['rps']:.0f} | "
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
        "| app | server | launches | launch → first 200, ms | launch → all workers ready, ms "
        "| supervisor RSS MiB | tree RSS MiB | tree PSS MiB | processes | tree RSS after load MiB "
        "| tree PSS after load MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (app, name), runs in by_server.items():
        runs = [r for r in runs if "mem_idle" in r]
        if not runs:
            continue
        cold = [x for r in runs for x in r["cold"]]
        ready = [x for r in runs for x in r["ready"]]
        mem = {k: median([r["mem_idle"][k] for r in runs]) for k in runs[0]["mem_idle"]}
        load = {k: median([r["mem_load"][k] for r in runs]) for k in runs[0]["mem_load"]}
        lines.append(
            f"| {app} | {name} | {len(cold)} | {describe(cold)} | {describe(ready)} | "
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
        f"| app | server | round | SIGTERM → exit, ms | exit status | exited within {GRACEFUL} s "
        "| leftover processes | wrk ok responses | connect err | read err | write err "
        "| timeouts | non-2xx |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for r in ok_runs:
        t = r.get("term")
        if not t:
            continue
        within = "yes" if t["exited"] and t["exit_s"] <= GRACEFUL else "no"
        lines.append(
            f"| {r['app']} | {r['name']} | {r['round']} | {'—' if t['exit_s'] is None else ms(t['exit_s'])} | "
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
        "| app | server | round | sent | ok | refused | reset | timeout | other "
        "| first failure, ms after SIGTERM | last ok answer, ms after SIGTERM |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
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
            f"| {r['app']} | {r['name']} | {r['round']} | {p['sent']} | {ok} | {refused} | {reset} | "
            f"{timeout} | {other} | "
            f"{'—' if p['first_fail_s'] is None else ms(p['first_fail_s'])} | "
            f"{'—' if p['last_ok_s'] is None else ms(p['last_ok_s'])} |")
    failed = [r for r in ordered if r.get("error")]
    if failed:
        lines += ["", "## Failures", ""]
        lines += [f"- {r['name']}, {r['app']} (round {r['round']}): "
                  f"{r['error'].splitlines()[0]}"
                  for r in failed]
    lines += ["", "Commands (ports differ per launch):", ""]
    seen = set()
    for r in ordered:
        if r.get("cmd") and (r["name"], r["app"]) not in seen:
            seen.add((r["name"], r["app"]))
            lines.append(f"- `{r['cmd']}`")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# extra sections: memory with 4 workers, startup against bare uvicorn, worker replacement,
# keep-alive spread


def launch_ready(spec, tag):
    """A fresh launch, timed: (server, s to first 200, s to all workers ready)."""
    server = Server(spec, tag)
    try:
        first = server.wait_first_200()
        ready = server.wait_all_ready()
    except BaseException:
        server.close()
        raise
    return server, first, ready


def alternate(specs, runs, body, section):
    """Runs body(spec, run) for every spec, `runs` times, the order rotated each time; an error
    is recorded, printed and does not stop the others. Returns the list of results."""
    out = []
    for run in range(1, runs + 1):
        shift = (run - 1) % len(specs)
        for spec in specs[shift:] + specs[:shift]:
            try:
                row = body(spec, run)
            except BenchError as exc:
                log(f"ERROR {section}: {exc}")
                row = {"error": str(exc)}
            row.update(label=spec.label, server=spec.name, release=spec.release, app=spec.app,
                       preload=spec.preload, workers=spec.workers, run=run)
            out.append(row)
            kill_everything()
    return out


def memory_section():
    specs = []
    for rel in RELEASES:
        specs += [Spec("corral", rel, MEM_APP, MEM_WORKERS),
                  Spec("corral", rel, MEM_APP, MEM_WORKERS, preload=True),
                  Spec("gunicorn", rel, MEM_APP, MEM_WORKERS),
                  Spec("gunicorn", rel, MEM_APP, MEM_WORKERS, preload=True),
                  Spec("uvicorn", rel, MEM_APP, MEM_WORKERS)]

    def body(spec, run):
        log(f"memory: {spec.label}, {MEM_WORKERS} workers, {MEM_APP} app, launch {run}")
        server, first, ready = launch_ready(spec, f"mem-{run}")
        try:
            time.sleep(SETTLE)
            for _ in range(20):  # a few requests, so that every worker has served
                http_get(server.port, APP_PATHS[spec.app], 2.0)
            time.sleep(0.2)
            mem = memory(server.tree())
            log(f"memory: {spec.label}: {mem}")
            return {"mem": mem, "ready_s": ready, "cmd": server.cmd_text}
        finally:
            server.close()
    return alternate(specs, MEM_RUNS, body, "memory")


def startup_section():
    specs = [Spec(name, rel, app) for app in APPS for rel in RELEASES
             for name in ("corral", "gunicorn", "uvicorn", "bare")]

    def body(spec, run):
        server, first, ready = launch_ready(spec, f"start-{run}")
        server.close()
        log(f"startup: {spec.label}, {spec.app}: first 200 {first * 1000:.0f} ms, "
            f"all {spec.workers} ready {ready * 1000:.0f} ms")
        return {"first_s": first, "ready_s": ready}
    return alternate(specs, START_RUNS, body, "startup")


REQUEST_PID = b"GET /pid HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def wait_new_pid(port, old, deadline, interval=0.005):
    """Opens a new connection to GET /pid every `interval` s and keeps them all open until one
    answers with a pid not in `old`: (monotonic time of that answer, pid), or (None, None).
    A connection that waits in the listen queue for a worker stays waiting, so the first
    answer from a new pid comes as soon as a new worker serves."""
    sel = selectors.DefaultSelector()
    conns = {}
    next_open = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                return None, None
            if now >= next_open and len(conns) < 500:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                conns[sock] = b""
                sel.register(sock, selectors.EVENT_WRITE)
                next_open = now + interval
            for key, events in sel.select(max(min(next_open, deadline) - now, 0)):
                sock = key.fileobj
                if events & selectors.EVENT_WRITE:
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        sel.unregister(sock)
                        sock.close()
                        del conns[sock]
                        continue
                    try:
                        sock.sendall(REQUEST_PID)
                    except OSError:
                        sel.unregister(sock)
                        sock.close()
                        del conns[sock]
                        continue
                    sel.modify(sock, selectors.EVENT_READ)
                    continue
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                if chunk:
                    conns[sock] += chunk
                    continue
                data = conns.pop(sock)
                sel.unregister(sock)
                sock.close()
                match = re.search(rb'"pid":\s*(\d+)', data)
                if match and int(match.group(1)) not in old:
                    return time.monotonic(), int(match.group(1))
    finally:
        for sock in conns:
            sock.close()
        sel.close()


def replace_section():
    specs = []
    for rel in RELEASES:
        specs += [Spec("corral", rel, "fastapi"), Spec("corral", rel, "fastapi", preload=True),
                  Spec("gunicorn", rel, "fastapi")]
        if rel == "current":  # uvicorn 0.17.6's --workers parent never replaces a worker
            specs.append(Spec("uvicorn", rel, "fastapi"))

    def body(spec, run):
        server, first, ready = launch_ready(spec, f"replace-{run}")
        try:
            time.sleep(SETTLE)
            workers = server.worker_pids()
            if len(workers) != spec.workers:
                server.fail(f"expected {spec.workers} workers, saw pids {workers}")
            status = http_get(server.port, "/pid", 2.0)
            if status != 200:
                server.fail(f"GET /pid answered {status}")
            victim, others = workers[0], workers[1:]
            old = set(server.tree())
            ready_before = server.ready_count()
            # The other workers are stopped (SIGSTOP) so that only a new worker can answer;
            # not under uvicorn --workers, whose parent pings every worker (5 s timeout) and
            # would take a frozen one for a hung one.
            freeze = spec.name != "uvicorn"
            if not freeze:
                others = []
            kill_pids(others, signal.SIGSTOP)
            t_kill = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            t_serve, new_pid = wait_new_pid(server.port, old, t_kill + BOOT_TIMEOUT)
            t_done = time.monotonic()
            kill_pids(others, signal.SIGCONT)
            if t_serve is None:
                server.fail(f"no new worker answered GET /pid within {BOOT_TIMEOUT:g}s")
            # when the replacement logged its ready line, read back from the log's count
            ready_after = server.ready_count()
            spawned = [p for p in server.worker_pids() if p not in old]
            log(f"replace: {spec.label}: killed {victim}, pid {new_pid} served after "
                f"{(t_serve - t_kill) * 1000:.0f} ms")
            return {"serve_s": t_serve - t_kill, "victim": victim, "new_pid": new_pid,
                    "ready_lines": ready_after - ready_before, "new_workers": len(spawned),
                    "poll_s": t_done - t_kill, "frozen": freeze}
        finally:
            server.close()
    return alternate(specs, REPLACE_RUNS, body, "replace")


def established_per_pid(port):
    """pid -> established connections on the server side of `port` (ss), and the number of
    connections without an owner pid."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=20).stdout
    counts, unowned = {}, 0
    for line in out.splitlines():
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if not pids:
            unowned += 1
        for pid in pids:
            counts[pid] = counts.get(pid, 0) + 1
    return counts, unowned


def spread_section():
    specs = [Spec(name, rel, SPREAD_APP, workers) for rel in RELEASES
             for name in SPREAD_SERVERS for workers in (1, WORKERS)]
    path = APP_PATHS[SPREAD_APP]

    def body(spec, run):
        if spec.workers == 1 and run > 1:  # one 1-worker launch per server is the reference
            return {"skipped": True}
        server, first, ready = launch_ready(spec, f"spread-{run}")
        try:
            time.sleep(SETTLE)
            workers = server.worker_pids()
            wrk = start_wrk(server.port, SPREAD_DURATION, False, path)
            time.sleep(SPREAD_DURATION * 0.6)
            counts, unowned = established_per_pid(server.port)
            result = finish_wrk(wrk, SPREAD_DURATION + WRK_TIMEOUT + 30)
            server.check_alive()
            per_worker = sorted((counts.get(p, 0) for p in workers), reverse=True)
            others = {p: n for p, n in counts.items() if p not in workers}
            log(f"spread: {spec.label}, {spec.workers} worker(s): {result['rps']:.0f} req/s, "
                f"connections per worker {per_worker}, elsewhere {others}, unowned {unowned}")
            return {"rps": result["rps"], "per_worker": per_worker, "elsewhere": others,
                    "unowned": unowned, "errors": result["connect"] + result["read"]
                    + result["write"] + result["timeout"] + result["status"]}
        finally:
            server.close()
    rows = alternate(specs, SPREAD_LAUNCHES, body, "spread")
    return [r for r in rows if not r.get("skipped")]


def table(header, aligns, rows):
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def labels_in_order(rows):
    seen = []
    for r in rows:
        key = (r["app"], r["label"])
        if key not in seen:
            seen.append(key)
    return seen


def report_sections(extra):
    lines = []
    errors = [r for rows in extra.values() for r in rows if r.get("error")]
    rows = extra.get("memory")
    if rows:
        lines += ["", f"## Memory with {MEM_WORKERS} workers ({MEM_APP} app)", ""]
        body = []
        for app, label in labels_in_order(rows):
            runs = [r for r in rows if r["label"] == label and not r.get("error")]
            if not runs:
                continue
            base = [r for r in rows if r["release"] == runs[0]["release"]
                    and r["server"] == "corral" and not r["preload"] and not r.get("error")]
            pss = median([r["mem"]["tree_pss"] for r in runs])
            base_pss = median([r["mem"]["tree_pss"] for r in base])
            body.append([label, len(runs), mib(median([r["mem"]["sup_rss"] for r in runs])),
                         mib(median([r["mem"]["tree_rss"] for r in runs])), mib(pss),
                         "—" if pss is None or not base_pss else f"{pss / base_pss:.2f}",
                         f"{median([r['mem']['procs'] for r in runs]):.0f}"])
        lines += table(["server", "launches", "supervisor RSS MiB", "tree RSS MiB",
                        "tree PSS MiB", "PSS ÷ corral", "processes"],
                       ["---", "---:", "---:", "---:", "---:", "---:", "---:"], body)
        lines += ["", f"Each launch: {MEM_WORKERS} workers, measured {SETTLE:g} s after every "
                  "worker was ready and after 20 requests; median over the launches. tree PSS: "
                  "the sum of Pss (`/proc/PID/smaps_rollup`) over the supervisor and all its "
                  "descendants. PSS ÷ corral: against corral without --preload on the same "
                  "uvicorn release."]
    rows = extra.get("startup")
    if rows:
        lines += ["", "## Start-up against one bare uvicorn process", ""]
        body = []
        for app, label in labels_in_order(rows):
            runs = [r for r in rows if (r["app"], r["label"]) == (app, label)
                    and not r.get("error")]
            if not runs:
                continue
            bare = [r for r in rows if r["app"] == app and r["release"] == runs[0]["release"]
                    and r["server"] == "bare" and not r.get("error")]
            first, ready = [r["first_s"] for r in runs], [r["ready_s"] for r in runs]
            bf = median([r["first_s"] for r in bare])
            br = median([r["ready_s"] for r in bare])
            body.append([app, label, runs[0]["workers"], len(runs), describe(first),
                         "—" if not bf else f"{median(first) / bf:.2f}", describe(ready),
                         "—" if not br else f"{median(ready) / br:.2f}"])
        lines += table(["app", "server", "workers", "launches", "launch → first 200, ms",
                        "÷ bare uvicorn", "launch → all workers serving, ms", "÷ bare uvicorn"],
                       ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:"], body)
        lines += ["", "Median (min–max) over fresh launches, alternating between the servers. "
                  "all workers serving: until every worker has logged \"Application startup "
                  "complete.\" (uvicorn logs it once its socket serves). ÷ bare uvicorn: the "
                  "median against a single `uvicorn` process (no --workers) of the same "
                  "release on the same app."]
    rows = extra.get("replace")
    if rows:
        lines += ["", "## A crashed worker's replacement (fastapi app, "
                  f"{WORKERS} workers, SIGKILL)", ""]
        body = []
        for app, label in labels_in_order(rows):
            runs = [r for r in rows if r["label"] == label and not r.get("error")]
            if not runs:
                continue
            body.append([label, "yes" if runs[0].get("frozen", True) else "no", len(runs),
                         describe([r["serve_s"] for r in runs]),
                         ", ".join(ms(r["serve_s"]) for r in runs),
                         ", ".join(str(r["ready_lines"]) for r in runs)])
        lines += table(["server", "other worker frozen", "kills",
                        "SIGKILL → a new worker serves, ms", "each kill, ms", "new ready lines"],
                       ["---", "---", "---:", "---:", "---:", "---:"], body)
        lines += ["", "Each kill is a fresh launch: once every worker is ready, the other "
                  "workers are frozen (SIGSTOP) so that only a new process can answer, one "
                  "worker gets SIGKILL, and from that instant a new connection to `GET /pid` is "
                  "opened every 5 ms and kept open (a connection waiting in the listen queue "
                  "stays waiting); the time is when the first response carrying a pid that was "
                  "not in the tree before arrives. new ready lines: \"Application startup "
                  "complete.\" lines logged in that time. uvicorn 0.17.6's --workers parent "
                  "never replaces a worker, so it is not in the table; uvicorn 0.51's parent "
                  "pings each worker with a 5 s timeout and would replace a frozen one too, so "
                  "there the other worker keeps running (and may answer most polls)."]
    rows = extra.get("spread")
    if rows:
        lines += ["", f"## Keep-alive spread ({SPREAD_APP} app, wrk -c {CONNECTIONS}, "
                  f"{SPREAD_DURATION} s per launch)", ""]
        body = []
        for app, label in labels_in_order(rows):
            one = [r for r in rows if r["label"] == label and r["workers"] == 1
                   and not r.get("error")]
            one_rps = median([r["rps"] for r in one])
            many = [r for r in rows if r["label"] == label and r["workers"] > 1]
            body.append([label, "1 (reference)", 1, fmt(one_rps, ".0f"),
                         " / ".join(str(n) for r in one for n in r["per_worker"]) or "—",
                         "—", "—"])
            for r in many:
                if r.get("error"):
                    body.append([label, r["run"], r["workers"], "error", "—", "—", "—"])
                    continue
                total = sum(r["per_worker"])
                n = r["workers"]
                dev = (max(abs(c / total - 1 / n) for c in r["per_worker"]) if total else None)
                extra_note = (f" (+{sum(r['elsewhere'].values())} held elsewhere)"
                              if r["elsewhere"] else "")
                body.append([label, r["run"], n, f"{r['rps']:.0f}",
                             " / ".join(str(c) for c in r["per_worker"]) + extra_note,
                             fmt(dev, ".2f"),
                             "—" if not one_rps else f"{r['rps'] / (n * one_rps):.2f}"])
        lines += table(["server", "launch", "workers", "req/s", "connections per worker",
                        "max deviation from 1/N", "req/s ÷ (N × 1-worker req/s)"],
                       ["---", "---:", "---:", "---:", "---", "---:", "---:"], body)
        lines += ["", f"Each launch is fresh: wrk keeps {CONNECTIONS} keep-alive connections "
                  f"for {SPREAD_DURATION} s; at 60 % of the run `ss -tnpH state established "
                  "'( sport = :PORT )'` counts the server side's connections by the pid that "
                  "holds them (workers only, largest first). max deviation from 1/N: the largest "
                  "|share − 1/N| over the workers (0 = even, 0.50 with 2 workers = one worker "
                  "has them all). The last column divides req/s by N times the median req/s of "
                  "a 1-worker launch of the same server; on 2 shared cores, with wrk on them "
                  "too, 1.0 is not reachable."]
    if errors:
        lines += ["", "## Failures in the extra sections", ""]
        lines += [f"- {r['label']}, {r['app']} (launch {r['run']}): "
                  f"{r['error'].splitlines()[0]}" for r in errors]
    return lines


def find_versions():
    """Fills VERSIONS for the releases run; drops "current" (with a printed line) when the
    anchors checkout is missing."""
    code = "import uvicorn, gunicorn; print(uvicorn.__version__, gunicorn.__version__)"
    for rel in list(RELEASES):
        env = server_env(Spec("gunicorn", rel))
        if rel == "current":
            missing = [d for d in CURRENT_DIRS.values()
                       if not os.path.isdir(os.path.join(ANCHORS, d))]
            if missing:
                print(f"bench: skipping the current releases (gunicorn 26.1, uvicorn 0.51): "
                      f"{ANCHORS} lacks {', '.join(missing)}; set BENCH_ANCHORS to the folder "
                      "that holds them", flush=True)
                RELEASES.remove(rel)
                continue
        elif rel != "debian":
            sys.exit(f"bench: unknown release {rel!r} in BENCH_RELEASES (debian, current)")
        out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env,
                             timeout=60)
        if out.returncode != 0:
            sys.exit(f"bench: {PYTHON} cannot import uvicorn and gunicorn for the {rel} "
                     f"release:\n{out.stderr[-1500:]}")
        uv, gu = out.stdout.split()
        VERSIONS[rel] = {"uvicorn": uv, "gunicorn": gu}
    if not RELEASES:
        sys.exit("bench: no release left to run")


def main():
    os.makedirs(LOGS, exist_ok=True)
    for old in os.listdir(LOGS):  # logs of an earlier run would be confusing
        if old.endswith(".log"):
            os.unlink(os.path.join(LOGS, old))
    set_subreaper()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    for name in APPS:
        if name not in APP_MODULES:
            sys.exit(f"bench: unknown app {name!r} in BENCH_APPS (tiny, fastapi)")
    for section in SECTIONS:
        if section not in ("load", "memory", "startup", "replace", "spread"):
            sys.exit(f"bench: unknown section {section!r} in BENCH_SECTIONS "
                     "(load, memory, startup, replace, spread)")
    find_versions()
    notes = machine_notes()
    notes["versions"] = VERSIONS
    log(f"servers: {' '.join(SERVERS)}; releases {VERSIONS}; apps {' '.join(APPS)}; "
        f"sections {' '.join(SECTIONS)}; {WORKERS} workers; results in {RESULTS}")
    # Warm the page cache for all of them so the first server's cold start isn't penalized.
    for rel in RELEASES:
        subprocess.run([PYTHON, "-c", "import uvicorn, gunicorn.app.wsgiapp, h11, fastapi"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       check=False, env=server_env(Spec("gunicorn", rel)))
    results, extra = [], {}
    try:
        if "load" in SECTIONS:
            specs = [Spec(name, rel, app) for app in APPS for rel in RELEASES
                     for name in SERVERS]
            for rnd in range(1, ROUNDS + 1):
                shift = (rnd - 1) % len(specs)
                for spec in specs[shift:] + specs[:shift]:
                    try:
                        results.append(bench_server(spec, rnd))
                    except BenchError as exc:
                        log(f"ERROR {exc}")
                        results.append({"name": spec.label, "server": spec.name,
                                        "release": spec.release, "app": spec.app,
                                        "round": rnd, "error": str(exc)})
                    leftovers = server_leftovers()
                    if leftovers:
                        log(f"warning: killing leftover processes {leftovers}")
                        kill_everything()
        for section, run in (("memory", memory_section), ("startup", startup_section),
                             ("replace", replace_section), ("spread", spread_section)):
            if section in SECTIONS:
                log(f"== section {section}")
                extra[section] = run()
    finally:
        kill_everything()
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(results, notes, load_after).rstrip("\n").split("\n")
    text = "\n".join(text + report_sections(extra)) + "\n"
    write_results(os.environ.get("BENCH_RESULTS") or "latest", text, {"notes": notes, "load_after": load_after, "results": results,
                                   "sections": extra})
    failed = any(r.get("error") for r in results) or any(
        r.get("error") for rows in extra.values() for r in rows)
    return 1 if failed else 0


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
