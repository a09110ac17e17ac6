"""Process hygiene and the process options (issue 3, "PID 1 and plain-child duties"): what a
child inherits across fork and exec (fork(2), execve(2): signal mask, dispositions, descriptors
without O_CLOEXEC), and the identity, umask and pidfile options.

- --pidfile, --user/--group, --umask;
- what a worker starts with: its blocked and ignored signal sets, its file descriptors and its
  environment, whatever corral itself inherited from a careless parent;
- a terminal: Ctrl-C stops corral with 130 and every worker with it; job-control signals never
  stop corral.

Blocked and ignored signals survive fork and exec, so a worker's /proc/PID/status shows what it
was given, except for what its own interpreter changes before the test can look: CPython
ignores SIGPIPE and SIGXFSZ when it starts (uvicorn then only installs handlers, which show in
SigCgt). The exec-time probe below avoids Python altogether and sees the exact sets.
"""

from __future__ import annotations

import grp
import json
import os
import signal
import socket
import stat
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

from conftest import (CORRAL_BIN, EVENT_DEADLINE, INTEGRATION_DIR, LISTENING, PYTHON,
                      _descendants_and_session, children_of, fd_targets, http_get, pid_alive,
                      proc_state, tcp_table, wait_until)

if os.geteuid() != 0:
    pytest.skip("these tests switch users and bind low ports: they need root",
                allow_module_level=True)

SIGEXEC = str(INTEGRATION_DIR / "helpers" / "sigexec.py")
# What CPython itself ignores at startup (Python/pylifecycle.c, signal_install_handlers).
PYTHON_IGNORES = (1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGXFSZ - 1))
# What a careless parent leaves behind for the hygiene tests: signals corral handles and signals
# it does not, ignored and blocked. SIGTERM, SIGINT and SIGCHLD are left unblocked here (see
# test_corral_handles_signals_its_parent_left_blocked).
PARENT_IGNORES = "HUP,TERM,INT,QUIT,USR1,ALRM,TTOU"
PARENT_BLOCKS = "USR2,WINCH,ALRM,PROF,TTIN"


# How the workers of a test started: `spawned`, a fresh interpreter each (at corral's start), or
# `forked` from the worker template (--start-method forkserver, for every later worker).
STARTS = pytest.mark.parametrize("start", ["spawned", "forked"])


def started(c, start: str) -> dict[int, int]:
    """slot -> pid of the workers, after replacing them with forked ones if start says so."""
    return c.fork_workers() if start == "forked" else c.worker_pids()


def status_of(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in
                                                     text.splitlines())}


def sigset(text: str) -> set[str]:
    mask = int(text, 16)
    return {signal.Signals(n).name for n in range(1, 65)
            if mask & (1 << (n - 1)) and n in signal.Signals._value2member_map_}


def mask_of(names: str) -> int:
    return sum(1 << (getattr(signal, "SIG" + name) - 1) for name in names.split(","))


# --------------------------------------------------------------------------------------------
# --pidfile
# --------------------------------------------------------------------------------------------


def listening_inodes(pid: int) -> set[int]:
    """Inodes of the TCP sockets in LISTEN state that PID holds."""
    mine = {target for target in fd_targets(pid).values() if target.startswith("socket:")}
    return {row["inode"] for row in tcp_table()
            if row["state"] == "0A" and f"socket:[{row['inode']}]" in mine}


@pytest.mark.parametrize("sig, expected_rc", [(signal.SIGTERM, 0), (signal.SIGINT, 130)],
                         ids=["sigterm", "sigint"])
def test_pidfile_is_written_once_bound_and_removed_at_exit(corral, tmp_path, sig, expected_rc):
    run = tmp_path / "run"
    run.mkdir()
    pidfile = run / "corral.pid"
    pidfile.write_text("99999\n")  # left by an earlier run that crashed
    c = corral.start("--pidfile", str(pidfile), workers=1, wait_ready=False)

    def written():
        try:
            text = pidfile.read_text()
        except FileNotFoundError:
            return None
        return text if text != "99999\n" else None

    text = wait_until(written, EVENT_DEADLINE, "corral to write its pid file", interval=0.002)
    # At the first sight of the new file, corral already listens.
    assert listening_inodes(c.pid), "the pid file was written before corral was bound"
    assert text == f"{c.pid}\n", f"pid file holds {text!r}, corral's pid is {c.pid}"
    c.wait_ready(1)
    assert sorted(p.name for p in run.iterdir()) == ["corral.pid"], "temporary files left"

    c.send_signal(sig)
    assert c.wait_exit() == expected_rc
    assert not pidfile.exists(), "the pid file outlived corral"
    assert list(run.iterdir()) == []


