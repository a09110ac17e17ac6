"""/metrics against Prometheus conventions, parsed with prometheus_client's parser (Debian's
python3-prometheus-client) plus the checks it leaves out, while workers serve, crash, recycle,
reload and scale; and prometheus_client's multiprocess mode kept right by corral."""

import math
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import EVENT_DEADLINE, http_get, pid_alive, wait_until

prometheus_parser = pytest.importorskip("prometheus_client.parser")

NAMES = ("corral_workers", "corral_workers_desired", "corral_reloads_total",
         "corral_worker_exits_total", "corral_build_info", "process_start_time_seconds",
         "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
         "process_max_fds", "corral_worker_resident_memory_bytes",
         "corral_worker_heartbeat_age_seconds", "corral_worker_requests_total",
         "corral_worker_requests_in_flight", "corral_worker_startup_seconds",
         "corral_drain_duration_seconds", "corral_listen_queue_connections",
         "corral_listen_queue_limit")
EXIT_REASONS = {"crash", "exited", "boot_failure", "cannot_run", "oom", "hung", "startup_timeout",
                "drained", "killed_at_drain_deadline", "reloaded", "recycled", "scaled_down",
                "superseded", "stopped"}
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def strict_parse(text):
    """{family name: (type, {(sample name, labels): value})}. Fails on anything the exposition
    format (version 0.0.4) does not allow, beyond what prometheus_client's lax parser checks:
    one HELP and one TYPE per family, before its samples; samples named after their family;
    no series twice; valid names; histograms with cumulative buckets ending in +Inf == count."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    families = {}
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in families, f"family {name} twice"
            assert METRIC_NAME.fullmatch(name), name
            families[name] = [None, {}]
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and families[name][0] is None, f"TYPE out of place: {line}"
            assert kind in SUFFIXES, line
            families[name][0] = kind
        else:
            assert not line.startswith("#"), line
            assert current is not None and families[current][0], f"sample before TYPE: {line}"
    parsed = list(prometheus_parser.text_string_to_metric_families(text))
    for family in parsed:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert name in families, f"{family.name} parsed but not declared"
        kind, samples = families[name]
        assert family.type == kind
        for sample in family.samples:
            assert any(sample.name == name + suffix for suffix in SUFFIXES[kind]), sample
            for label in sample.labels:
                assert LABEL_NAME.fullmatch(label) and not label.startswith("__"), label
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"series twice: {key}"
            assert not math.isnan(sample.value), sample
            samples[key] = sample.value
        if kind == "histogram":
            buckets = [(float(labels[0][1]), value) for (sample_name, labels), value in
                       samples.items() if sample_name.endswith("_bucket")]
            buckets.sort()
            assert buckets[-1][0] == math.inf
            assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
            assert buckets[-1][1] == samples[(name + "_count", ())]
    assert {f.name + ("_total" if f.type == "counter" else "") for f in parsed} == set(families)
    return {name: (kind, samples) for name, (kind, samples) in families.items()}


def counters(families):
    """Every value that must never go down: counters, and histograms' buckets, sums, counts."""
    return {key: value for kind, samples in families.values() if kind in ("counter", "histogram")
            for key, value in samples.items()}


