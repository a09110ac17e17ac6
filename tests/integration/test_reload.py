"""corral --reload: a saved edit is served by freshly forked workers; bursts, excluded paths,
new folders, a broken app (503 with its error, printed once), the worker template restarted
when a file it imported changes, --env-file (and python-dotenv's reading of it), bad input,
no wakeups while idle, a request in flight finished on the old code, a git checkout.

Every app lives in the test's own folder; every wait polls with a generous deadline. How fast
a reload is, is bench/reload.py's business: the tests print what they saw."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import CORRAL_BIN, EVENT_DEADLINE, INTEGRATION_DIR, PYTHON, http_get, wait_until

RESTARTING = r"state \w+ -> Restarting"
TEMPLATE_READY = r"worker template ready \(pid (\d+)\)"

APP = """\
import os
{header}
MESSAGE = {message!r}

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({{"type": "lifespan.startup.complete"}})
            elif event["type"] == "lifespan.shutdown":
                await send({{"type": "lifespan.shutdown.complete"}})
                return
    body = f"{{MESSAGE}} {{os.getpid()}} {{extra()}}".encode()
    if scope["path"] == "/env":
        body = json.dumps(dict(os.environ)).encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": body}})

import json

def extra():
{extra}
"""


def write_app(folder: Path, message: str, extra: str = "return ''", header: str = "") -> Path:
    """main.py: `header` at the top, and `extra`, the body of a function whose result each
    response ends with."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "main.py"
    path.write_text(APP.format(message=message, header=header,
                               extra=textwrap.indent(extra, "    ")))
    return path


def start(corral, folder: Path, *extra: str, workers: int | None = None, **kwargs):
    args = ["--reload", "--app-dir", str(folder), *extra]
    if workers is not None:
        args += ["--workers", str(workers)]
    c = corral.start(*args, app="main:app", workers=None, wait_ready=False, **kwargs)
    c.wait_ready(workers or 1)
    return c


def answer(c, path: str = "/"):
    try:
        return http_get(c.port, path, timeout=5)
    except OSError:
        return None


def wait_body(c, predicate, what: str, path: str = "/"):
    """The first response whose body satisfies predicate."""
    def check():
        response = answer(c, path)
        return response if response is not None and predicate(response) else None
    return wait_until(check, EVENT_DEADLINE, f"{what}; log tail:\n{c.tail()}")


def restarts(c) -> int:
    return len(c.find_log(RESTARTING))


def test_an_edit_is_served_by_new_workers_forked_from_the_same_template(corral, tmp_path):
    app = write_app(tmp_path / "app", "v1")
    c = start(corral, tmp_path / "app")
    banner = c.wait_for_log(r"--reload: serving main:app on (http://\S+) \(1 worker")
    assert banner[1] == f"http://127.0.0.1:{c.port}"
    first = c.get("/")
    assert first.text.startswith("v1 ")
    template = c.wait_for_log(TEMPLATE_READY)[1]
    mark = c.mark()
    saved = time.monotonic()
    write_app(app.parent, "v2")
    new = wait_body(c, lambda r: r.text.startswith("v2 "), "the edit to be served")
    print(f"edit saved to new response: {time.monotonic() - saved:.3f} s (polled)")
    assert new.status == 200
    assert new.text.split()[1] != first.text.split()[1], "a new worker serves the new code"
    c.wait_for_log(r"-> Running \(generation 1 serves\)", after=mark)
    assert c.find_log(r"main\.py changed: restarting on generation 1\)", after=mark)
    assert c.find_log(r"worker 0 spawned \(pid \d+\), forked from the template", after=mark)
    assert c.find_log(TEMPLATE_READY)[-1][1] == template, "the template was kept"
    c.wait_for_log(r"worker 0 exited \(pid \d+\): .* \(reloaded\)", after=mark)


def test_a_burst_of_writes_and_an_editors_rename_make_one_reload(corral, tmp_path):
    app = write_app(tmp_path / "app", "v1")
    # A quiet time longer than any pause this busy machine may put between the writes below.
    c = start(corral, tmp_path / "app", "--reload-delay", "1s")
    for i in range(30):
        write_app(app.parent, f"draft{i}")
    # vim's way: a swap file, the old file moved aside, the new one written, the backup gone.
    (app.parent / ".main.py.swp").write_text("swap")
    os.rename(app, app.parent / "main.py~")
    write_app(app.parent, "final")
    os.unlink(app.parent / "main.py~")
    wait_body(c, lambda r: r.text.startswith("final "), "the last write to be served")
    # Whatever would make a second reload has happened by now; give it time to show anyway.
    time.sleep(2.5)
    assert restarts(c) == 1, c.messages()