def test_pidfile_in_a_missing_directory_is_refused_before_any_worker(corral, tmp_path):
    pidfile = tmp_path / "no-such-dir" / "corral.pid"
    c = corral.run("--pidfile", str(pidfile), workers=1)
    output = c.stderr_text()
    print(output)
    assert c.returncode in (1, 2), f"exit code {c.returncode}"
    assert [line for line in output.splitlines() if str(pidfile) in line and "pid" in line]
    assert not c.spawns(), "workers were started although the pid file could not be written"


# --------------------------------------------------------------------------------------------
# --user / --group / --umask
# --------------------------------------------------------------------------------------------


def free_low_port() -> int:
    """80 if nothing holds it, else the first free port below 1024."""
    for port in [80, *range(81, 1024)]:
        with socket.socket() as probe:
            # As corral binds: a TIME_WAIT left by an earlier test does not make a port busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    pytest.skip("no free port below 1024")


@pytest.mark.parametrize("group_args, group_name", [
    pytest.param([], "nogroup", id="user-primary-group"),
    pytest.param(["--group", "nogroup"], "nogroup", id="group-nogroup"),
    pytest.param(["--group", "daemon"], "daemon", id="group-daemon"),
])
def test_user_runs_workers_unprivileged_while_corral_binds_a_low_port(corral, group_args,
                                                                      group_name):
    gid = grp.getgrnam(group_name).gr_gid
    port = free_low_port()
    c = corral.start("--user", "nobody", *group_args, bind=f"127.0.0.1:{port}", workers=2)
    assert c.port == port
    corral_status = status_of(c.pid)
    assert corral_status["Uid"].split() == ["0"] * 4, "corral itself must stay root"
    workers = c.worker_pids().values()
    for pid in workers:
        status = status_of(pid)
        assert status["Uid"].split() == ["65534"] * 4, f"worker {pid}: Uid {status['Uid']}"
        assert status["Gid"].split() == [str(gid)] * 4, f"worker {pid}: Gid {status['Gid']}"
        assert "0" not in status["Groups"].split(), f"worker {pid} kept root's groups"
    assert int(http_get(port, "/pid").text) in workers
    env = json.loads(http_get(port, "/env").text)
    print("worker's USER/HOME:", env.get("USER"), env.get("HOME"))


@STARTS
def test_workers_with_user_do_not_outlive_a_sigkilled_corral(corral, start):
    """Issue 2: 'If corral itself is killed with SIGKILL, no worker survives to hold the port.'
    The kernel clears PR_SET_PDEATHSIG when a process changes its uid or gid, so a parent-death
    signal set before setuid() is lost (prctl(2))."""
    port = free_low_port()
    c = corral.start("--user", "nobody", bind=f"127.0.0.1:{port}", workers=2)
    workers = list(started(c, start).values())
    c.proc.kill()
    c.wait_exit(10)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in workers):
        time.sleep(0.02)
    survivors = {pid: status_of(pid).get("PPid") for pid in workers if pid_alive(pid)}
    holding = bool(survivors) and any(
        row["state"] == "0A" and row["local_port"] == port for row in tcp_table())
    for pid in survivors:  # clean up here, so that teardown reports nothing twice
        os.kill(pid, signal.SIGKILL)
    assert not survivors, (f"workers running as nobody survived corral's SIGKILL by 2 s "
                           f"(pid: parent {survivors}); port {port} still held: {holding}")


@pytest.mark.parametrize("umask, expected", [
    pytest.param("007", 0o770, id="007"),
    pytest.param("077", 0o700, id="077"),
    pytest.param(None, None, id="inherited"),
])
def test_umask_sets_the_unix_socket_mode(corral, tmp_path, umask, expected):
    path = tmp_path / "app.sock"
    args = ["--umask", umask] if umask else []
    inherited = os.umask(0o022)
    os.umask(inherited)
    if expected is None:
        expected = 0o777 & ~inherited
    c = corral.start(*args, bind=f"unix:{path}", workers=1)
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == expected, (f"--umask {umask}: socket mode "
                                            f"{stat.S_IMODE(mode):o}, expected {expected:o}")
    worker = c.worker_pids()[0]
    assert int(status_of(worker)["Umask"], 8) == (0o777 & ~expected), "the workers' umask"
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert client.recv(100).startswith(b"HTTP/1.1 200")