def test_metrics_parse_strictly_and_counters_never_go_down(corral):
    c = corral.start("--max-requests", "400", "--timeout", "2s", workers=2)
    first = strict_parse(c.admin("/metrics").text)
    print("families:", ", ".join(sorted(first)))
    for name in NAMES:
        assert name in first, f"/metrics has no {name}"
    exits = {dict(labels)["reason"]: value
             for (_, labels), value in first["corral_worker_exits_total"][1].items()}
    assert set(exits) == EXIT_REASONS and not any(exits.values()), exits
    states = {dict(labels)["state"] for (_, labels) in first["corral_workers"][1]}
    assert states == {"starting", "ready", "draining"}

    served = [0]
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                if http_get(c.port, "/", timeout=5).status == 200:
                    served[0] += 1
            except OSError:
                pass

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    previous = counters(first)
    scrapes = 0
    events = [
        ("crash", lambda: os.kill(c.worker_pids()[0], signal.SIGKILL)),
        ("reload", lambda: c.send_signal(signal.SIGHUP)),
        ("scale up", lambda: c.send_signal(signal.SIGTTIN)),
        ("crash", lambda: os.kill(c.worker_pids()[1], signal.SIGKILL)),
        ("scale down", lambda: c.send_signal(signal.SIGTTOU)),
        ("reload", lambda: c.send_signal(signal.SIGHUP)),
    ]
    try:
        for what, act in events:
            act()
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                families = strict_parse(c.admin("/metrics").text)
                scrapes += 1
                now = counters(families)
                for key, value in previous.items():
                    if key in now:
                        assert now[key] >= value, f"{key} went down after {what}: {value} -> {now[key]}"
                previous.update(now)
                time.sleep(0.05)
        c.wait_ready(2)
        wait_until(lambda: re.search(r'corral_worker_exits_total\{reason="recycled"\} [1-9]',
                                     c.admin("/metrics").text), EVENT_DEADLINE,
                   "a worker recycled by --max-requests")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    last = strict_parse(c.admin("/metrics").text)
    values = {key: v for _, samples in last.values() for key, v in samples.items()}

    def value(name, **labels):
        return values[(name, tuple(sorted(labels.items())))]

    print(f"{scrapes} scrapes during the churn; {served[0]} requests served")
    assert value("corral_reloads_total") == 2
    assert value("corral_worker_exits_total", reason="crash") >= 2
    assert value("corral_worker_exits_total", reason="reloaded") >= 2
    assert value("corral_worker_exits_total", reason="scaled_down") >= 1
    assert value("corral_workers_desired") == 2
    assert value("corral_worker_startup_seconds_count") >= 8
    assert value("corral_drain_duration_seconds_count") >= 3
    assert value("corral_build_info", version=re.search(
        r'corral_build_info\{version="([^"]+)"', c.admin("/metrics").text)[1]) == 1
    # What the shim counts reaches corral within a second or so: exactly the requests made now
    # that nothing else happens. (A worker killed by SIGKILL takes its last second's count with
    # it, so the figures from the churn are not compared with what the load threads made.)
    def total():
        return sum(strict_parse(c.admin("/metrics").text)["corral_worker_requests_total"][1]
                   .values())

    def settled():
        first = total()
        time.sleep(1.5)  # longer than the shim's report interval
        return first if total() == first else None

    before = wait_until(settled, EVENT_DEADLINE, "the count to settle once the load stopped")
    for _ in range(50):
        assert c.get("/").status == 200
    wait_until(lambda: total() == before + 50, EVENT_DEADLINE,
               f"the count to grow by 50 from {before} (now {total()})")
    listener = f"http://127.0.0.1:{c.port}"
    assert value("corral_listen_queue_limit", listener=listener) > 0
    assert value("corral_listen_queue_connections", listener=listener) >= 0
    assert value("process_open_fds") > 3
    assert value("process_start_time_seconds") > time.time() - 3600
    for slot in ("0", "1"):
        assert value("corral_worker_resident_memory_bytes", worker=slot) > 1 << 20
        assert 0 <= value("corral_worker_heartbeat_age_seconds", worker=slot) < 2
    print(c.admin("/metrics").text)


def multiproc_metrics(c):
    text = http_get(c.port, "/metrics").text
    return {m[1]: float(m[2]) for m in re.finditer(r"^(app_\w+) ([\d.e+]+)$", text, re.M)} | {
        "text": text}


def test_prometheus_multiprocess_mode(corral, tmp_path):
    """gunicorn users keep prometheus_client's multiprocess mode right with a child_exit hook
    (mark_process_dead) and by emptying the folder between runs; corral does both."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    stale = folder / "counter_999999.db"
    stale.write_bytes(b"\0" * 16)
    keep = folder / "README"
    keep.write_text("not a metrics file\n")
    c = corral.start(app="apps.multiproc:app", env={"PROMETHEUS_MULTIPROC_DIR": str(folder)})
    assert not stale.exists(), "an earlier run's metrics must not be added in"
    assert keep.exists()
    c.wait_for_log(r"PROMETHEUS_MULTIPROC_DIR .*: 1 metrics file of an earlier run removed")
    for _ in range(10):
        assert c.get("/").status == 200
    wait_until(lambda: multiproc_metrics(c).get("app_workers_alive") == 2, EVENT_DEADLINE,
               "both workers' live gauge")
    victim = c.worker_pids()[0]
    live = sorted(p.name for p in folder.glob(f"gauge_live*_{victim}.db"))
    assert live, sorted(p.name for p in folder.iterdir())
    mark = c.mark()
    os.kill(victim, signal.SIGKILL)
    c.wait_for_log(rf"worker 0 exited \(pid {victim}\)", after=mark)
    c.wait_ready(2)
    wait_until(lambda: not pid_alive(victim), 5, "the victim to be gone")
    assert not list(folder.glob(f"gauge_live*_{victim}.db")), "its live gauges must go"
    assert (folder / f"counter_{victim}.db").exists(), "its counts must stay"
    # The replacement says it is alive too: 2, not 3 with the dead worker's gauge.
    metrics = wait_until(lambda: (m := multiproc_metrics(c)).get("app_workers_alive") == 2 and m,
                         EVENT_DEADLINE, "the live gauge to count 2 workers")
    print(f"removed {live}; app_workers_alive {metrics['app_workers_alive']}, "
          f"app_requests_total {metrics.get('app_requests_total')}")
    assert metrics.get("app_requests_total", 0) >= 10