def test_a_broken_app_answers_503_with_its_error_printed_once_then_recovers(corral, tmp_path):
    app = write_app(tmp_path / "app", "v1")
    c = start(corral, tmp_path / "app", workers=2)
    mark = c.mark()
    app.write_text(app.read_text() + "\nraise RuntimeError('broken on purpose 4711')\n")
    broken = wait_body(c, lambda r: r.status == 503, "a 503 for the broken app")
    print(broken.text)
    assert "failed to load" in broken.text
    assert "RuntimeError: broken on purpose 4711" in broken.text
    assert "main.py" in broken.text  # the app's traceback, not corral's or uvicorn's
    c.wait_for_log(r"-> Running \(generation 1 failed to load", after=mark)
    c.wait_for_log(r"worker 1 ready \(pid \d+\) in \d+ms, answering 503", after=mark)
    # Two workers failed the same way: the error is in the log once, clearly marked.
    log = c.stderr_text()
    assert log.count("==== the app's error ====") == 1, log
    assert log.count("RuntimeError: broken on purpose 4711") == 1, log
    health = json.loads(c.admin("/healthz").text)
    assert "broken on purpose 4711" in health.get("reload_error", ""), health
    # Fixed: served again, without restarting corral.
    write_app(app.parent, "v3")
    fixed = wait_body(c, lambda r: r.status == 200 and r.text.startswith("v3 "), "the fix")
    assert fixed.status == 200
    assert c.running


def test_a_failing_lifespan_startup_is_a_load_error_too(corral, tmp_path):
    folder = tmp_path / "app"
    write_app(folder, "v1")
    c = start(corral, folder)
    source = (folder / "main.py").read_text().replace(
        'await send({"type": "lifespan.startup.complete"})',
        'await send({"type": "lifespan.startup.failed", "message": "no database 4712"})')
    (folder / "main.py").write_text(source)
    broken = wait_body(c, lambda r: r.status == 503, "a 503 for the failed startup")
    assert "no database 4712" in broken.text
    assert c.stderr_text().count("==== the app's error ====") == 1
    write_app(folder, "v2")
    wait_body(c, lambda r: r.text.startswith("v2 "), "the fix")


def test_a_broken_app_at_start_serves_its_error_and_waits_for_the_fix(corral, tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "main.py").write_text("import not_a_module_4713\n")
    c = start(corral, folder)
    broken = wait_body(c, lambda r: r.status == 503, "the load error")
    assert "No module named 'not_a_module_4713'" in broken.text
    write_app(folder, "v1")
    wait_body(c, lambda r: r.text.startswith("v1 "), "the fix")


def test_a_file_in_a_folder_created_later_is_watched(corral, tmp_path):
    folder = tmp_path / "app"
    # Imported as the app is, so that only a worker started after the change can see it.
    write_app(folder, "v1", extra="return VALUE", header=textwrap.dedent("""\
        try:
            from pkg.sub import mod
            VALUE = mod.VALUE
        except ImportError:
            VALUE = "no-module"
        """))
    c = start(corral, folder)
    assert c.get("/").text.endswith(" no-module")
    (folder / "pkg" / "sub").mkdir(parents=True)
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "sub" / "__init__.py").write_text("")
    (folder / "pkg" / "sub" / "mod.py").write_text("VALUE = 'first'\n")
    wait_body(c, lambda r: r.text.endswith(" first"), "the new module")
    mark = c.mark()
    (folder / "pkg" / "sub" / "mod.py").write_text("VALUE = 'second'\n")
    wait_body(c, lambda r: r.text.endswith(" second"), "the edit in the new folder")
    assert c.find_log(r"pkg/sub/mod\.py changed", after=mark)


def test_excluded_paths_change_nothing(corral, tmp_path):
    folder = tmp_path / "app"
    app = write_app(folder, "v1")
    for sub in ("node_modules", ".venv", "__pycache__", "scratch", ".git"):
        (folder / sub).mkdir()
    c = start(corral, folder, "--reload-exclude", "scratch/*", "--reload-exclude", "*_draft.py")
    pid = c.get("/").text.split()[1]
    for path in ("node_modules/x.py", ".venv/lib.py", "__pycache__/main.py", "scratch/a.py",
                 ".git/hook.py", "notes.txt", ".hidden.py", "main_draft.py", "main.pyc",
                 "main.py~"):
        (folder / path).write_text("x = 1\n")
    time.sleep(1.0)  # time enough for a reload to show, were there one
    assert restarts(c) == 0, c.messages()
    assert c.get("/").text.split()[1] == pid
    # The control: an included file does reload.
    write_app(folder, "v2")
    wait_body(c, lambda r: r.text.startswith("v2 "), "an included change")
    assert app.exists()