# --------------------------------------------------------------------------------------------
# Signal state of the workers, and of corral
# --------------------------------------------------------------------------------------------


@STARTS
def test_workers_get_clean_signal_sets_whatever_corral_inherited(corral, start):
    """corral's parent ignores and blocks signals (some corral handles, some it does not);
    every worker still starts with nothing blocked and nothing ignored but what CPython
    ignores itself, and drains on corral's SIGTERM."""
    c = corral.start("--graceful-timeout", "10s", workers=2,
                     wrapper=[PYTHON, SIGEXEC, "--ignore", PARENT_IGNORES, "--block",
                              PARENT_BLOCKS, "--"])
    own = status_of(c.pid)
    print(f"corral: SigBlk {sorted(sigset(own['SigBlk']))} SigIgn {sorted(sigset(own['SigIgn']))}")
    assert sigset(own["SigIgn"]) & {"SIGALRM"}, "precondition: corral inherited ignored SIGALRM"
    for pid in started(c, start).values():
        status = status_of(pid)
        blocked, ignored = int(status["SigBlk"], 16), int(status["SigIgn"], 16)
        assert blocked == 0, f"worker {pid} starts with blocked {sorted(sigset(status['SigBlk']))}"
        assert ignored == PYTHON_IGNORES, (
            f"worker {pid} ignores {sorted(sigset(status['SigIgn']))}; only CPython's own "
            f"SIGPIPE and SIGXFSZ are expected")
    c.send_signal(signal.SIGTERM)
    assert c.wait_exit() == 0
    assert len(c.find_log(r"exited \(pid \d+\): .*\(drained\)")) == 2, c.tail()


def test_exec_time_probe_sees_empty_blocked_and_ignored_sets(corral, tmp_path):
    """--python is a probe that is not Python: `env -S grep` prints the Sig* lines of the very
    process corral exec'd, before any interpreter runs. It then fails (it is no worker), and
    corral restarts it; the first report is what counts. A control run of the probe under the
    same careless parent shows that the probe does see inherited sets."""
    probe = tmp_path / "probe"
    probe.write_text("#!/usr/bin/env -S grep -E ^Sig(Blk|Ign): /proc/self/status --\n")
    probe.chmod(0o755)
    careless = [PYTHON, SIGEXEC, "--ignore", PARENT_IGNORES, "--block", PARENT_BLOCKS, "--"]
    control = subprocess.run([*careless, str(probe)], capture_output=True, text=True,
                             timeout=30).stdout
    control_sets = dict(line.rsplit(":", 2)[-2:] for line in control.splitlines()
                        if line.startswith("/proc/self/status:"))
    assert int(control_sets["SigBlk"], 16) == mask_of(PARENT_BLOCKS), control
    assert int(control_sets["SigIgn"], 16) == mask_of(PARENT_IGNORES), control

    c = corral.start("--python", str(probe), python=None, workers=1, wait_ready=False,
                     wrapper=careless)

    def reported():
        lines = [line for line in c.stdout_text().splitlines()
                 if line.startswith("/proc/self/status:Sig")]
        return lines[:2] if len(lines) >= 2 else None

    lines = wait_until(reported, EVENT_DEADLINE, "the probe's report")
    sets = dict(line.rsplit(":", 2)[-2:] for line in lines)
    print(f"corral's child at exec: {sets}")
    assert int(sets["SigBlk"].strip(), 16) == 0, f"blocked: {sorted(sigset(sets['SigBlk']))}"
    assert int(sets["SigIgn"].strip(), 16) == 0, f"ignored: {sorted(sigset(sets['SigIgn']))}"


def test_nohup_and_trap_ignored_signals_do_not_reach_the_workers(corral):
    """nohup ignores SIGHUP; `trap '' TERM INT` ignores those: corral's workers must not
    inherit either, or a worker could never be drained."""
    c = corral.start("--graceful-timeout", "10s", workers=2,
                     wrapper=["nohup", "/bin/sh", "-c", "trap '' TERM INT HUP; exec \"$@\"",
                              "sh"])
    for pid in c.worker_pids().values():
        ignored = sigset(status_of(pid)["SigIgn"])
        assert not ignored & {"SIGHUP", "SIGTERM", "SIGINT"}, f"worker {pid} ignores {ignored}"
    c.send_signal(signal.SIGTERM)
    assert c.wait_exit() == 0
    assert len(c.find_log(r"exited \(pid \d+\): .*\(drained\)")) == 2, c.tail()
    assert not c.find_log(r"killed_at_drain_deadline")


