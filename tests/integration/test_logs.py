"""Logs a platform can parse: every line, corral's and the workers', says when (RFC 3339 with
milliseconds and zone), how severe and who; --log-format json makes each line one JSON object;
journald gets priority prefixes; --log-config hands the workers' logging to the user."""

import json
import os
import re
import signal

from conftest import EVENT_DEADLINE, INTEGRATION_DIR, wait_until

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:[+-]\d\d:\d\d|Z)"
TEXT_LINE = re.compile(
    rf"^(?P<time>{RFC3339}) (?P<level>critical|error|warning|info|debug|trace) +"
    r"(?P<who>corral|worker-\d+|template)\[(?P<pid>\d+)\]: (?P<message>.*)$")
LEVELS = {"critical", "error", "warning", "info", "debug", "trace"}


def all_lines(c):
    return (c.stderr_text() + c.stdout_text()).splitlines()


def test_text_lines_say_when_how_severe_and_who(corral):
    c = corral.start(app="apps.observed:app")
    pids = c.worker_pids()
    for path in ("/", "/log?level=warning", "/raise"):
        c.get(path)
    wait_until(lambda: "Exception in ASGI application" in c.stderr_text(), EVENT_DEADLINE,
               "the app's exception in the log")
    wait_until(lambda: '"GET /raise HTTP/1.1" 500' in c.stdout_text(), EVENT_DEADLINE,
               "the access line of /raise")
    c.send_signal(signal.SIGTERM)
    c.wait_exit()
    authors = set()
    continuation = 0
    for line in all_lines(c):
        match = TEXT_LINE.match(line)
        if match is None:
            # A traceback's lines, and the rest of a multi-line message, follow their record.
            continuation += 1
            continue
        authors.add((match["who"], int(match["pid"])))
    print(f"authors: {sorted(authors)}; {continuation} continuation lines")
    assert ("corral", c.pid) in authors
    for slot, pid in pids.items():
        assert (f"worker-{slot}", pid) in authors, f"no line of worker {slot} (pid {pid})"
    access = [line for line in c.stdout_text().splitlines() if '"GET / HTTP/1.1" 200' in line]
    assert access and TEXT_LINE.match(access[0]), c.stdout_text()
    assert re.search(r'"GET / HTTP/1\.1" 200 OK \d+\.\dms$', access[0]), access[0]
    print("access:", access[0])
    app_lines = [line for line in c.stderr_text().splitlines() if "nasty:" in line]
    assert app_lines and TEXT_LINE.match(app_lines[0])["level"] == "warning", app_lines
    print("app:", app_lines[0])


def test_no_access_log(corral):
    c = corral.start("--no-access-log", app="apps.observed:app", workers=1)
    c.get("/")
    c.get("/log?level=info")
    wait_until(lambda: "nasty:" in c.stderr_text(), EVENT_DEADLINE, "the app's line")
    assert "GET / HTTP" not in c.stdout_text() + c.stderr_text()


