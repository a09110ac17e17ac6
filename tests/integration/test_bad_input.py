"""Bad input: every bad flag, value, environment variable, interpreter or address gets one clear
message naming it and a documented exit code, never a stack trace."""

import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest

from conftest import (CORRAL_BIN, PYTHON, STACK_TRACE, app_dir, unprivileged_corral_bin,
                      world_readable_dir)

USAGE = 2
FAILURE = 1


def error_lines(c) -> list[str]:
    return [line for line in (c.stderr_text() + c.stdout_text()).splitlines() if line.strip()]


def check_message(c, expected_rc: int, must_name: list[str], one_line: bool = True) -> str:
    """Asserts the exit code, that some line names every string of must_name (case-insensitive)
    and that no stack trace was printed. Returns the matching line."""
    output = c.stderr_text() + c.stdout_text()
    print(f"exit code {c.returncode}; output:\n{output}")
    assert c.returncode == expected_rc, f"exit code {c.returncode}, expected {expected_rc}"
    assert not STACK_TRACE.search(output), f"stack trace or crash in the output:\n{output}"
    naming = [line for line in output.splitlines()
              if all(s.lower() in line.lower() for s in must_name)]
    assert naming, f"no line names {must_name}:\n{output}"
    if one_line:
        lines = error_lines(c)
        assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{output}"
    return naming[0]


# Inputs rejected before anything starts: exit 2 and a single line naming the input.
USAGE_CASES = [
    pytest.param(["--bogus-flag"], {}, ["--bogus-flag"], id="unknown-flag"),
    pytest.param(["--workers", "abc"], {}, ["workers", "abc"], id="workers-not-a-number"),
    pytest.param(["--workers", "0"], {}, ["workers", "0"], id="workers-zero"),
    pytest.param([], {"CORRAL_WORKERS": "lots"}, ["CORRAL_WORKERS", "lots"], id="env-workers"),
    pytest.param([], {"WEB_CONCURRENCY": "many"}, ["WEB_CONCURRENCY", "many"],
                 id="env-web-concurrency"),
    pytest.param(["--graceful-timeout", "soon"], {}, ["graceful-timeout", "soon"],
                 id="duration-word"),
    pytest.param(["--timeout", "5parsecs"], {}, ["timeout", "5parsecs"], id="duration-unit"),
    pytest.param([], {"CORRAL_GRACEFUL_TIMEOUT": "-3s"}, ["CORRAL_GRACEFUL_TIMEOUT", "-3s"],
                 id="env-duration"),
    pytest.param(["--bind", "127.0.0.1:99999"], {}, ["127.0.0.1:99999"], id="bind-port-range"),
    pytest.param(["--bind", "127.0.0.1:http"], {}, ["127.0.0.1:http"], id="bind-port-name"),
    pytest.param(["--bind", "[::1"], {}, ["[::1"], id="bind-ipv6-unclosed"),
    pytest.param(["--admin-bind", "nowhere"], {}, ["nowhere"], id="admin-bind"),
    pytest.param(["--log-level", "loud"], {}, ["log-level", "loud"], id="log-level"),
    pytest.param(["--lifespan", "sometimes"], {}, ["lifespan", "sometimes"], id="lifespan"),
    pytest.param(["--start-method", "fork"], {}, ["start-method", "fork"], id="start-method"),
]


@pytest.mark.parametrize("args, env, must_name", USAGE_CASES)
def test_bad_value_exits_2_with_one_line(corral, args, env, must_name):
    c = corral.run(*args, raw_args=[CORRAL_BIN, "--python", PYTHON, *args, "apps.basic:app"],
                   env=env, timeout=15)
    check_message(c, USAGE, must_name)


@pytest.mark.parametrize("app", ["apps.basic", "apps.basic:", ":app"])
def test_app_not_module_attr_exits_2(corral, app):
    c = corral.run(raw_args=[CORRAL_BIN, "--python", PYTHON, app], timeout=15)
    line = check_message(c, USAGE, [app])
    assert re.search(r"module:attr", line), f"the message should show the expected form: {line}"


def test_missing_app_exits_2(corral):
    c = corral.run(raw_args=[CORRAL_BIN, "--python", PYTHON], timeout=15)
    check_message(c, USAGE, ["app"])


def test_python_that_does_not_exist_exits_2(corral, tmp_path):
    missing = str(tmp_path / "no-such-python")
    c = corral.run(python=missing, timeout=15)
    check_message(c, USAGE, [missing], one_line=False)
    assert not c.spawns(), "no worker can be spawned without an interpreter"


def test_python_not_executable_exits_2(corral, tmp_path):
    not_exec = tmp_path / "python-not-executable"
    not_exec.write_text("#!/bin/sh\n")
    not_exec.chmod(0o644)
    c = corral.run(python=str(not_exec), timeout=15)
    check_message(c, USAGE, [str(not_exec)], one_line=False)


