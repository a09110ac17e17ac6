"""Shared fixtures and helpers for corral's integration tests.

Every test drives the real binary ($CORRAL_BIN) with real uvicorn workers running the apps in
apps/ through $CORRAL_TEST_PYTHON. Ports are always 127.0.0.1:0; the real ports are read from
corral's own log lines ("listening on ...", "admin on ..."). Nothing waits a fixed time: every
wait is a poll of a condition with a generous deadline, because the suite runs with ctest -j2 on
a small, shared machine.

The `corral` fixture starts corral in its own session with stdout and stderr going to files in
the test's tmp_path (workers inherit them, so uvicorn's and faulthandler's output lands there
too). At teardown it stops every corral still running with SIGTERM and checks that it exits and
that no worker outlives it, kills whatever is left (so a failing test never leaves a process
holding a port), and fails if the log shows a sanitizer report.

corral.start(pidns=True) runs corral as PID 1 of a new pid namespace (unshare), and
corral.start(tty=True) on a pseudo-terminal that is its controlling terminal; see Corral.
"""

from __future__ import annotations

import atexit
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import uvicorn_under_test

INTEGRATION_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEGRATION_DIR.parents[1]
CORRAL_BIN = os.environ.get("CORRAL_BIN", str(REPO_ROOT / "build" / "corral"))
# The workers' interpreter: $CORRAL_TEST_PYTHON, or a wrapper of it whose workers import the
# uvicorn in $CORRAL_TEST_UVICORN (see uvicorn_under_test.py).
PYTHON = uvicorn_under_test.interpreter(os.environ.get("CORRAL_TEST_PYTHON", "/usr/bin/python3"),
                                        os.environ.get("CORRAL_TEST_UVICORN"))

# Deadlines are generous on purpose: a deadline only bounds how long a *failing* test takes.
STARTUP_DEADLINE = 30.0
EVENT_DEADLINE = 20.0
EXIT_DEADLINE = 20.0

# One of corral's own log lines: "<timestamp> <level> corral[<pid>]: <message>" (the workers'
# lines name their slot instead: "worker-0[<pid>]:"), or, with --log-format json, an object
# whose logger is "corral". The timestamp's format is not relied on here (it is only parsed,
# when it can be, to report how far apart two events were; test_logs.py checks it).
LOG_LINE = re.compile(
    r"^(?P<ts>\S+)\s+\[?(?P<level>trace|debug|info|warning|warn|error|err|critical)\]?\s+"
    r"(?P<msg>.*)$"
)
AUTHOR = re.compile(r"^(?P<who>corral|worker-\d+|template)\[\d+\]: ")
# On the journal a line starts with its priority instead of a timestamp.
JOURNAL_PRIORITY = re.compile(r"^<[0-7]>")
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:")
STACK_TRACE = re.compile(
    r"Traceback \(most recent call last\)|terminate called|what\(\):|Aborted|core dumped|"
    r"Segmentation fault|AddressSanitizer|runtime error:"
)

SPAWNED = re.compile(r"worker (?P<slot>\d+) spawned \(pid (?P<pid>\d+)\)")
READY = re.compile(r"worker (?P<slot>\d+) ready \(pid (?P<pid>\d+)\) in (?P<ms>\d+)\s*ms")
EXITED = re.compile(
    r"worker (?P<slot>\d+) exited \(pid (?P<pid>\d+)\): (?P<how>.*) \((?P<why>[^()]+)\)\s*$"
)
LISTENING = re.compile(r"listening on (?P<url>\S+)")
ADMIN = re.compile(r"admin on http://(?P<host>[^\s/]+):(?P<port>\d+)")


