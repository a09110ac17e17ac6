"""`corral probe [--admin ADDR] [ready|healthz]` (issue 10, item 6): a container HEALTHCHECK
without curl. Exit 0 on 200, else 1 with one line saying why (connection refused, a 503 and its
reason, no answer within the timeout); a bad argument is a usage error (2).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time

from conftest import CORRAL_BIN


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run([CORRAL_BIN, "probe", *args], capture_output=True, text=True,
                            env=env, timeout=60)
    print(f"probe {args}: exit {result.returncode} in {time.monotonic() - started:.3f} s; "
          f"stdout {result.stdout!r}; stderr {result.stderr!r}")
    return result


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_is_connection_refused_in_one_line():
    port = closed_port()
    r = probe("--admin", f"127.0.0.1:{port}")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f"corral probe: connection refused at 127.0.0.1:{port}\n"
    # Where corral itself would serve its admin port, as its environment says.
    r = probe("healthz", env={"CORRAL_ADMIN_BIND": f"0.0.0.0:{port}"})
    assert r.stderr == f"corral probe: connection refused at 127.0.0.1:{port}\n"


def test_the_default_is_corrals_default_admin_address():
    # A network namespace of its own, so that whatever serves 8081 on this machine is not asked.
    r = subprocess.run(["unshare", "--net", "sh", "-c",
                        f"ip link set lo up && exec {CORRAL_BIN} probe"],
                       capture_output=True, text=True, timeout=60)
    print(r)
    assert (r.returncode, r.stderr) == (1, "corral probe: connection refused at 127.0.0.1:8081\n")


def test_ready_and_healthz_of_a_running_corral(corral):
    c = corral.start("--drain-delay", "30s", workers=1)
    admin = f"127.0.0.1:{c.admin_port}"
    r = probe("--admin", admin)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"corral probe: /ready 200 at {admin}\n", "")
    r = probe("healthz", env={"CORRAL_ADMIN_BIND": admin})
    assert (r.returncode, r.stdout) == (0, f"corral probe: /healthz 200 at {admin}\n")
    # Draining: /ready says 503 and why, in one line.
    c.send_signal(signal.SIGTERM)
    c.wait_for_log(r"state \w+ -> DrainDelay")
    r = probe("--admin", admin, "ready")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"corral probe: /ready 503 at {admin}: ")
    print("reason:", r.stderr)
    c.send_signal(signal.SIGTERM)  # a second one: no need to wait out the delay
    c.wait_exit()


def test_no_answer_fails_within_the_timeout():
    # Accepts (the kernel does, from the backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        r = probe("--admin", f"127.0.0.1:{port}")
        elapsed = time.monotonic() - started
        assert r.returncode == 1
        assert r.stderr == (f"corral probe: no answer within 1s at 127.0.0.1:{port} "
                            "(waiting for the answer)\n")
        # The 1 s default; generous, as a Kubernetes probe's timeoutSeconds would be.
        assert elapsed < 10, f"{elapsed:.3f} s"
        r = probe("--admin", f"127.0.0.1:{port}", "--timeout", "200ms")
        assert "no answer within 200ms" in r.stderr


def test_bad_arguments_are_usage_errors():
    for args, message in [
        (["--admin", "none"], "corral probe: error: --admin 'none': the admin server is off"),
        (["metrics"], "corral probe: error: unknown endpoint 'metrics'; expected ready or healthz"),
        (["--admin"], "corral probe: error: --admin needs a value"),
    ]:
        r = probe(*args)
        assert r.returncode == 2 and r.stderr.startswith(message) and r.stderr.count("\n") == 1