@pytest.mark.parametrize("what", ["sigterm-drains", "sigchld-reaps"])
def test_corral_handles_signals_its_parent_left_blocked(corral, what):
    """A blocked signal stays blocked across exec. corral installs handlers, but a handler
    never runs for a blocked signal: unless corral sets its own signal mask, a parent that
    blocked SIGTERM or SIGCHLD leaves corral deaf to the drain request or to its workers'
    deaths (tini and catatonit set their mask themselves)."""
    c = corral.start("--graceful-timeout", "5s", workers=1,
                     wrapper=[PYTHON, SIGEXEC, "--block", "TERM,INT,CHLD,HUP", "--"])
    print("corral's SigBlk:", sorted(sigset(status_of(c.pid)["SigBlk"])))
    try:
        if what == "sigterm-drains":
            c.send_signal(signal.SIGTERM)
            try:
                rc = c.proc.wait(5)
            except subprocess.TimeoutExpired:
                pytest.fail("corral ignored SIGTERM for 5 s: it inherited SIGTERM blocked and "
                            f"never unblocked it (SigBlk {status_of(c.pid)['SigBlk']})")
            assert rc == 0
        else:
            victim = c.worker_pids()[0]
            mark = c.mark()
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 3
            while not c.find_log(rf"exited \(pid {victim}\)", after=mark):
                if time.monotonic() > deadline:
                    pytest.fail(f"a SIGKILLed worker went unnoticed for 3 s (state "
                                f"{proc_state(victim)}): corral inherited SIGCHLD blocked")
                time.sleep(0.05)
            c.wait_ready(1)
    finally:
        if c.running:
            c.proc.kill()  # SIGKILL is never blocked; PR_SET_PDEATHSIG takes the workers
            c.wait_exit(10)


# --------------------------------------------------------------------------------------------
# File descriptors and environment of the workers
# --------------------------------------------------------------------------------------------


def unix_listeners() -> dict[int, str]:
    """inode -> path of every listening unix socket (/proc/net/unix, flag __SO_ACCEPTCON)."""
    found = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and int(parts[3], 16) & 0x10000:
            found[int(parts[6])] = parts[7]
    return found


@STARTS
def test_workers_hold_only_stdio_their_sockets_the_scoreboard_and_their_channel(corral, tmp_path,
                                                                                start):
    """A pipe and a socket that corral's parent leaked to it, corral's admin socket and its
    own descriptors, and the other workers' control channels must not reach a worker. The
    scoreboard does (a worker also holds the copy its mmap keeps)."""
    leaked_r, leaked_w = os.pipe()
    leaked_sock, peer = socket.socketpair()
    os.set_inheritable(leaked_r, True)
    os.set_inheritable(leaked_w, True)
    leaked_sock.set_inheritable(True)
    sock_path = tmp_path / "app.sock"
    try:
        c = corral.start("--bind", f"unix:{sock_path}", workers=2,
                         pass_fds=(leaked_r, leaked_w, leaked_sock.fileno()))
        leaked = {os.readlink(f"/proc/self/fd/{fd}")
                  for fd in (leaked_r, leaked_w, leaked_sock.fileno())}
        tcp_listener = {f"socket:[{row['inode']}]" for row in tcp_table()
                        if row["state"] == "0A" and row["local_port"] == c.port}
        admin = {f"socket:[{row['inode']}]" for row in tcp_table()
                 if row["state"] == "0A" and row["local_port"] == c.admin_port}
        unix_listener = {f"socket:[{inode}]" for inode, path in unix_listeners().items()
                         if path == str(sock_path)}
        listeners = tcp_listener | unix_listener
        assert len(listeners) == 2 and len(admin) == 1
        corral_fds = fd_targets(c.pid)
        print(f"corral's fds: {corral_fds}")
        other_channels = {}
        for pid in started(c, start).values():
            fds = fd_targets(pid)
            print(f"worker {pid}: {fds}")
            assert {fd: fds.get(fd) for fd in (0, 1, 2)} == {fd: corral_fds.get(fd)
                                                             for fd in (0, 1, 2)}
            rest = {fd: t for fd, t in fds.items() if fd > 2}
            assert not set(rest.values()) & leaked, f"worker {pid} got the parent's leaked fds"
            assert not set(rest.values()) & admin, f"worker {pid} holds the admin socket"
            assert listeners <= set(rest.values()), f"worker {pid} lacks a listening socket"
            scoreboard = {t for t in corral_fds.values() if t.startswith("/memfd:corral-scoreb")}
            assert len(scoreboard) == 1 and scoreboard <= set(rest.values()), (
                f"worker {pid} lacks the scoreboard")
            others = {fd: t for fd, t in rest.items() if t not in listeners | scoreboard}
            epolls = [t for t in others.values() if t == "anon_inode:[eventpoll]"]
            sockets = [t for t in others.values() if t.startswith("socket:")]
            unexpected = {fd: t for fd, t in others.items()
                          if t != "anon_inode:[eventpoll]" and not t.startswith("socket:")}
            assert not unexpected, f"worker {pid} holds unexpected fds {unexpected}"
            # The control channel, plus asyncio's self-pipe (a socketpair) and its epoll.
            assert len(epolls) <= 1 and len(sockets) == 3, (
                f"worker {pid}: expected its channel and asyncio's 2 self-pipe sockets, "
                f"got {sockets}")
            other_channels[pid] = set(sockets)
        first, second = other_channels.values()
        assert not first & second, f"the workers share sockets: {first & second}"
        for pid in c.worker_pids().values():
            assert os.readlink(f"/proc/{pid}/cwd") == str(c.workdir), "worker's cwd"
    finally:
        for fd in (leaked_r, leaked_w):
            os.close(fd)
        leaked_sock.close()
        peer.close()