def test_a_file_the_template_imported_restarts_the_template(corral, tmp_path):
    """sitecustomize is imported by every interpreter, the worker template included: workers
    forked from a template that holds the old one would serve it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("VALUE = 'site-1'\n")
    folder = tmp_path / "app"
    write_app(folder, "v1", extra="import sitecustomize\nreturn sitecustomize.VALUE\n")
    c = start(corral, folder, "--reload-dir", str(folder), "--reload-dir", str(site),
              env={"PYTHONPATH": str(site)})
    assert c.get("/").text.endswith(" site-1")
    first_template = c.wait_for_log(TEMPLATE_READY)[1]
    mark = c.mark()
    (site / "sitecustomize.py").write_text("VALUE = 'site-2'\n")
    wait_body(c, lambda r: r.text.endswith(" site-2"), "the template's module, imported anew")
    assert c.find_log(r"restarting on generation 1 with a new worker template", after=mark)
    second_template = c.wait_for_log(TEMPLATE_READY, after=mark)[1]
    assert second_template != first_template
    # An edit of the app alone keeps that new template.
    mark = c.mark()
    write_app(folder, "v2", extra="import sitecustomize\nreturn sitecustomize.VALUE\n")
    wait_body(c, lambda r: r.text.startswith("v2 "), "the app's edit")
    assert not c.find_log(TEMPLATE_READY, after=mark)


def test_env_file_values_reach_the_workers_and_change_on_reload(corral, tmp_path):
    folder = tmp_path / "app"
    write_app(folder, "v1")
    env_file = tmp_path / "dev.env"  # outside the watched folder, and not a *.py
    env_file.write_text("# settings\nexport GREETING='hello there'\n"
                        "DB_URL=sqlite:///${NAME:-x}.db\nSHELL_WINS=from-file\n")
    c = start(corral, folder, "--env-file", str(env_file), env={"SHELL_WINS": "from-shell"})
    env = json.loads(c.get("/env").text)
    assert env["GREETING"] == "hello there"
    assert env["DB_URL"] == "sqlite:///x.db"
    assert env["SHELL_WINS"] == "from-shell"  # corral's own environment wins, as with uvicorn
    mark = c.mark()
    env_file.write_text("GREETING=changed\n")
    env = json.loads(wait_body(c, lambda r: "changed" in r.text, "the new environment",
                               path="/env").text)
    assert env["GREETING"] == "changed"
    assert "DB_URL" not in env  # gone from the file, gone from the workers
    assert c.find_log(r"dev\.env changed: restarting on generation 1 with a new worker template",
                      after=mark)
    # The old worker takes connections until it has handled its stop signal: only once it is
    # gone does every answer come from the new environment.
    c.wait_for_log(r"worker 0 exited \(pid \d+\): exit code 0 \(reloaded\)", after=mark)
    # A mistake in the file is reported; the workers keep what they had.
    mark = c.mark()
    env_file.write_text("GREETING='unclosed\n")
    c.wait_for_log(r"--env-file .* line 1: .*the workers keep the environment read before",
                   after=mark)
    assert json.loads(c.get("/env").text)["GREETING"] == "changed"
    assert not c.find_log(RESTARTING, after=mark)


def test_env_file_is_read_as_python_dotenv_reads_it(corral, tmp_path):
    dotenv = pytest.importorskip("dotenv", reason="python3-dotenv (the oracle) is not installed")
    env_file = tmp_path / "tricky.env"
    env_file.write_text(textwrap.dedent("""\
        # a comment
        PLAIN=value
        export EXPORTED=1
          SPACED = spaced value   # with a comment
        HASH=a#b
        SINGLE='single \\'quoted\\' # not a comment'
        DOUBLE="double \\"quoted\\"\\ttab\\nnewline"
        MULTI="line one
        line two"
        EMPTY=
        BARE
        'QUOTED_KEY'=q
        REF=${PLAIN}-${UNSET:-default}-${HOME_FOR_TEST}
        URL=http://x/?a=1&b=2
        UNICODE=ünïcode ✓
        """))
    folder = tmp_path / "app"
    write_app(folder, "v1")
    shell = {"HOME_FOR_TEST": "/home/test"}
    c = start(corral, folder, "--env-file", str(env_file), env=shell)
    served = json.loads(c.get("/env").text)
    # uvicorn loads it with load_dotenv(), whose expansion looks at the environment first.
    os.environ.update(shell)
    try:
        expected = dotenv.main.DotEnv(str(env_file), interpolate=True, override=False).dict()
    finally:
        for key in shell:
            del os.environ[key]
    print(expected)
    for key, value in expected.items():
        if value is None:
            assert key not in served or served[key] == os.environ.get(key), key
        else:
            assert served.get(key) == value, key


@pytest.mark.parametrize("args,message", [
    (["--reload", "--reload-dir", "/nonexistent/folder"],
     "corral: error: --reload-dir '/nonexistent/folder': no such directory; "
     "--reload watches folders that exist"),
    (["--reload-dir", "/tmp"], "corral: error: --reload-dir '/tmp': needs --reload too"),
    (["--reload", "--app-dir", "/nonexistent/app"],
     "corral: error: --app-dir '/nonexistent/app': no such directory"),
    (["--env-file", "/nonexistent.env"],
     "corral: error: --env-file '/nonexistent.env': no such file"),
])
def test_bad_input_is_one_line_and_exit_2(corral, args, message):
    c = corral.run(*args, app="main:app", workers=None)
    assert c.returncode == 2
    assert c.stderr_text().strip() == message


def test_out_of_inotify_watches_says_so_and_watches_what_it_can(corral, tmp_path):
    """In a user namespace of its own, the inotify limit is the namespace's to set."""
    folder = tmp_path / "app"
    write_app(folder, "v1")
    for name in ("a", "b", "c", "d", "e"):
        (folder / "deep" / name).mkdir(parents=True)
    limit = 3  # the app folder, deep/, and one more; the rest are left out
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True,
                           text=True)
    if probe.returncode != 0:  # a chroot, say: the kernel refuses user namespaces there
        pytest.skip(f"no user namespace here: {probe.stderr.strip()}")
    wrapper = ["unshare", "--user", "--map-root-user", "sh", "-c",
               f'echo {limit} > /proc/sys/user/max_inotify_watches && exec "$@"', "sh"]
    c = start(corral, folder, wrapper=wrapper)
    warning = c.wait_for_log(r"--reload: out of inotify watches \(fs\.inotify\.max_user_watches"
                             r" = 3\): 4 folders not watched, changes there go unseen; raise "
                             r"the limit with `sysctl fs\.inotify\.max_user_watches=524288`")
    print(warning[0])
    assert c.find_log(r"watching .* \(3 folders\)")
    # The app's own folder, the shallowest, is still watched.
    write_app(folder, "v2")
    wait_body(c, lambda r: r.text.startswith("v2 "), "an edit in the watched folder")