# --------------------------------------------------------------------------------------------
# Small generic helpers
# --------------------------------------------------------------------------------------------


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    """Polls predicate() until it returns something truthy; returns that, or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], session [3])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def pid_alive(pid: int) -> bool:
    """True while PID exists and is not a zombie (a zombie holds no socket and runs no code)."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _descendants_and_session(root: int) -> set[int]:
    """Live processes below root (by parent chain) or in root's session."""
    children: dict[int, list[int]] = {}
    session_members = set()
    for pid in _all_pids():
        fields = _proc_stat(pid)
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(pid)
        if int(fields[3]) == root and pid != root:
            session_members.add(pid)
    found = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found | session_members


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def pid_namespace(pid: int) -> str | None:
    """The pid namespace PID lives in ("pid:[4026531836]"), or None if it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def namespace_members(init_host_pid: int) -> dict[int, int]:
    """Every live process in the pid namespace whose init has host pid init_host_pid:
    {pid inside the namespace: pid on the host}, read from the NSpid line of /proc/PID/status."""
    ns = pid_namespace(init_host_pid)
    members = {}
    if ns is None:
        return members
    for pid in _all_pids():
        if pid_namespace(pid) != ns:
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                members[int(line.split()[-1])] = pid
    return members


def metric(c, name: str) -> int:
    """The value of an unlabelled counter or gauge on corral's /metrics."""
    text = c.admin("/metrics", timeout=5).text
    match = re.search(rf"^{name} (\d+)\s*$", text, re.M)
    assert match, f"/metrics has no {name}:\n{text}"
    return int(match.group(1))


def is_worker_template(pid: int) -> bool:
    """Whether PID is corral's worker template (--start-method forkserver), which says so in
    its process name."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "corral-template"
    except OSError:
        return False


def without_template(members: dict[int, int]) -> dict[int, int]:
    """namespace_members() but for the worker template."""
    return {pid: host for pid, host in members.items() if not is_worker_template(host)}


def wait_template(c) -> int:
    """The (host) pid of corral's one worker template, once it has named itself, which it does
    as it starts."""
    def one():
        pids = namespace_members(c.main_pid).values() if c.pidns else children_of(c.pid)
        found = [pid for pid in pids if is_worker_template(pid)]
        return found[0] if len(found) == 1 else None

    return wait_until(one, EVENT_DEADLINE, "one worker template among corral's children")


def children_of(pid: int) -> list[int]:
    found = []
    for candidate in _all_pids():
        fields = _proc_stat(candidate)
        if fields is not None and int(fields[1]) == pid:
            found.append(candidate)
    return found


def proc_state(pid: int) -> str | None:
    """The one-letter state of /proc/PID/stat (R, S, T, Z...), or None if PID is gone."""
    fields = _proc_stat(pid)
    return fields[0] if fields else None


ANSI_ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def parse_log_time(ts: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(ts.replace("Z", ""))
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# Files for unprivileged processes
# --------------------------------------------------------------------------------------------

_world_readable: Path | None = None


def world_readable_dir() -> Path:
    """A folder of this test session that any user can read, removed when the session ends.
    Workers that run as --user nobody, and corral itself where a test runs it as nobody, get
    their files from here: the checkout may live where nobody cannot go (/root is 700 on a
    fresh machine)."""
    global _world_readable
    if _world_readable is None:
        # Not $TMPDIR: it may be private to root. /tmp is 1777 on every Linux.
        _world_readable = Path(tempfile.mkdtemp(prefix="corral-test-", dir="/tmp"))
        _world_readable.chmod(0o755)
        atexit.register(shutil.rmtree, _world_readable, True)
    return _world_readable


def _open_to_all(root: Path) -> None:
    """Folders 755, files 644 (755 if executable), whatever the checkout's umask was."""
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)


def app_dir() -> Path:
    """The --app-dir of every test: a copy of apps/ that any user can import."""
    target = world_readable_dir() / "app-dir"
    if not target.exists():
        shutil.copytree(INTEGRATION_DIR / "apps", target / "apps",
                        ignore=shutil.ignore_patterns("__pycache__"))
        _open_to_all(target)
    return target