def test_json_every_line_is_one_object(corral):
    """Boot, requests, an exception with a traceback, a worker's crash, a reload and a drain:
    every line on stdout and stderr, corral's and the workers', parses as one JSON object."""
    c = corral.start("--log-format", "json", "--max-requests", "6", app="apps.observed:app")
    for path in ("/", "/log?level=error", "/print", "/raise", "/thread-raise", "/slow?s=0.05"):
        c.get(path)
    crashed = c.worker_pids()[0]
    mark = c.mark()
    try:
        c.get("/crash", timeout=5)
    except OSError:
        pass
    # Whichever worker took it, one crashed: wait for its replacement to be ready.
    exited = c.wait_for_log(r"worker (\d+) exited \(pid (\d+)\): killed by SIGKILL \(crash\)",
                            after=mark)
    c.wait_ready(2)
    mark = c.mark()
    c.send_signal(signal.SIGHUP)
    c.wait_for_log(r"reload to generation 1 complete", after=mark)
    mark = c.mark()
    for _ in range(40):  # until --max-requests recycles a worker
        c.get("/")
        if c.find_log(r"\(recycled\)", after=mark):
            break
    c.wait_for_log(r"\(recycled\)", after=mark)
    c.wait_ready(2)
    c.send_signal(signal.SIGTERM)
    assert c.wait_exit() == 0

    records = []
    for stream, text in (("stderr", c.stderr_text()), ("stdout", c.stdout_text())):
        for number, line in enumerate(text.splitlines(), 1):
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"{stream} line {number} is not JSON: {line!r}") from None
            assert isinstance(record, dict), line
            for key in ("time", "level", "message", "logger", "pid"):
                assert key in record, f"{stream} line {number} has no {key}: {line}"
            assert re.fullmatch(RFC3339, record["time"]), record["time"]
            assert record["level"] in LEVELS, line
            record["_stream"] = stream
            records.append(record)
    print(f"{len(records)} records, every one JSON")

    corral_records = [r for r in records if r["logger"] == "corral"]
    assert {r["pid"] for r in corral_records} == {c.pid}
    exits = [r for r in corral_records if "exited (pid" in r["message"]]
    crash = next(r for r in exits if r.get("reason") == "crash")
    assert crash["signal"] == "SIGKILL" and crash["worker"] == int(exited[1]), crash
    assert crash["worker_pid"] == int(exited[2])
    drained = [r for r in exits if r.get("reason") == "drained"]
    assert drained and all(r["exit_code"] == 0 and "duration_ms" in r for r in drained), drained
    assert any(r.get("reason") == "reloaded" for r in exits)
    assert any(r.get("reason") == "recycled" for r in exits)
    ready = [r for r in corral_records if re.match(r"worker \d+ ready \(pid ", r["message"])]
    assert ready and all(isinstance(r["duration_ms"], int) for r in ready)
    print("corral:", json.dumps(crash))

    workers = [r for r in records if r["logger"] != "corral"]
    assert all(isinstance(r.get("worker"), int) for r in workers if r["logger"].startswith(
        ("uvicorn", "observed"))), [r for r in workers if "worker" not in r][:3]
    traceback = next(r for r in workers if "Exception in ASGI application" in r["message"])
    assert "RuntimeError: raised by /raise" in traceback["traceback"], traceback
    assert traceback["level"] == "error" and traceback["_stream"] == "stderr"
    thread = next(r for r in workers if "ValueError: raised in a thread" in r.get("traceback", ""))
    assert "observed-thread" in thread["message"]
    nasty = next(r for r in workers if r["logger"] == "observed" and "nasty" in r["message"])
    assert nasty["level"] == "error" and nasty["order_id"] == 42
    assert 'quote " backslash \\ line\nfeed tab\t bell\x07 nul\x00 é 雪 ' in nasty["message"]
    assert nasty["message"].endswith(" \ufffd\ufffd"), nasty
    printed = [r["message"] for r in workers if r["logger"] in ("stdout", "stderr")]
    assert {"printed line one", "printed line two", "printed to stderr"} <= set(printed), printed
    access = [r for r in workers if r["logger"] == "uvicorn.access"]
    assert access and all(r["_stream"] == "stdout" for r in access)
    slow = next(r for r in access if r["path"] == "/slow?s=0.05")
    assert slow["method"] == "GET" and slow["status"] == 200, slow
    assert slow["duration_ms"] >= 45, slow
    assert re.fullmatch(r"127\.0\.0\.1:\d+", slow["client"]), slow
    raised = next(r for r in access if r["path"] == "/raise")
    assert raised["status"] == 500 and raised["duration_ms"] is not None, raised
    print("access:", json.dumps(slow))
    print("app:", json.dumps(nasty, ensure_ascii=False))