def test_corral_does_not_keep_descriptors_its_parent_leaked(corral):
    """Checklist item 15 (catatonit 0.1.6): descriptors >= 3 that corral inherited and does not
    use (neither an fd:// bind nor a LISTEN_FDS socket) are closed, so that a leaked pipe's
    write end does not keep its reader from seeing end-of-file for corral's whole life."""
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_w, True)
    try:
        c = corral.start(workers=1, pass_fds=(leaked_w,))
        target = os.readlink(f"/proc/self/fd/{leaked_w}")
        held = {fd: t for fd, t in fd_targets(c.pid).items() if t == target}
        assert not held, (f"corral still holds the write end of its parent's pipe "
                          f"({target}) as fd {sorted(held)}: the pipe's reader never sees EOF "
                          f"while corral runs")
    finally:
        os.close(leaked_r)
        os.close(leaked_w)


def proc_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode(errors="replace").partition("=")[::2] for entry in raw if entry)


SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
                     "WATCHDOG_USEC", "WATCHDOG_PID")
# The worker protocol (worker/PROTOCOL.md): the shim reads these and removes them from its
# os.environ before the app is imported; /proc/PID/environ still shows the exec-time block.
# The shim's own, removed from os.environ before the app is imported; /proc/PID/environ (the
# environment at exec) still shows them, for a forked worker those its template started with.
PROTOCOL_VARIABLES = {"CORRAL_WORKER_SETTINGS", "CORRAL_CONTROL_FD", "CORRAL_WORKER_ROLE"}


def test_workers_get_no_systemd_or_corral_variables(corral):
    env = {"NOTIFY_SOCKET": "/nonexistent/notify.sock", "LISTEN_PID": "1", "LISTEN_FDS": "1",
           "LISTEN_FDNAMES": "http", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1",
           "CORRAL_GRACEFUL_TIMEOUT": "10s", "CORRAL_LOG_LEVEL": "info",
           "APP_SETTING": "kept"}
    c = corral.start(workers=2, env=env)
    for pid in c.worker_pids().values():
        at_exec = proc_environ(pid)
        assert at_exec.get("APP_SETTING") == "kept"
        leaked = sorted(k for k in at_exec if k in SYSTEMD_VARIABLES or (
            k.startswith("CORRAL_") and k not in PROTOCOL_VARIABLES))
        assert not leaked, f"worker {pid} was started with {leaked}"
    seen = json.loads(c.get("/env").text)
    assert seen.get("APP_SETTING") == "kept"
    leaked = sorted(k for k in seen if k in SYSTEMD_VARIABLES or k.startswith("CORRAL_"))
    assert not leaked, f"the app sees {leaked}"


# --------------------------------------------------------------------------------------------
# A terminal
# --------------------------------------------------------------------------------------------