def unprivileged_corral_bin() -> str:
    """A copy of $CORRAL_BIN that any user can run, for tests that start corral as nobody."""
    target = world_readable_dir() / "bin" / "corral"
    if not target.exists():
        target.parent.mkdir()
        shutil.copy(CORRAL_BIN, target)
        _open_to_all(target.parent)
    return str(target)


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def http_request(port: int, path: str, method: str = "GET", timeout: float = 10.0,
                 headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> Response:
    """One request on a fresh connection (Connection: close). Raises OSError/HTTPException."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Connection": "close", **(headers or {})})
        resp = conn.getresponse()
        body = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body,
                        time.monotonic() - started)
    finally:
        conn.close()


def http_get(port: int, path: str, timeout: float = 10.0) -> Response:
    return http_request(port, path, "GET", timeout)


def raw_exchange(port: int, payload: bytes, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Sends raw bytes, reads until the peer closes or timeout. Returns (reply, closed_by_peer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything we send
        reply = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return reply, False
            except ConnectionResetError:
                return reply, True
            if not chunk:
                return reply, True
            reply += chunk
        return reply, False


class InflightRequest:
    """A request sent on its own socket whose response is read by a background thread.

    The client socket's local port identifies the connection in /proc/net/tcp, so a test can
    wait until a worker has really accepted and read the request (see Corral.wait_taken).
    """

    def __init__(self, port: int, path: str, timeout: float = 60.0):
        self.path = path
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.status: int | None = None
        self.body = b""
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        data = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            self.sock.close()
        head, _, body = data.partition(b"\r\n\r\n")
        match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        if match:
            self.status = int(match.group(1))
            self.body = body

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"request {self.path} still running after {timeout} s"

    def __repr__(self):
        return (f"<request {self.path} from :{self.local_port} status={self.status} "
                f"error={self.error!r}>")


# --------------------------------------------------------------------------------------------
# /proc/net/tcp: which worker took a connection, and has it read the request yet
# --------------------------------------------------------------------------------------------


def tcp_table() -> list[dict]:
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            tx, rx = parts[4].split(":")
            rows.append({
                "local_port": int(parts[1].rsplit(":", 1)[1], 16),
                "remote_port": int(parts[2].rsplit(":", 1)[1], 16),
                "state": parts[3],
                "rx_queue": int(rx, 16),
                "inode": int(parts[9]),
            })
    return rows


def server_side_of(server_port: int, client_port: int) -> dict | None:
    """The server end (ESTABLISHED) of the connection client_port -> server_port."""
    for row in tcp_table():
        if (row["local_port"] == server_port and row["remote_port"] == client_port
                and row["state"] == "01"):
            return row
    return None


def fd_targets(pid: int) -> dict[int, str]:
    """fd -> what it points to ("socket:[123]", a path...), from /proc/PID/fd."""
    targets = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return targets


def socket_owner(inode: int, pids) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


# --------------------------------------------------------------------------------------------
# corral
# --------------------------------------------------------------------------------------------


# Run by a session leader whose stdin is a terminal: make it the controlling terminal, then exec.
_TAKE_TTY = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
             "os.execvp(sys.argv[1], sys.argv[1:])")


@dataclass
class LogEntry:
    ts: str
    level: str
    msg: str


@dataclass
class Corral:
    """One corral process started by the `corral` fixture."""

    args: list[str]
    env: dict[str, str]
    workdir: Path
    proc: subprocess.Popen | None = None
    returncode: int | None = None
    _port: int | None = None
    _admin_port: int | None = None
    stderr_path: Path = field(init=False)
    stdout_path: Path = field(init=False)
    # pidns: corral runs as PID 1 of a new pid namespace (`unshare -p -f --mount-proc`); proc is
    # then the unshare process, main_pid corral's host pid, and the worker pids in the log are
    # pids inside the namespace (host_pid() translates them).
    pidns: bool = False
    # tty: corral's stdin, stdout and stderr are a pseudo-terminal whose controlling process
    # corral is (Ctrl-C reaches it); what it writes there is copied, colours stripped, into
    # stderr_path so that the log helpers work unchanged. tty_master is the terminal's side.
    tty: bool = False
    tty_master: int | None = field(default=None, init=False)
    _tty_reader: threading.Thread | None = field(default=None, init=False)
    _main_pid: int | None = field(default=None, init=False)
    _host_pids: dict[int, int] = field(default_factory=dict, init=False)

    def __post_init__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.workdir / "stderr.log"
        self.stdout_path = self.workdir / "stdout.log"

    def start(self, wrapper: list[str] | None = None, pass_fds: tuple[int, ...] = ()) -> "Corral":
        # Under a wrapper that drops privileges the process gets a working directory anyone
        # may enter, since pytest's tmp_path is private to root.
        wrapper = list(wrapper or [])
        if self.pidns:
            wrapper = ["unshare", "--pid", "--fork", "--mount-proc", *wrapper]
        if self.tty:
            # After start_new_session's setsid(), this takes the terminal on stdin as the
            # session's controlling terminal, then execs the rest in place (same pid).
            wrapper = [PYTHON, "-c", _TAKE_TTY, *wrapper]
        if self.tty:
            return self._start_on_tty(wrapper, pass_fds)
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [*wrapper, *self.args], stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, env=self.env, cwd="/" if wrapper else self.workdir,
                start_new_session=True, pass_fds=pass_fds)
        self.started_at = time.monotonic()
        return self

    def _start_on_tty(self, wrapper: list[str], pass_fds: tuple[int, ...]) -> "Corral":
        master, slave = os.openpty()
        self.stdout_path.write_bytes(b"")
        try:
            self.proc = subprocess.Popen(
                [*wrapper, *self.args], stdin=slave, stdout=slave, stderr=slave, env=self.env,
                cwd="/", start_new_session=True, pass_fds=pass_fds)
        finally:
            os.close(slave)
        self.tty_master = master
        self.started_at = time.monotonic()
        self._tty_reader = threading.Thread(target=self._copy_tty, daemon=True)
        self._tty_reader.start()
        return self

    def _copy_tty(self) -> None:
        """Copies the terminal's output to stderr_path line by line, without colour codes.
        Ends when every process holding the terminal's other side has closed it (EIO)."""
        pending = b""
        with open(self.stderr_path, "wb") as log:
            while True:
                try:
                    chunk = os.read(self.tty_master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    log.write(ANSI_ESCAPE.sub(b"", line).rstrip(b"\r") + b"\n")
                log.flush()
            if pending:
                log.write(ANSI_ESCAPE.sub(b"", pending))

    def close_tty(self) -> None:
        if self._tty_reader is not None:
            self._tty_reader.join(5)
        if self.tty_master is not None:
            os.close(self.tty_master)
            self.tty_master = None

    # ---- process -----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def main_pid(self) -> int:
        """corral's own pid on the host: proc's pid, or under pidns the child of unshare."""
        if not self.pidns:
            return self.proc.pid
        if self._main_pid is None:
            def child():
                if self.proc.poll() is not None:
                    pytest.fail(f"unshare exited (code {self.proc.returncode}) before corral "
                                f"could be found; log:\n{self.tail()}")
                found = children_of(self.proc.pid)
                return found[0] if found else None
            self._main_pid = wait_until(child, STARTUP_DEADLINE, "corral under unshare")
        return self._main_pid

    def host_pid(self, pid: int) -> int | None:
        """The host pid of a pid from corral's log (the same pid unless pidns), or None when
        that process cannot be found (any more)."""
        if not self.pidns:
            return pid
        if pid not in self._host_pids and self.proc is not None and self.running:
            self._host_pids.update(namespace_members(self.main_pid))
        return self._host_pids.get(pid)

    def host_worker_pids(self) -> list[int]:
        """all_worker_pids() as host pids (under pidns only those that could be translated)."""
        pids = [self.host_pid(pid) for pid in self.all_worker_pids()]
        return [pid for pid in pids if pid is not None]

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    @property
    def running(self) -> bool:
        return self.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.pidns:
            # unshare blocks SIGTERM and SIGINT while it waits: the signal goes to corral.
            if self.running:
                os.kill(self.main_pid, sig)
            return
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = EXIT_DEADLINE) -> int:
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"corral (pid {self.pid}) still running {timeout:.0f} s later; "
                        f"log tail:\n{self.tail()}")
        return self.returncode

    def kill_tree(self) -> None:
        """SIGKILLs corral, everything below it or in its session, and every worker it logged."""
        victims = _descendants_and_session(self.pid) if self.proc else set()
        for pid in self.host_worker_pids():
            # A worker shows its title (worker/shim.py, retitle) once it has started.
            if pid_alive(pid) and any("python" in part or part.startswith("corral worker ")
                                      for part in _cmdline(pid)[:1]):
                victims.add(pid)
        if self.proc and self.running:
            victims.add(self.pid)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.returncode = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.close_tty()

    # ---- log ---------------------------------------------------------------------------------

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def entries(self) -> list[LogEntry]:
        """corral's own log lines (workers' output shares the file but is not in this list)."""
        found = []
        for line in self.stderr_text().splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("logger") == "corral":
                    found.append(LogEntry(record["time"], record["level"], record["message"]))
                continue
            journal = JOURNAL_PRIORITY.match(line)
            if journal:
                line = "- " + line[journal.end():]
            match = LOG_LINE.match(line)
            if not match:
                continue
            author = AUTHOR.match(match["msg"])
            if author and author["who"] != "corral":
                continue  # a worker's line
            msg = match["msg"][author.end():] if author else match["msg"]
            found.append(LogEntry(match["ts"], match["level"], msg))
        return found

    def messages(self) -> list[str]:
        return [entry.msg for entry in self.entries()]

    def mark(self) -> int:
        """Position in the log; pass as `after` to wait for events that happen from now on."""
        return len(self.entries())

    def find_log(self, pattern: str | re.Pattern, after: int = 0) -> list[re.Match]:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        return [m for m in (regex.search(msg) for msg in self.messages()[after:]) if m]

    def wait_for_log(self, pattern: str | re.Pattern, timeout: float = EVENT_DEADLINE,
                     after: int = 0, count: int = 1) -> re.Match:
        """Waits until `count` of corral's log messages (from position `after`) match; returns
        the count-th match. Fails early, with the log, if corral exits first."""
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.running
            matches = self.find_log(pattern, after)
            if len(matches) >= count:
                return matches[count - 1]
            if exited:
                pytest.fail(f"corral exited (code {self.returncode}) before logging "
                            f"{pattern!r}; log tail:\n{self.tail()}")
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for log {pattern!r}; "
                            f"log tail:\n{self.tail()}")
            time.sleep(0.02)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.stderr_text().splitlines()[-lines:])

    # ---- what the log says about the sockets and the workers ---------------------------------

    @property
    def port(self) -> int:
        """The first TCP port corral logged it listens on."""
        if self._port is None:
            match = self.wait_for_log(r"listening on http://127\.0\.0\.1:(\d+)",
                                      STARTUP_DEADLINE)
            self._port = int(match.group(1))
        return self._port

    @property
    def admin_port(self) -> int:
        if self._admin_port is None:
            self._admin_port = int(self.wait_for_log(ADMIN, STARTUP_DEADLINE)["port"])
        return self._admin_port

    def spawns(self) -> list[tuple[int, int]]:
        return [(int(m["slot"]), int(m["pid"])) for m in self.find_log(SPAWNED)]

    def worker_pids(self) -> dict[int, int]:
        """slot -> pid of the latest worker spawned in that slot."""
        return dict(self.spawns())

    def all_worker_pids(self) -> list[int]:
        return [pid for _, pid in self.spawns()]

    def ready_pids(self) -> set[int]:
        return {int(m["pid"]) for m in self.find_log(READY)}

    def wait_ready(self, workers: int, timeout: float = STARTUP_DEADLINE) -> dict[int, int]:
        """Waits until slots 0..workers-1 each have a worker that logged ready; returns them."""

        def all_ready():
            if not self.running:
                pytest.fail(f"corral exited (code {self.returncode}) while starting; log:\n"
                            f"{self.tail()}")
            current = self.worker_pids()
            ready = self.ready_pids()
            if all(current.get(slot) in ready for slot in range(workers)):
                return {slot: current[slot] for slot in range(workers)}
            return None

        return wait_until(all_ready, timeout, f"{workers} ready workers; log tail:\n{self.tail()}")

    def fork_workers(self) -> dict[int, int]:
        """Replaces every worker with one forked from the worker template, by SIGKILLing it
        until its replacement is forked (the first ones start afresh while the template boots);
        returns slot -> pid of the forked workers, all ready."""
        for slot in sorted(self.worker_pids()):
            for _ in range(20):
                mark = self.mark()
                os.kill(self.worker_pids()[slot], signal.SIGKILL)
                spawned = self.wait_for_log(rf"worker {slot} spawned \(pid (\d+)\)(.*)",
                                            after=mark)
                self.wait_for_log(rf"worker {slot} ready \(pid {spawned[1]}\)", after=mark)
                if spawned[2] == ", forked from the template":
                    break
            else:
                pytest.fail(f"worker {slot} was never forked from the template:\n{self.tail()}")
        return self.worker_pids()

    # ---- requests ----------------------------------------------------------------------------

    def get(self, path: str, timeout: float = 10.0) -> Response:
        return http_get(self.port, path, timeout)

    def admin(self, path: str, method: str = "GET", timeout: float = 10.0) -> Response:
        return http_request(self.admin_port, path, method, timeout)

    def wait_taken(self, request: InflightRequest, pids=None,
                   timeout: float = EVENT_DEADLINE) -> int:
        """Waits until a worker has accepted the request's connection and read the request
        (the server end is in a worker's fd table with nothing left in its receive queue).
        Returns that worker's pid. pids: the workers to look at (default: the latest worker of
        each slot; pass them when a slot also has an older worker still serving)."""

        def taken():
            row = server_side_of(self.port, request.local_port)
            if row is None or row["inode"] == 0 or row["rx_queue"] != 0:
                return None
            return socket_owner(row["inode"], pids if pids is not None
                                else self.worker_pids().values())

        return wait_until(taken, timeout, f"a worker to take {request!r}")