def test_interpreter_without_uvicorn_exits_2(corral, tmp_path):
    wrapper = tmp_path / "bare-python"
    # -S skips site, so dist-packages (where Debian's uvicorn lives) is not on sys.path.
    wrapper.write_text(f'#!/bin/sh\nexec {PYTHON} -S "$@"\n')
    wrapper.chmod(0o755)
    c = corral.run(python=str(wrapper), workers=2, timeout=30)
    check_message(c, USAGE, ["uvicorn"], one_line=False)
    lines = [line for line in c.stderr_text().splitlines() if "uvicorn" in line
             and re.search(r"(?i)cannot import|not installed|no module named|install", line)]
    assert lines, "no message says that uvicorn cannot be imported"
    print("message:", lines[0])
    output = c.stderr_text()
    assert output.lower().count("no module named 'uvicorn'") <= 1, (
        "the interpreter problem must be reported once, not once per worker")


# A uvicorn that lacks an internal the worker shim relies on (worker/shim.py, class Internals):
# a copy of the interpreter's own uvicorn with its source changed, as a future release might.
# (source file, pattern, replacement, what corral's message must name). The last one can only be
# seen once the server has started, after the app's lifespan startup.
MISSING_INTERNALS = [
    pytest.param("server.py", r"\n\s*self\.total_requests = 0\n", "\n",
                 "total_requests", id="server-state-attribute"),
    pytest.param("server.py", r"async def startup\(self, sockets", "async def startup(self, socks",
                 "uvicorn.Server.startup", id="startup-signature"),
    pytest.param("server.py", r"self\.servers\b", "self.asyncio_servers",
                 "uvicorn.Server.servers", id="attribute-set-by-startup"),
]