def test_ctrl_c_in_a_terminal_exits_130_and_takes_every_worker(corral):
    c = corral.start(tty=True, workers=2)
    workers = c.worker_pids()
    foreground = os.tcgetpgrp(c.tty_master)
    assert foreground == os.getpgid(c.pid), "corral is not the terminal's foreground job"
    for pid in workers.values():
        assert os.getpgid(pid) != foreground, f"worker {pid} would get the terminal's SIGINT"

    os.write(c.tty_master, b"\x03")
    rc = c.wait_exit()
    assert rc == 130, f"Ctrl-C: exit {rc}, expected 130; log:\n{c.tail()}"
    assert c.find_log(r"-> DrainQuick \(SIGINT\)")
    for slot, pid in workers.items():
        assert c.find_log(rf"worker {slot} exited \(pid {pid}\)"), (
            f"corral exited without reaping worker {pid}:\n{c.tail()}")
        assert not pid_alive(pid) and proc_state(pid) is None, f"worker {pid} is left"


def test_job_control_signals_never_stop_corral(corral):
    """Ctrl-Z on its terminal, and SIGTSTP, SIGTTIN, SIGTTOU sent by kill: corral stays
    running (never state T) and keeps serving."""
    c = corral.start(tty=True, workers=1)
    for name, send in [("SIGTSTP", lambda: os.write(c.tty_master, b"\x1a")),
                       ("SIGTSTP", lambda: os.kill(c.pid, signal.SIGTSTP)),
                       ("SIGTTIN", lambda: os.kill(c.pid, signal.SIGTTIN)),
                       ("SIGTTOU", lambda: os.kill(c.pid, signal.SIGTTOU))]:
        mark = c.mark()
        send()
        c.wait_for_log(rf"\b{name}\b", after=mark, timeout=10)
        assert proc_state(c.pid) not in ("T", "t"), f"{name} stopped corral"
        assert c.admin("/healthz", timeout=5).status == 200, f"after {name}"
        assert c.get("/", timeout=5).status == 200, f"after {name}"
    assert not c.find_log(r"state \w+ -> Drain")


BACKGROUND_JOB = """
import fcntl, os, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
child = os.fork()
if child == 0:
    os.setpgid(0, 0)  # a job of its own that is not the terminal's foreground job
    os.execv(sys.argv[1], sys.argv[1:])
try:
    os.setpgid(child, child)
except OSError:
    pass  # the child did it first and has exec'd already
_, status = os.waitpid(child, 0)
os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def test_a_background_job_on_a_tostop_terminal_is_not_stopped(corral, tmp_path):
    """`corral ... &` in a shell whose terminal has `stty tostop`: the kernel sends SIGTTOU to
    a background job that writes to the terminal. corral logs to the terminal; it must not be
    stopped by that (tini ignores SIGTTOU for this reason). The admin endpoint is on a unix
    socket, so the test learns where it is without reading corral's log."""
    admin = tmp_path / "admin.sock"
    args = corral.command(workers=1, admin_bind=f"unix:{admin}")
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] |= termios.TOSTOP
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    output = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            output.extend(chunk)

    leader = subprocess.Popen([PYTHON, "-c", BACKGROUND_JOB, *args], stdin=slave, stdout=slave,
                              stderr=slave, start_new_session=True, cwd="/",
                              env=corral.clean_env())
    os.close(slave)
    threading.Thread(target=drain, daemon=True).start()
    try:
        corral_pid = wait_until(lambda: (children_of(leader.pid) or [None])[0], EVENT_DEADLINE,
                                "corral to start")
        deadline = time.monotonic() + EVENT_DEADLINE
        while True:
            state = proc_state(corral_pid)
            if state in ("T", "t"):
                pytest.fail(f"corral (pid {corral_pid}) is stopped (state {state}) by SIGTTOU "
                            f"for writing to its terminal as a background job; what it wrote:"
                            f"\n{output.decode(errors='replace')}")
            assert state is not None, f"corral exited:\n{output.decode(errors='replace')}"
            if admin.exists():
                with socket.socket(socket.AF_UNIX) as client:
                    client.settimeout(5)
                    try:
                        client.connect(str(admin))
                        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                       b"Connection: close\r\n\r\n")
                        if client.recv(100).startswith(b"HTTP/1.1 200"):
                            break
                    except OSError:
                        pass
            if time.monotonic() > deadline:
                pytest.fail(f"corral's admin socket did not answer; state {state}")
            time.sleep(0.05)
        assert proc_state(corral_pid) not in ("T", "t")
    finally:
        for pid in _descendants_and_session(leader.pid) | {leader.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leader.wait(10)
        os.close(master)
