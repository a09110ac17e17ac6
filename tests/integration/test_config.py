"""The config file (--config, CORRAL_CONFIG), --check-config, --print-config, and nothing ignored in
silence: warnings about the variables corral does not read, "did you mean" for a mistyped option,
and one line of why for the gunicorn and uvicorn options that do not apply."""

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import CORRAL_BIN, INTEGRATION_DIR, PYTHON, STACK_TRACE, app_dir, http_get

USAGE = 2


def uvicorn_version() -> tuple[int, ...]:
    """The version of the uvicorn the workers import in this pass (0.17.6, or 0.51.0)."""
    out = subprocess.run([PYTHON, "-c", "import uvicorn; print(uvicorn.__version__)"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return tuple(int(part) for part in out.strip().split(".")[:3])


def output(c) -> str:
    return c.stderr_text() + c.stdout_text()


def one_error(c, *needles: str) -> str:
    """Asserts exit 2 and a single error line naming every needle; returns that line."""
    text = output(c)
    print(f"exit code {c.returncode}; output:\n{text}")
    assert c.returncode == USAGE, f"exit code {c.returncode}, expected {USAGE}"
    assert not STACK_TRACE.search(text), f"stack trace in the output:\n{text}"
    errors = [line for line in text.splitlines() if line.startswith("corral: error: ")]
    assert len(errors) == 1, f"expected one error line:\n{text}"
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


# --------------------------------------------------------------------------------------------
# The config file


def test_config_file_runs_corral(corral, tmp_path):
    config = tmp_path / "corral.toml"
    config.write_text(
        "# what the command line would say\n"
        'app = "apps.basic:app"\n'
        "workers = 3\n"
        'bind = ["127.0.0.1:0"]\n'
        'admin-bind = "127.0.0.1:0"\n'
        f'app-dir = "{app_dir()}"\n'
        f'python = "{PYTHON}"\n'
        'graceful-timeout = "5s"\n'
        'header = ["X-From-Config: yes"]\n')
    c = corral.start(raw_args=[CORRAL_BIN, "--config", str(config)], workers=3)
    response = c.get("/")
    assert response.status == 200
    assert response.headers.get("x-from-config") == "yes"
    assert c.find_log(r"starting 3 workers")


def test_corral_config_variable_names_the_file(corral, tmp_path):
    config = tmp_path / "corral.toml"
    config.write_text('app = "apps.basic:app"\nworkers = 1\n')
    c = corral.start(app=None, workers=None, env={"CORRAL_CONFIG": str(config)})
    assert c.find_log(r"starting 1 worker")
    assert c.get("/").status == 200


def test_environment_and_command_line_win_over_the_file(corral, tmp_path):
    config = tmp_path / "corral.toml"
    config.write_text('app = "apps.basic:app"\nworkers = 4\nmax-requests = 1000\n'
                      'timeout-keep-alive = "7s"\n')
    c = corral.run("--config", str(config), "--print-config", "--json", app=None, workers=3,
                   env={"CORRAL_MAX_REQUESTS": "50"}, timeout=15)
    assert c.returncode == 0, output(c)
    settings = json.loads(c.stdout_text())["settings"]
    assert settings["workers"] == {"value": 3, "origin": "command line", "source": "--workers"}
    assert settings["max-requests"] == {"value": 50, "origin": "environment",
                                        "source": "CORRAL_MAX_REQUESTS"}
    assert settings["timeout-keep-alive"] == {"value": "7s", "origin": "file",
                                              "source": f"{config}:4"}
    assert settings["app"]["origin"] == "file"
    assert settings["backlog"] == {"value": 2048, "origin": "default", "source": None}


@pytest.mark.parametrize("text, needles", [
    pytest.param('app = "apps.basic:app"\nworkerz = 2\n',
                 [":2: unknown key 'workerz'; did you mean workers?"], id="unknown-key"),
    pytest.param('app = "apps.basic:app"\nworkers = "lots"\n',
                 [":2: workers = 'lots': expected a whole number of workers"], id="bad-value"),
    pytest.param('app = "apps.basic:app"\nproxy-headers = "yes"\n',
                 [":2: proxy-headers: expected true or false, not a string"], id="wrong-type"),
    pytest.param('app = "apps.basic:app"\n\n\ngraceful-timeout = "30 s"\n',
                 [":4: graceful-timeout = '30 s'"], id="bad-duration"),
    pytest.param('app = "apps.basic:app"\nworkers = \n', [":2:", "not valid TOML"],
                 id="syntax"),
    pytest.param('keepalive = 5\n', [":1: unknown key 'keepalive': corral's name for gunicorn's "
                                     "--keep-alive is timeout-keep-alive"], id="gunicorn-name"),
])
def test_bad_config_file_exits_2_naming_file_and_line(corral, tmp_path, text, needles):
    config = tmp_path / "corral.toml"
    config.write_text(text)
    c = corral.run("--config", str(config), app=None, workers=None, timeout=15)
    line = one_error(c, str(config), *needles)
    assert not c.spawns(), "nothing starts with a bad config file"
    print(line)


def test_bad_value_in_the_file_is_found_where_it_is_overridden(corral, tmp_path):
    # The command line and the environment win, but the file's bad value is not left for the
    # day they go.
    config = tmp_path / "corral.toml"
    config.write_text('app = "apps.basic:app"\nworkers = "lots"\n')
    c = corral.run("--config", str(config), app=None, workers=2, timeout=15)
    one_error(c, f"{config}:2: workers = 'lots'")
    config.write_text('app = "apps.basic:app"\nworkers = 3\nbacklog = 0\n')
    c = corral.run("--config", str(config), app=None, workers=None,
                   env={"CORRAL_BACKLOG": "100"}, timeout=15)
    one_error(c, f"{config}:3: backlog = '0'")
    assert not c.spawns()


def test_gunicorn_conf_py_is_refused_with_a_pointer(corral, tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("workers = 4\n")
    c = corral.run("-c", str(conf), timeout=15)
    one_error(c, "gunicorn.conf.py", "corral reads TOML")


# --------------------------------------------------------------------------------------------
# --check-config


def test_check_config_passes_and_starts_nothing(corral):
    c = corral.run("--check-config", timeout=60)
    text = output(c)
    print(text)
    assert c.returncode == 0, text
    version = ".".join(str(part) for part in uvicorn_version())
    assert re.search(rf"corral: check passed: apps\.basic:app: apps\.basic found at "
                     rf"{re.escape(str(app_dir()))}/apps/basic\.py; uvicorn {version} on "
                     rf"Python [\d.]+", c.stdout_text()), text
    assert "nothing was started" in text
    assert not c.spawns() and "listening on" not in text


@pytest.mark.parametrize("args, needles", [
    pytest.param(["--workers", "x"], ["--workers 'x'"], id="bad-flag"),
    pytest.param(["--graceful-timeout", "forever"], ["--graceful-timeout 'forever'"],
                 id="bad-duration"),
])
def test_check_config_fails_on_bad_settings(corral, args, needles):
    c = corral.run("--check-config", *args, timeout=60)
    one_error(c, *needles)


def test_check_config_finds_a_missing_module_without_importing_it(corral):
    c = corral.run("--check-config", app="apps.no_such_module:app", timeout=60)
    one_error(c, "APP 'apps.no_such_module:app': no module 'apps.no_such_module' in",
              str(app_dir()))


def test_check_config_does_not_run_the_apps_code(corral, tmp_path):
    # Importing this module would leave a file behind; finding it must not.
    package = tmp_path / "sideeffect"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "main.py").write_text("app = None\n")
    c = corral.run("--check-config", "--app-dir", str(tmp_path), app="sideeffect.main:app",
                   timeout=60)
    assert c.returncode == 0, output(c)
    assert "sideeffect.main found at" in c.stdout_text()
    assert not marker.exists(), "the check imported the app's package"


def test_check_config_finds_an_interpreter_without_uvicorn(corral, tmp_path):
    wrapper = tmp_path / "bare-python"
    wrapper.write_text(f'#!/bin/sh\nexec {PYTHON} -S "$@"\n')
    wrapper.chmod(0o755)
    c = corral.run("--check-config", python=str(wrapper), timeout=60)
    one_error(c, "cannot import uvicorn")


def test_check_config_runs_as_the_workers_user(corral):
    # The app's package is readable by root only (the app directory itself is open to all, or
    # corral would refuse --user before the check): workers running as nobody could not import
    # it, and the check, run as they would run, says so.
    private = tempfile.mkdtemp(prefix="corral-check-", dir="/var/tmp")
    try:
        shutil.copytree(INTEGRATION_DIR / "apps", os.path.join(private, "apps"))
        os.chmod(private, 0o755)
        os.chmod(os.path.join(private, "apps"), 0o700)
        c = corral.run("--check-config", "--app-dir", private, timeout=60)
        assert c.returncode == 0, output(c)
        c = corral.run("--check-config", "--app-dir", private, "--user", "nobody", timeout=60)
        one_error(c, "no module 'apps.basic'")
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_check_config_checks_options_against_this_uvicorn(corral):
    c = corral.run("--check-config", "--h11-max-incomplete-event-size", "64Ki",
                   "--ws-max-queue", "4", timeout=60)
    if uvicorn_version() >= (0, 23, 0):
        assert c.returncode == 0, output(c)
    else:
        one_error(c, "does not support --ws-max-queue (uvicorn >= 0.23.0), "
                     "--h11-max-incomplete-event-size (uvicorn >= 0.18.0)")


# --------------------------------------------------------------------------------------------
# --print-config


def test_print_config_text_is_a_config_file(corral, tmp_path):
    config = tmp_path / "corral.toml"
    config.write_text('app = "apps.basic:app"\nworkers = 3\n')
    c = corral.run("--config", str(config), "--print-config", "--keep-alive", "65", app=None,
                   workers=None, env={"CORRAL_BACKLOG": "100"}, timeout=15)
    text = c.stdout_text()
    print(text)
    assert c.returncode == 0
    assert re.search(rf"^workers = 3 +# file {re.escape(str(config))}:2$", text, re.M)
    assert re.search(r"^backlog = 100 +# environment CORRAL_BACKLOG$", text, re.M)
    assert re.search(r'^timeout-keep-alive = "1m5s" +# command line --keep-alive$', text, re.M)
    assert re.search(r'^timeout = "30s" +# default$', text, re.M)
    # Fed back as the config file, it gives the same settings.
    printed = tmp_path / "printed.toml"
    printed.write_text(text)
    again = corral.run("--config", str(printed), "--print-config", "--json", app=None,
                       workers=None, bind=None, admin_bind=None, python=None, timeout=15)
    assert again.returncode == 0, output(again)
    settings = json.loads(again.stdout_text())["settings"]
    assert settings["workers"]["value"] == 3
    assert settings["backlog"]["value"] == 100
    assert settings["timeout-keep-alive"]["value"] == "1m5s"
    assert settings["python"]["value"] == PYTHON


# --------------------------------------------------------------------------------------------
# Nothing ignored in silence


def test_variables_corral_does_not_read_are_warned_about_once(corral):
    c = corral.start(env={"CORRAL_WORKER": "5", "GUNICORN_CMD_ARGS": "--workers 5 --keep-alive 5",
                          "UVICORN_WORKERS": "5", "UVICORN_PORT": "9000"})
    c.get("/")
    text = c.stderr_text()
    expected = [
        r"CORRAL_WORKER is set, but names no corral option, so it changes nothing; did you mean "
        r"CORRAL_WORKERS\?",
        r"GUNICORN_CMD_ARGS is set, but corral does not read it; for corral: CORRAL_WORKERS=5 "
        r"CORRAL_TIMEOUT_KEEP_ALIVE=5",
        r"UVICORN_WORKERS is set, but corral does not read it \(uvicorn does\); for corral: "
        r"CORRAL_WORKERS=5",
        r"UVICORN_PORT is set, but corral does not read it \(uvicorn does\); for corral: "
        r"CORRAL_BIND=127\.0\.0\.1:9000",
    ]
    for pattern in expected:
        found = c.find_log(pattern)
        assert len(found) == 1, f"{pattern!r} logged {len(found)} times:\n{text}"
    warnings = [entry for entry in c.entries() if entry.level.startswith("warn")]
    assert len(warnings) == 4, warnings
    # And they changed nothing: 2 workers, as the command line said.
    assert c.find_log(r"starting 2 workers")


def test_unknown_option_gets_did_you_mean(corral):
    c = corral.run("--graceful-timout", "30", timeout=15)
    one_error(c, "unknown option '--graceful-timout'; did you mean --graceful-timeout?")


@pytest.mark.parametrize("args, reason", [
    pytest.param(["-k", "uvicorn.workers.UvicornWorker"], "corral always runs uvicorn workers",
                 id="worker-class"),
    pytest.param(["--threads", "4"], "threads are for gunicorn's gthread workers", id="threads"),
    pytest.param(["--worker-connections", "1000"], "--limit-concurrency N",
                 id="worker-connections"),
    pytest.param(["--daemon"], "corral stays in the foreground", id="daemon"),
    pytest.param(["--statsd-host", "localhost:8125"], "Prometheus metrics", id="statsd"),
])
def test_options_that_do_not_apply_say_why(corral, args, reason):
    c = corral.run(*args, timeout=15)
    line = one_error(c, f"corral: error: {args[0]}: ", reason)
    assert len([x for x in output(c).splitlines() if x.strip()]) == 1, output(c)
    print(line)