@pytest.mark.parametrize("source, pattern, replacement, internal", MISSING_INTERNALS)
def test_uvicorn_without_an_internal_the_worker_needs_exits_2(corral, tmp_path, source, pattern,
                                                               replacement, internal):
    found = subprocess.run(
        [PYTHON, "-c", "import os, uvicorn; print(os.path.dirname(uvicorn.__file__)); "
                       "print(uvicorn.__version__)"],
        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    original, version = found[0], found[1]
    site = tmp_path / "site"
    shutil.copytree(original, site / "uvicorn", ignore=shutil.ignore_patterns("__pycache__"))
    path = site / "uvicorn" / source
    text, changed = re.subn(pattern, replacement, path.read_text())
    assert changed, f"the test no longer finds {pattern!r} in uvicorn {version}'s {source}"
    path.write_text(text)
    # First on PYTHONPATH: the interpreter's own uvicorn stays installed, as in a virtualenv
    # upgraded to a release corral does not know.
    wrapper = tmp_path / "python-with-changed-uvicorn"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {PYTHON} "$@"\n')
    wrapper.chmod(0o755)

    c = corral.run(python=str(wrapper), workers=2, timeout=30)
    line = check_message(c, USAGE, [internal, f"uvicorn {version}"], one_line=False)
    print("message:", line)
    naming = [line for line in c.stderr_text().splitlines() if internal in line]
    assert len(naming) == 1, f"the missing internal must be reported once: {naming}"
    assert re.search(r"(?i)install|upgrade|use a", line), f"the message says what to do: {line}"
    assert not c.find_log(r"worker \d+ ready"), "a worker served without the internal"


def test_address_in_use_exits_1(corral):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        c = corral.run(bind=f"127.0.0.1:{port}", timeout=15)
    line = check_message(c, FAILURE, [str(port)], one_line=False)
    assert re.search(r"(?i)in use", line), f"the message should say the address is in use: {line}"
    assert not c.spawns(), "no worker may start when a bind fails"


def _readable_by_nobody(path: str) -> bool:
    """Every directory up to path is searchable by others and the file is executable by them."""
    p = os.path.abspath(path)
    while True:
        mode = os.stat(p).st_mode
        needed = stat.S_IXOTH if stat.S_ISDIR(mode) or p == os.path.abspath(path) else 0
        if mode & needed != needed:
            return False
        if p == "/":
            return True
        p = os.path.dirname(p)


def test_permission_denied_on_a_port_exits_1(corral):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop to an unprivileged user")
    if os.geteuid() != 0:
        pytest.skip("the test must run as root to switch to nobody")
    binary = unprivileged_corral_bin()
    assert _readable_by_nobody(binary), f"{binary} must be executable by nobody"
    unprivileged_start = int(open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read())
    if unprivileged_start <= 80:
        pytest.skip(f"net.ipv4.ip_unprivileged_port_start is {unprivileged_start}: "
                    "port 80 needs no privilege here")
    c = corral.run(bind="127.0.0.1:80", timeout=15, corral_bin=binary,
                   wrapper=[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"])
    line = check_message(c, FAILURE, ["80"], one_line=False)
    assert re.search(r"(?i)permission|denied|privilege", line), line
    assert not c.spawns(), "no worker may start when a bind fails"


def test_permission_denied_on_a_unix_socket_path_exits_1(corral):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop to an unprivileged user")
    if os.geteuid() != 0:
        pytest.skip("the test must run as root to switch to nobody")
    # A directory nobody can enter but not write: root-owned, 0755.
    with tempfile.TemporaryDirectory(prefix="corral-locked-") as locked:
        os.chmod(locked, 0o755)
        path = os.path.join(locked, "corral.sock")
        c = corral.run(bind=f"unix:{path}", timeout=15, corral_bin=unprivileged_corral_bin(),
                       wrapper=[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"])
        assert not os.path.exists(path)
    line = check_message(c, FAILURE, [path], one_line=False)
    assert re.search(r"(?i)permission|denied", line), line


def nobody_can_import_from(path: str) -> bool:
    """Whether nobody (uid and gid 65534, no other group) can import apps.basic with path
    first on sys.path, as a worker does."""
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PYTHON, "-B", "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); import apps.basic", path],
        capture_output=True, timeout=30, cwd="/")
    return probe.returncode == 0


@pytest.fixture
def locked_app_dir():
    """A copy of the test apps at OUTER/app, in a world-readable folder; the test locks OUTER
    or app itself."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to act as nobody")
    outer = tempfile.mkdtemp(prefix="locked-", dir=world_readable_dir())
    app = os.path.join(outer, "app")
    shutil.copytree(app_dir(), app)
    os.chmod(outer, 0o755)
    yield outer, app
    os.chmod(outer, 0o755)
    shutil.rmtree(outer, ignore_errors=True)


@pytest.mark.parametrize("locked, mode", [("outer", 0o700), ("app", 0o711), ("app", 0o744)],
                         ids=["folder-on-the-way", "app-dir-not-readable",
                              "app-dir-not-searchable"])
def test_user_that_cannot_read_the_app_dir_exits_2_before_any_worker(corral, locked_app_dir,
                                                                     locked, mode):
    outer, app = locked_app_dir
    refused = outer if locked == "outer" else app
    os.chmod(refused, mode)
    assert not nobody_can_import_from(app), "precondition: nobody cannot import the app"
    c = corral.run("--user", "nobody", "--app-dir", app, workers=1, timeout=15)
    line = check_message(c, USAGE, ["--app-dir", app, "nobody",
                                    f"permission denied on {refused} "])
    assert re.search(r"make .* by nobody or move the app", line), line
    assert not c.spawns(), "no worker may start for an app folder its user cannot read"

    # What the message asks for is enough: corral then starts and its workers, as nobody,
    # import the app.
    os.chmod(refused, 0o755)
    assert nobody_can_import_from(app)
    corral.start("--user", "nobody", "--app-dir", app, workers=1)


def test_user_that_cannot_read_the_default_app_dir_exits_2(corral, locked_app_dir):
    """Without --app-dir the app folder is corral's working directory."""
    outer, app = locked_app_dir
    os.chmod(outer, 0o700)
    c = corral.run(raw_args=[CORRAL_BIN, "--user", "nobody", "--workers", "1", "--bind",
                             "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", "--python", PYTHON,
                             "apps.basic:app"], wrapper=["env", "-C", app], timeout=15)
    line = check_message(c, USAGE, ["--app-dir '.'", app, "nobody",
                                    f"permission denied on {outer} "])
    assert "default" in line, line
    assert not c.spawns()


def test_unix_path_that_is_not_a_socket_is_kept_and_refused(corral, tmp_path):
    precious = tmp_path / "not-a-socket"
    precious.write_text("user data\n")
    c = corral.run(bind=f"unix:{precious}", timeout=15)
    check_message(c, FAILURE, [str(precious)], one_line=False)
    assert precious.read_text() == "user data\n", "corral must never remove a non-socket file"
    assert not c.spawns()


def test_fd_that_is_not_a_listening_socket_is_refused(corral):
    c = corral.run(bind="fd://97", timeout=15)
    output = c.stderr_text() + c.stdout_text()
    print(f"exit code {c.returncode}; output:\n{output}")
    assert c.returncode in (FAILURE, USAGE), c.returncode
    assert "fd://97" in output or "97" in output
    assert not STACK_TRACE.search(output)
    assert not c.spawns()


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_exit_0(corral, flag):
    c = corral.run(raw_args=[CORRAL_BIN, flag], timeout=15)
    output = c.stdout_text()
    print(output)
    assert c.returncode == 0
    assert output.strip(), f"{flag} printed nothing on stdout"
    if flag == "--version":
        assert re.search(r"\d+\.\d+\.\d+", output), output
    else:
        for option in ("--workers", "--bind", "--admin-bind", "--graceful-timeout", "--timeout",
                       "--startup-timeout", "--python", "--app-dir", "--min-ready"):
            assert option in output, f"--help does not mention {option}"