def test_journal_lines_carry_priorities(corral):
    """On the journal (JOURNAL_STREAM names stderr's device and inode, as systemd sets it),
    every line starts with its sd-daemon priority and has no timestamp of its own, so that
    `journalctl -p warning` finds corral's warnings."""
    # The variable is set from the descriptor corral will inherit, as systemd does.
    wrapper = ["/bin/sh", "-c",
               'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"', "sh"]
    # A --backlog above net.core.somaxconn makes corral warn as it starts.
    somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
    extra = ("--backlog", str(somaxconn + 1)) if somaxconn < 65535 else ()
    c = corral.start(*extra, app="apps.observed:app", workers=1,
                     wrapper=wrapper, wait_ready=False)
    # The stdout file is another inode: its lines keep their timestamps.
    wait_until(lambda: re.search(r"^<6>info +worker-0\[\d+\]: Application startup complete",
                                 c.stderr_text(), re.M), EVENT_DEADLINE, "worker 0 to start")
    c.get("/")
    c.get("/log?level=warning")
    wait_until(lambda: "nasty" in c.stderr_text(), EVENT_DEADLINE, "the app's warning")
    c.send_signal(signal.SIGTERM)
    c.wait_exit()
    lines = [line for line in c.stderr_text().splitlines()]
    prefixed = re.compile(r"^<(?P<priority>[0-7])>(?P<level>\w+) +(?P<who>corral|worker-0)\[\d+\]: ")
    priorities = {"critical": "2", "error": "3", "warning": "4", "info": "6", "debug": "7"}
    records = 0
    for line in lines:
        match = prefixed.match(line)
        if match is None:
            continue
        records += 1
        assert priorities[match["level"]] == match["priority"], line
        assert not re.search(RFC3339, line[:40]), f"a timestamp on the journal: {line}"
    first = lines[0]
    assert prefixed.match(first), first
    if extra:
        warning = next(line for line in lines if "somaxconn" in line)
        assert warning.startswith("<4>warning"), warning
    else:
        warning = "(no --backlog warning: somaxconn is at its maximum)"
    assert any(line.startswith("<4>warning") and "worker-0" in line and "nasty" in line
               for line in lines)
    access = [line for line in c.stdout_text().splitlines() if "GET / HTTP" in line]
    assert access and TEXT_LINE.match(access[0]), "stdout is not the journal here"
    print(f"{records} journal records; first {first!r}; warning {warning!r}")


def test_log_config_wins(corral, tmp_path):
    """--log-config is uvicorn's: a dictConfig file. The workers log its way, not corral's."""
    config = tmp_path / "logging.json"
    config.write_text(json.dumps({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mine": {"format": "MINE %(levelname)s %(name)s %(message)s"}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "mine",
                             "stream": "ext://sys.stderr"}},
        "loggers": {"uvicorn": {"handlers": ["out"], "level": "INFO", "propagate": False},
                    "uvicorn.access": {"handlers": ["out"], "level": "INFO",
                                       "propagate": False}},
    }))
    c = corral.start("--log-config", str(config), app="apps.observed:app", workers=1)
    c.get("/")
    wait_until(lambda: "MINE INFO uvicorn.access" in c.stderr_text(), EVENT_DEADLINE,
               "the access line in the user's format")
    assert re.search(r"^MINE INFO uvicorn.error Application startup complete", c.stderr_text(),
                     re.M), c.stderr_text()
    assert not re.search(r"worker-0\[\d+\]: ", c.stderr_text())
    # corral's own lines keep corral's format.
    assert re.search(r"^\S+ info +corral\[\d+\]: worker 0 ready", c.stderr_text(), re.M)


def test_log_config_that_does_not_exist_is_refused(corral, tmp_path):
    c = corral.run("--log-config", str(tmp_path / "missing.yaml"))
    assert c.returncode == 2
    assert "--log-config" in c.stderr_text() and "no such file" in c.stderr_text()
