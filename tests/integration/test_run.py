"""`corral run -- CMD [ARGS...]`: one-off commands from the same ENTRYPOINT, run as a proper
PID 1 would run them, as tini does (issue 10, item 7): signals passed on, orphans reaped, the
command's exit code (128+N if signal N killed it); no command is a usage error (exit 2), a
command that is not found exits 127 with one line, as a shell's would.

"pidns" tests run corral as PID 1 of a new pid namespace (`unshare -p -f --mount-proc`), the
way a container runtime starts a migration Job's ENTRYPOINT; the others as a plain child,
where corral makes itself a child subreaper.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (CORRAL_BIN, EVENT_DEADLINE, EXIT_DEADLINE, INTEGRATION_DIR, children_of,
                      pid_alive, proc_state, wait_until)

SIGRECORD = str(INTEGRATION_DIR / "helpers" / "sigrecord.py")
FORWARDED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]


class Run:
    """`corral run ARGS...` started in its own session, optionally as PID 1 of a new pid
    namespace; stdout and stderr are captured."""

    def __init__(self, *args: str, pidns: bool = False, **popen):
        wrapper = ["unshare", "--pid", "--fork", "--mount-proc"] if pidns else []
        self.pidns = pidns
        self.proc = subprocess.Popen([*wrapper, CORRAL_BIN, "run", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True, **popen)
        self.out = self.err = ""

    @property
    def corral_pid(self) -> int:
        """corral's host pid: the process, or under pidns the child of unshare."""
        if not self.pidns:
            return self.proc.pid
        return wait_until(lambda: (children_of(self.proc.pid) or [None])[0], EVENT_DEADLINE,
                          "corral under unshare")

    def signal(self, signo: int) -> None:
        os.kill(self.corral_pid, signo)

    def wait(self, timeout: float = EXIT_DEADLINE) -> int:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"corral run still running after {timeout:.0f} s; stderr:\n{err.decode()}")
        self.out, self.err = out.decode(), err.decode()
        print(f"exit {self.proc.returncode}; stdout {self.out!r}; stderr {self.err!r}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def run(*args: str, **kwargs) -> Run:
    r = Run(*args, **kwargs)
    r.wait()
    return r


def wait_lines(path: Path, count: int, what: str) -> list[str]:
    def enough():
        lines = path.read_text().splitlines() if path.exists() else []
        return lines if len(lines) >= count else None

    return wait_until(enough, EVENT_DEADLINE, what)


# --------------------------------------------------------------------------------------------
# Exit codes and bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pidns", [False, True], ids=["child", "pidns"])
def test_exits_with_the_commands_exit_code(pidns):
    assert run("--", "sh", "-c", "echo out; echo err >&2; exit 7", pidns=pidns).proc.returncode == 7
    r = run("--", "sh", "-c", "echo out; echo err >&2", pidns=pidns)
    assert (r.proc.returncode, r.out, r.err) == (0, "out\n", "err\n")


@pytest.mark.parametrize("pidns", [False, True], ids=["child", "pidns"])
def test_a_command_killed_by_signal_n_exits_128_plus_n(pidns):
    assert run("--", "sh", "-c", "kill -KILL $$", pidns=pidns).proc.returncode == 128 + 9
    assert run("--", "sh", "-c", "kill -SEGV $$", pidns=pidns).proc.returncode == 128 + 11


def test_no_command_is_a_usage_error():
    for args in ([], ["--"], ["--group-signals", "--"]):
        r = run(*args)
        assert r.proc.returncode == 2
        assert r.err == ("corral run: error: no command to run; usage: corral run "
                         "[--group-signals] -- CMD [ARGS...]\n")
    r = run("--signals", "--", "true")
    assert r.proc.returncode == 2 and r.err.count("\n") == 1
    assert r.err.startswith("corral run: error: unknown option '--signals'")


def test_a_command_that_cannot_run_fails_as_in_a_shell(tmp_path):
    r = run("--", "no-such-command-anywhere", "arg")
    assert (r.proc.returncode, r.err) == (127, "corral run: no-such-command-anywhere: command "
                                               "not found\n")
    r = run("--", str(tmp_path / "missing"))
    assert (r.proc.returncode, r.err) == (127, f"corral run: {tmp_path}/missing: No such file "
                                               "or directory\n")
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    r = run("--", str(script))
    assert (r.proc.returncode, r.err) == (126, f"corral run: {script}: Permission denied\n")
    # As a shell would: the same codes from `sh -c`.
    assert subprocess.run(["sh", "-c", "no-such-command-anywhere"],
                          capture_output=True).returncode == 127


def test_help_lists_the_options():
    r = subprocess.run([CORRAL_BIN, "run", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("Usage: corral run [--group-signals] -- CMD")
    assert "--group-signals" in subprocess.run([CORRAL_BIN, "--help"], capture_output=True,
                                               text=True).stdout


# --------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pidns", [False, True], ids=["child", "pidns"])
def test_every_stop_and_control_signal_is_passed_on(tmp_path, pidns):
    record = tmp_path / "signals"
    r = Run("--", sys.executable, SIGRECORD, str(record), pidns=pidns)
    try:
        wait_lines(record, 1, "the command's handlers")
        for count, name in enumerate(FORWARDED[1:] + FORWARDED[:1], start=2):
            r.signal(getattr(signal, name))
            lines = wait_lines(record, count, f"{name} to reach the command")
            assert lines[-1] == name
        # The command exits 0 once it has recorded SIGTERM, and so does corral.
        assert r.wait() == 0
    finally:
        r.kill()


@pytest.mark.parametrize("group", [False, True], ids=["command", "group"])
def test_group_signals_reach_the_commands_children_too(tmp_path, group):
    record = tmp_path / "signals"
    child_record = Path(str(record) + ".child")
    r = Run(*(["--group-signals"] if group else []), "--", sys.executable, SIGRECORD,
            str(record), "--fork")
    helper = None
    try:
        wait_lines(record, 1, "the command's handlers")
        wait_lines(child_record, 1, "its child's handlers")
        command = wait_until(lambda: (children_of(r.corral_pid) or [None])[0], EVENT_DEADLINE,
                             "the command")
        helper = wait_until(lambda: (children_of(command) or [None])[0], EVENT_DEADLINE,
                            "the command's child")
        r.signal(signal.SIGUSR1)
        assert wait_lines(record, 2, "SIGUSR1 to reach the command")[-1] == "SIGUSR1"
        if group:
            assert wait_lines(child_record, 2, "SIGUSR1 to reach its child")[-1] == "SIGUSR1"
        else:
            time.sleep(1.0)  # a signal that was not sent cannot be waited for
            assert child_record.read_text().splitlines() == ["ready"]
            # Not in the group's way: it would outlive the command (as under tini, outside a
            # pid namespace) and hold corral's stdout open.
            os.kill(helper, signal.SIGKILL)
        r.signal(signal.SIGTERM)
        assert r.wait() == 0
    finally:
        r.kill()
        if helper is not None and pid_alive(helper):
            os.kill(helper, signal.SIGKILL)


@pytest.mark.parametrize("pidns", [False, True], ids=["child", "pidns"])
def test_sigterm_ends_a_command_that_keeps_the_default_action(pidns):
    r = Run("--", "sleep", "300", pidns=pidns)
    try:
        wait_until(lambda: any(Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
                               for pid in children_of(r.corral_pid)),
                   EVENT_DEADLINE, "sleep to start")
        r.signal(signal.SIGTERM)
        assert r.wait() == 128 + signal.SIGTERM
    finally:
        r.kill()


# --------------------------------------------------------------------------------------------
# Orphans, descriptors, the terminal
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pidns", [False, True], ids=["subreaper", "pidns"])
def test_orphans_are_reaped(pidns):
    # The subshell backgrounds three sleeps and exits: they are orphaned, reparented to corral,
    # and exit 0.3 s later while the command itself still runs.
    r = Run("--", "sh", "-c", "(sleep 0.3 & sleep 0.3 & sleep 0.3 &); exec sleep 300",
            pidns=pidns)
    try:
        corral = r.corral_pid

        def orphans_gone():
            kids = children_of(corral)
            names = {pid: Path(f"/proc/{pid}/comm").read_text().strip() for pid in kids
                     if pid_alive(pid) or proc_state(pid) == "Z"}
            zombies = [pid for pid in kids if proc_state(pid) == "Z"]
            print("corral's children:", names, "zombies:", zombies)
            return len(kids) == 1 and not zombies

        # First the three orphans must have been corral's children, then be gone.
        wait_until(lambda: len(children_of(corral)) >= 2, EVENT_DEADLINE,
                   "the orphans to be reparented to corral")
        wait_until(orphans_gone, EVENT_DEADLINE, "the orphans to be reaped")
        r.signal(signal.SIGTERM)
        assert r.wait() == 128 + signal.SIGTERM
    finally:
        r.kill()


def test_the_command_inherits_corrals_descriptors(tmp_path):
    target = tmp_path / "inherited"
    with open(target, "w") as f:
        fd = f.fileno()
        r = Run("--", sys.executable, "-c", f"import os; os.write({fd}, b'through fd {fd}')",
                pass_fds=(fd,))
        assert r.wait() == 0
    assert target.read_text() == f"through fd {fd}"


def test_the_command_gets_the_terminal_corral_was_started_on():
    # On a terminal, the command is put in the foreground, so it can read it and Ctrl-C
    # reaches it; corral itself then runs in the background of it.
    code = "import os; print('foreground' if os.tcgetpgrp(0) == os.getpgrp() else 'background')"
    pid, master = pty.fork()
    if pid == 0:
        os.execv(CORRAL_BIN, [CORRAL_BIN, "run", "--", sys.executable, "-c", code])
    output = b""
    deadline = time.monotonic() + EXIT_DEADLINE
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(master)
    print(output)
    assert os.waitstatus_to_exitcode(status) == 0
    assert output.strip() == b"foreground"