FASTAPI_APP = """\
import sys
PRELOADED = "fastapi" in sys.modules  # before this module imports it
from fastapi import FastAPI

VERSION = {version!r}
app = FastAPI()


@app.get("/")
def root():
    return {{"version": VERSION, "preloaded": PRELOADED}}
"""


def test_the_apps_libraries_are_imported_by_the_template_beforehand(corral, tmp_path):
    """After the first load, a worker template that has imported fastapi takes over: the
    workers forked at later changes import only the app's own code."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "main.py").write_text(FASTAPI_APP.format(version="v1"))
    c = start(corral, folder)
    assert json.loads(c.get("/").text) == {"version": "v1", "preloaded": False}
    c.wait_for_log(r"worker template with the app's \d+ library modules ready \(pid \d+\); "
                   r"workers fork from it now")
    (folder / "main.py").write_text(FASTAPI_APP.format(version="v2"))
    new = wait_body(c, lambda r: '"v2"' in r.text, "the edit")
    assert json.loads(new.text) == {"version": "v2", "preloaded": True}


@pytest.mark.parametrize("no_color", [False, True])
def test_logs_are_coloured_on_a_terminal_unless_no_color(tmp_path, no_color):
    """The raw bytes corral writes to a terminal: colour codes around the level, none with
    NO_COLOR set (https://no-color.org)."""
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.pop("NO_COLOR", None)
    env["TERM"] = "xterm-256color"
    if no_color:
        env["NO_COLOR"] = "1"
    proc = subprocess.Popen(
        [CORRAL_BIN, "--reload", "--bind", "127.0.0.1:0", "--admin-bind", "none", "--python",
         PYTHON, "--app-dir", str(INTEGRATION_DIR), "apps.basic:app"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + EVENT_DEADLINE
        while b"--reload: serving" not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    output += os.read(master, 65536)
                except OSError:
                    break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=EVENT_DEADLINE)
        os.close(master)
    print(output.decode(errors="replace"))
    assert b"--reload: serving" in output
    assert (b"\x1b[" in output) != no_color


def voluntary_switches(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches for pid {pid}")


@pytest.mark.parametrize("timeout,most", [("120", 3), ("1", None)])
def test_idle_corral_does_not_wake_up(corral, tmp_path, timeout, most):
    """inotify is waited on like a socket: with nothing changing and no request, corral itself
    wakes only for its workers' heartbeats (one per --timeout / 4). Each voluntary context
    switch is one return from a blocking wait. The second case, heartbeats every 0.25 s, shows
    that the count sees them (uvicorn's stat reloader: 4 a second, whatever the timeout)."""
    folder = tmp_path / "app"
    write_app(folder, "v1")
    c = start(corral, folder, "--timeout", timeout)
    # Let the start's aftermath (the worker template with the app's libraries) settle.
    c.wait_for_log(r"workers fork from it now|workers fork from the plain one")
    time.sleep(1.0)
    before = voluntary_switches(c.main_pid)
    time.sleep(5.0)
    wakeups = voluntary_switches(c.main_pid) - before
    print(f"--timeout {timeout}: corral woke {wakeups} times in 5 s idle")
    if most is not None:
        assert wakeups <= most, c.messages()
    else:
        assert wakeups >= 10, "heartbeats every 0.25 s are seen as wakeups"


SLOW_APP = """\
import asyncio
import pathlib

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = VERSION
    if scope["path"] == "/slow":
        pathlib.Path({marker!r}).write_text(VERSION)  # in flight now
        await asyncio.sleep(3)
        body += " slow"
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": body.encode()}})
"""


def test_a_request_in_flight_finishes_on_the_old_code(corral, tmp_path):
    """A reload does not wait for the old workers to drain before the new code serves, but it
    does not cut them short either: they finish what they had (--graceful-timeout)."""
    folder = tmp_path / "app"
    folder.mkdir()
    marker = tmp_path / "in-flight"  # outside the watched folder
    (folder / "main.py").write_text(SLOW_APP.format(version="v1", marker=str(marker)))
    c = start(corral, folder)
    assert c.get("/").text == "v1"
    slow: dict = {}

    def ask():
        try:
            slow["response"] = http_get(c.port, "/slow", timeout=60)
        except OSError as exc:
            slow["error"] = exc

    client = threading.Thread(target=ask)
    client.start()
    wait_until(marker.exists, EVENT_DEADLINE, "the slow request to be in flight")
    mark = c.mark()
    (folder / "main.py").write_text(SLOW_APP.format(version="v2", marker=str(marker)))
    wait_body(c, lambda r: r.text == "v2", "the new code, while the slow request runs")
    client.join(EVENT_DEADLINE)
    assert "error" not in slow, slow
    assert slow["response"].status == 200
    assert slow["response"].text == "v1 slow"
    c.wait_for_log(r"worker 0 exited \(pid \d+\): exit code 0 \(reloaded\)", after=mark)


def test_a_git_checkout_makes_one_reload(corral, tmp_path):
    """git replaces every file that differs between the branches, one after the other, and
    writes its own files under .git (never watched): one reload, and the new branch serves."""
    folder = tmp_path / "app"
    header = ("import importlib\n"
              "VALUE = ''.join(importlib.import_module(f'pkg.m{i}').V for i in range(10))\n")

    def commit(message: str, letter: str):
        write_app(folder, message, extra="return VALUE", header=header)
        (folder / "pkg").mkdir(exist_ok=True)
        (folder / "pkg" / "__init__.py").write_text("")
        for i in range(10):
            (folder / "pkg" / f"m{i}.py").write_text(f"V = {letter!r}\n")
        git("add", "-A")
        git("commit", "-q", "-m", message)

    def git(*args: str):
        subprocess.run(["git", "-c", "user.name=corral tests", "-c", "user.email=tests@corral",
                        "-c", "init.defaultBranch=one", *args], cwd=folder, check=True)

    folder.mkdir()
    git("init", "-q")
    commit("v1", "a")
    git("checkout", "-q", "-b", "two")
    commit("v2", "b")
    git("checkout", "-q", "one")
    # git writes these files within a millisecond or so (even --reload-delay 0 made one reload
    # here); the quiet time is raised for a busy machine that might stop git among them. The
    # quiet time itself is what the burst test above shows.
    c = start(corral, folder, "--reload-delay", "300ms")
    assert c.get("/").text.endswith(" " + "a" * 10)
    git("checkout", "-q", "two")
    wait_body(c, lambda r: r.text.startswith("v2 ") and r.text.endswith(" " + "b" * 10),
              "the other branch")
    time.sleep(2.0)  # time enough for a second reload to show, were there one
    assert restarts(c) == 1, c.messages()
    assert c.find_log(r"changed: restarting on generation 1\)")  # several files, one reload