def stop_worker_until_replaced(c: "Corral", slot: int, min_ready: int | None):
    """SIGSTOPs a worker: its heartbeats stop and SIGABRT stays pending, so corral must fall
    back to SIGKILL. Returns /ready's answer in the window between the hung report and the
    replacement, with the number of ready workers /healthz gave at that moment."""
    victim = c.worker_pids()[slot]
    mark = c.mark()
    os.kill(victim, signal.SIGSTOP)
    c.wait_for_log(rf"worker {slot} hung \(pid {victim}\)", after=mark)
    ready = c.admin("/ready", timeout=5)
    health = json.loads(c.admin("/healthz", timeout=5).text)
    print(f"min-ready {min_ready}: /ready {ready.status} {ready.text!r}; /healthz {health}")
    killed = c.wait_for_log(rf"worker {slot} exited \(pid {victim}\): killed by SIGKILL \(hung\)",
                            after=mark)
    print("corral:", killed.group(0))
    assert c.find_log(rf"worker {slot} .*pid {victim}.*SIGKILL", after=mark)
    c.wait_for_log(rf"worker {slot} spawned", after=mark)
    c.wait_ready(2)
    wait_until(lambda: not pid_alive(victim), 5, f"stopped worker {victim} to be gone")
    return ready, health


@dataclass
class CorralFactory:
    tmp_path: Path
    started: list[Corral] = field(default_factory=list)

    def clean_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CORRAL_", "LC_")) and k not in (
                   "WEB_CONCURRENCY", "PORT", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME",
                   "LANG", "LANGUAGE")}
        # The caller's locale may not be installed here (a fresh machine has only C and
        # C.UTF-8): bash, as a test's wrapper, would warn about it on corral's stderr.
        env["LANG"] = "C.UTF-8"
        env.update(extra or {})
        return env

    def command(self, *extra: str, app: str | None = "apps.basic:app", workers: int | None = 2,
                bind: str | None = "127.0.0.1:0", admin_bind: str | None = "127.0.0.1:0",
                python: str | None = PYTHON, corral_bin: str = CORRAL_BIN) -> list[str]:
        args = [corral_bin]
        if workers is not None:
            args += ["--workers", str(workers)]
        if bind is not None:
            args += ["--bind", bind]
        if admin_bind is not None:
            args += ["--admin-bind", admin_bind]
        if python is not None:
            args += ["--python", python]
        args += ["--app-dir", str(app_dir()), *extra]
        if app is not None:
            args.append(app)
        return args

    def start(self, *extra: str, env: dict[str, str] | None = None, wait_ready: bool = True,
              raw_args: list[str] | None = None, wrapper: list[str] | None = None,
              pass_fds: tuple[int, ...] = (), pidns: bool = False, tty: bool = False,
              **command_kwargs) -> Corral:
        """Starts corral. By default: 2 workers of apps.basic:app on free ports, and waits until
        every worker is ready. pidns=True runs it as PID 1 of a new pid namespace; tty=True on
        a pseudo-terminal it controls (see Corral)."""
        args = raw_args if raw_args is not None else self.command(*extra, **command_kwargs)
        instance = Corral(args, self.clean_env(env), self.tmp_path / f"corral{len(self.started)}",
                          pidns=pidns, tty=tty)
        self.started.append(instance)
        instance.start(wrapper, pass_fds)
        if wait_ready:
            instance.wait_ready(command_kwargs.get("workers", 2) or 1)
        return instance

    def run(self, *extra: str, timeout: float = 30.0, **kwargs) -> Corral:
        """Starts corral and waits for it to exit by itself (bad input, boot failure)."""
        instance = self.start(*extra, wait_ready=False, **kwargs)
        instance.wait_exit(timeout)
        return instance

    # ---- teardown ----------------------------------------------------------------------------

    def finish(self) -> list[str]:
        problems = []
        for instance in self.started:
            problems += self._finish_one(instance)
        return problems

    def _finish_one(self, instance: Corral) -> list[str]:
        problems = []
        if instance.proc is None:
            return problems
        workers = instance.host_worker_pids()  # under pidns, translated while corral runs
        if instance.running:
            # Stopping with SIGTERM checks, after every test, that corral drains and leaves
            # nothing behind. Tests that leave workers busy pass a short --graceful-timeout.
            instance.send_signal(signal.SIGTERM)
            try:
                instance.returncode = instance.proc.wait(timeout=EXIT_DEADLINE)
            except subprocess.TimeoutExpired:
                problems.append(f"corral pid {instance.pid} ignored SIGTERM at teardown for "
                                f"{EXIT_DEADLINE:.0f} s")
        if not instance.running:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and any(pid_alive(p) for p in workers):
                time.sleep(0.02)
            left = [p for p in workers if pid_alive(p)]
            if left:
                problems.append(f"worker pids {left} still alive after corral "
                                f"(pid {instance.pid}) exited")
        instance.kill_tree()
        log = instance.stderr_text()
        if SANITIZER.search(log):
            problems.append(f"sanitizer report in corral's log ({instance.stderr_path})")
        print(f"---- corral {' '.join(instance.args)}\n---- exit code {instance.returncode}\n"
              f"{log}")
        return problems


@pytest.fixture
def corral(tmp_path):
    """Factory: corral.start(...) / corral.run(...). See CorralFactory."""
    factory = CorralFactory(tmp_path)
    yield factory
    problems = factory.finish()
    if problems:
        pytest.fail("teardown: " + "; ".join(problems))


@pytest.fixture(scope="session", autouse=True)
def _corral_binary_exists():
    if not os.access(CORRAL_BIN, os.X_OK):
        pytest.fail(f"corral binary not found or not executable: {CORRAL_BIN} (set CORRAL_BIN)")
    if not os.access(PYTHON, os.X_OK):
        pytest.fail(f"test interpreter not found: {PYTHON} (set CORRAL_TEST_PYTHON)")
